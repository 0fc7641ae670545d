"""Quality without references: the owner's scorers that need none (format patterns, PII leaks), the answer's
length against the corpus's, and tool-call validity, on production answers; feedback rates; each beside its
release-time figure (the evaluation's, or the corpus's own where the evaluation has none)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from adapterops.config import ScorerSpec
from tasks.evaluate.scorers import build_scorers

REFERENCE_FREE = ("regex_match",)     # scorers that judge an answer alone (pii_leak is judged before redaction)
LENGTH, TOOL_CALLS, PII = "length_in_range", "tool_calls_valid", "pii_leak"


def reference_free(specs: list[ScorerSpec]) -> list[ScorerSpec]:
    return [s for s in specs if s.kind in REFERENCE_FREE]


def length_range(completions: pd.Series) -> tuple[int, int]:
    """The 5th-95th percentile of the corpus's answer lengths, in characters."""
    lengths = completions.fillna("").str.len().to_numpy()
    if not len(lengths):
        return 0, 0
    return int(np.percentile(lengths, 5)), int(np.percentile(lengths, 95))


def in_range(texts: pd.Series, bounds: tuple[int, int]) -> np.ndarray:
    lengths = texts.fillna("").str.len().to_numpy()
    return ((lengths >= bounds[0]) & (lengths <= bounds[1])).astype(float)


def calls_valid(calls_json, tools_json) -> float | None:
    """1 when every tool call names an offered tool and carries a JSON object; None when the answer made none."""
    if not isinstance(calls_json, str) or not calls_json:
        return None
    calls = json.loads(calls_json)
    if not calls:
        return None
    offered = {t.get("function", {}).get("name") for t in json.loads(tools_json)} if isinstance(tools_json, str) else set()
    for call in calls:
        try:
            arguments = json.loads(call["arguments"]) if isinstance(call["arguments"], str) else call["arguments"]
        except ValueError:
            return 0.0
        if not isinstance(arguments, dict) or call["name"] not in offered:
            return 0.0
    return 1.0


def corpus_calls(records: pd.DataFrame) -> pd.DataFrame:
    """(tool_calls, tools) of the corpus records' last assistant turns, in the shape the recorder stores."""
    rows = []
    for messages, tools in zip(records.get("messages", pd.Series(dtype=object)), records.get("tools", pd.Series(dtype=object))):
        calls = []
        if isinstance(messages, str):
            for m in json.loads(messages):
                if m["role"] == "assistant":
                    calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                             for c in m.get("tool_calls") or ()]
        rows.append({"tool_calls": json.dumps(calls) if calls else None, "tools": tools})
    return pd.DataFrame(rows, columns=["tool_calls", "tools"])


def production_scores(traffic: pd.DataFrame, specs: list[ScorerSpec], bounds: tuple[int, int]) -> tuple[dict, np.ndarray]:
    """Mean of each reference-free score over the window's answers, and the per-answer lowest score (0-1, for
    picking low-scored conversations to label)."""
    answers = traffic["completion"].fillna("")
    per_answer = {}
    for scorer in build_scorers(reference_free(specs)) if reference_free(specs) else []:
        values = [scorer(p or "", a, "") for p, a in zip(traffic["prompt"].fillna(""), answers)]
        for score in scorer.scores:
            per_answer[score.name] = np.array([v[score.name] for v in values])
    per_answer[LENGTH] = in_range(answers, bounds)
    if "pii_leak" in traffic:
        per_answer[PII] = traffic["pii_leak"].fillna(False).astype(float).to_numpy()
    valid = [calls_valid(c, t) for c, t in zip(traffic["tool_calls"], traffic["tools"])]
    means = {name: float(values.mean()) for name, values in per_answer.items() if len(values)}
    judged = [v for v in valid if v is not None]
    if judged:
        means[TOOL_CALLS] = float(np.mean(judged))
    goodness = [values if name != PII else 1 - values for name, values in per_answer.items()]
    lowest = np.min(np.vstack(goodness), axis=0) if goodness and len(traffic) else np.ones(len(traffic))
    return means, lowest


def corpus_scores(heldout: pd.DataFrame, bounds: tuple[int, int]) -> dict:
    """The corpus's own figures for the scores the evaluation does not report (length, tool calls)."""
    figures = {LENGTH: float(in_range(heldout["completion"], bounds).mean()) if len(heldout) else 1.0}
    calls = corpus_calls(heldout)
    judged = [v for v in (calls_valid(c, t) for c, t in zip(calls["tool_calls"], calls["tools"])) if v is not None]
    if judged:
        figures[TOOL_CALLS] = float(np.mean(judged))
    return figures


def compared(production: dict, release: dict, corpus: dict) -> list[dict]:
    """One row per score: production now, the release-time figure and where it comes from, the change and
    whether higher is better."""
    rows = []
    for name, value in production.items():
        source, before = ("evaluation", release[name]) if name in release else \
            ("corpus", corpus[name]) if name in corpus else (None, None)
        higher = name != PII
        worse = None if before is None else (before - value if higher else value - before)
        rows.append({"score": name, "production": value, "release": before, "source": source,
                     "higher_is_better": higher, "worse_by": worse})
    return rows


def feedback_rates(feedback: pd.DataFrame, answered: int) -> dict:
    count = int(len(feedback))
    bad = int((feedback["verdict"] == "bad").sum()) if count else 0
    return {"count": count, "bad": bad, "good": count - bad, "bad_share": bad / count if count else 0.0,
            "rated_share": count / answered if answered else 0.0}
