"""Is a fine-tune the right tool for this corpus? How much of what the adapter would learn is volatile fact
rather than stable behaviour: target turns quoting prices, dates, version numbers, SKUs, order or account
numbers or URLs that the conversation did not hand it, and near-duplicate prompts whose answers disagree (within
the version, or with the last approved one). A plain verdict with examples, for `adapterops fit-check` and the
owner's approval review.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from adapterops.config import DedupConfig, FitCheckConfig
from adapterops.escaping import md_code, md_excerpt
from tasks.dedup import similarity_clusters, sketch_records
from tasks.dedup.clusters import Sketches
from tasks.dedup import kernels
from tasks.records.conversation import conversation_of, customer_side_text

# kind → pattern; a match counts only when the conversation's other turns do not hold the same text
VOLATILE = {
    "price": re.compile(r"(?:[$€£¥]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:USD|EUR|GBP|dollars?|euros?|"
                        r"pounds?)\b|\bper (?:month|seat|year) at \d)", re.IGNORECASE),
    "date": re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|"
                       r"oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?(?:,? \d{4})?\b|\b\d{1,2} (?:jan|feb|mar|apr|"
                       r"may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{4}\b", re.IGNORECASE),
    "version": re.compile(r"\b(?:v|version |release )\d+(?:\.\d+)+\b|\b\d+\.\d+\.\d+\b", re.IGNORECASE),
    "sku": re.compile(r"\bSKU[-:#\s]*[A-Z0-9][A-Z0-9-]{2,}\b", re.IGNORECASE),
    "order_or_account": re.compile(r"\b(?:order|account|acct|invoice|case)\s*(?:no\.?|number|#|id)?\s*[:#]?\s*"
                                   r"(?=[A-Z0-9-]*\d)[A-Z]{0,4}-?\d{4,}\b|\b[A-Z]{2,3}-\d{4,}\b", re.IGNORECASE),
    "url": re.compile(r"\bhttps?://[^\s)>\]]+|\bwww\.[^\s)>\]]+", re.IGNORECASE),
}
ANSWER_AGREEMENT = 0.5     # word 3-gram Jaccard of two answers below which they disagree


def target_turns(record: dict) -> tuple[list[str], str]:
    """(the trained replies: assistant turns with text, everything else the conversation holds: system, user and
    tool turns, and tool calls, which act on the conversation rather than tell the customer)."""
    conversation = conversation_of(record)
    trained = set(conversation.trained_turns())
    targets, context = [], []
    for i, m in enumerate(conversation.messages):
        text = " ".join([m.content or ""] + [f"{c.name}({c.arguments})" for c in m.tool_calls])
        (targets if i in trained and (m.content or "").strip() else context).append(text)
    return targets, "\n".join(context)


def volatile_facts(target: str, context: str) -> dict[str, list[str]]:
    """The volatile facts a target turn states that its conversation did not give it, by kind."""
    found: dict[str, list[str]] = {}
    folded = context.casefold()
    for kind, pattern in VOLATILE.items():
        hits = [m.group(0) for m in pattern.finditer(target) if m.group(0).casefold() not in folded]
        if hits:
            found[kind] = hits
    return found


def volatile_share(records: pd.DataFrame, examples: int) -> dict:
    """Share of target turns carrying a volatile fact of their own, per kind, with examples."""
    turns, carrying = 0, 0
    kinds: dict[str, int] = {}
    shown = []
    for record in records.to_dict("records"):
        targets, context = target_turns(record)
        for target in targets:
            turns += 1
            facts = volatile_facts(target, context)
            if facts:
                carrying += 1
                for kind in facts:
                    kinds[kind] = kinds.get(kind, 0) + 1
                if len(shown) < examples:
                    shown.append({"id": str(record["id"]), "text": target, "facts": facts})
    return {"turns": turns, "carrying": carrying, "share": carrying / turns if turns else 0.0,
            "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])), "examples": shown}


def _sketch(texts: list[str], ids: list[str], params: DedupConfig) -> Sketches:
    return sketch_records(pd.DataFrame({"id": ids, "text": texts}), params, ("text",))


def disagreeing_answers(records: pd.DataFrame, settings: FitCheckConfig, previous: pd.DataFrame | None = None) -> dict:
    """Near-duplicate prompts (customer side, Jaccard ≥ fit_check.prompt_threshold) whose answers disagree (word
    3-gram Jaccard below ANSWER_AGREEMENT); with `previous`, the last approved version's records join the clusters
    so answers that changed across versions count too."""
    frames = [records.assign(_version="this")] + ([previous.assign(_version="previous")] if previous is not None
                                                  and len(previous) else [])
    every = pd.concat(frames, ignore_index=True)
    ids = [f"{v}:{i}" for v, i in zip(every["_version"], every["id"].astype(str))]
    rows = every.to_dict("records")
    prompts = _sketch([customer_side_text(r) for r in rows], ids, DedupConfig(threshold=settings.prompt_threshold,
                                                                               ngram=3))
    roots = similarity_clusters(prompts, DedupConfig(threshold=settings.prompt_threshold, ngram=3))
    answers = _sketch([" ".join(target_turns(r)[0]) for r in rows], ids, DedupConfig(ngram=3))
    in_cluster = np.flatnonzero(np.bincount(roots, minlength=len(roots))[roots] > 1)
    this = every["_version"].to_numpy() == "this"
    conflicted, shown = set(), []
    members: dict[int, list[int]] = {}
    for row in in_cluster.tolist():
        members.setdefault(int(roots[row]), []).append(row)
    for group in members.values():
        left = np.array([a for a in group for b in group if a < b], dtype=np.int64)
        right = np.array([b for a in group for b in group if a < b], dtype=np.int64)
        agreement = kernels.pair_jaccard(answers.sets, answers.set_offsets, left, right)
        for a, b, value in zip(left.tolist(), right.tolist(), agreement.tolist()):
            if value < ANSWER_AGREEMENT and (this[a] or this[b]):
                conflicted.update(r for r in (a, b) if this[r])
                if len(shown) < settings.examples:
                    shown.append({"prompt": customer_side_text(rows[a]), "answers": [
                        {"id": ids[r], "text": " ".join(target_turns(rows[r])[0])} for r in (a, b)]})
    clustered = int(this[in_cluster].sum())
    return {"near_duplicate_prompts": clustered, "disagreeing": len(conflicted),
            "share": len(conflicted) / int(this.sum()) if this.sum() else 0.0, "examples": shown}


def fit_verdict(volatile: dict, conflicts: dict, settings: FitCheckConfig) -> tuple[bool, str]:
    """(fits, one plain sentence)."""
    problems = []
    if volatile["share"] > settings.volatile_max:
        kinds = ", ".join(k.replace("_", " ") for k in list(volatile["kinds"])[:3])
        problems.append(f"{volatile['share']:.0%} of replies state volatile facts the conversation did not give "
                        f"them ({kinds}): serve those from retrieval (a tool or the system prompt), fine-tune the "
                        "tone and the triage")
    if conflicts["share"] > settings.conflict_max:
        problems.append(f"{conflicts['share']:.0%} of records have a near-duplicate prompt whose answer disagrees: "
                        "settle them (a labeling round) before training, or the adapter learns both")
    if problems:
        return False, "; ".join(problems) + "."
    return True, (f"A fine-tune fits: {volatile['share']:.0%} of replies state volatile facts and "
                  f"{conflicts['share']:.0%} of records disagree with a near-duplicate prompt's answer "
                  f"(limits {settings.volatile_max:.0%} and {settings.conflict_max:.0%}).")


def check_fit(records: pd.DataFrame, settings: FitCheckConfig, previous: pd.DataFrame | None = None) -> dict:
    volatile = volatile_share(records, settings.examples)
    conflicts = disagreeing_answers(records, settings, previous)
    fits, verdict = fit_verdict(volatile, conflicts, settings)
    return {"fits": fits, "verdict": verdict, "volatile": volatile, "conflicts": conflicts}


def fit_lines(result: dict) -> list[str]:
    """The review's fit section, record text escaped."""
    volatile, conflicts = result["volatile"], result["conflicts"]
    lines = ["### Fit: is a fine-tune the right tool?", "", ("**Fits.** " if result["fits"] else "**Does not fit "
                                                              "as it is.** ") + md_excerpt(result["verdict"], 600), "",
             f"- target turns stating volatile facts: {volatile['carrying']} of {volatile['turns']} "
             f"({volatile['share']:.0%})" + (": " + ", ".join(f"{md_excerpt(k)} {v}" for k, v in volatile["kinds"].items())
                                            if volatile["kinds"] else ""),
             f"- records whose near-duplicate prompt has a disagreeing answer: {conflicts['disagreeing']} "
             f"({conflicts['share']:.0%}; {conflicts['near_duplicate_prompts']} records have near-duplicate prompts)"]
    for example in volatile["examples"]:
        facts = "; ".join(f"{k}: {', '.join(v)}" for k, v in example["facts"].items())
        lines.append(f"  - {md_code(example['id'])} {md_excerpt(example['text'])} ({md_excerpt(facts)})")
    for example in conflicts["examples"]:
        lines.append(f"  - prompt {md_excerpt(example['prompt'])}: " + " vs ".join(
            f"{md_excerpt(a['text'])}" for a in example["answers"]))
    return lines + [""]


def fit_json(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2)
