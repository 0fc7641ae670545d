"""Several annotators per task: a policy settles each task's decision, and their agreement is measured.

Every annotation is kept. Under a policy a task is settled by one of its annotations (that one is applied)
or it is `disputed` (none is applied; the owner sees it). Policies:

- latest: the most recently updated annotation wins (one annotator's re-opening changes the winner).
- majority: a decision (verdict, and for `correct` the same corrected text) given by more than half.
- owner_wins: the reviewer's latest annotation settles it; without one the others must all agree.
- unanimous: all annotators give the same decision.

A task with one annotation is settled under every policy. Agreement is measured on the verdict alone:
Cohen's kappa for two annotators, Krippendorff's alpha (nominal) for more, per label round (file).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import asdict
from itertools import combinations
from typing import get_args

import numpy as np

from adapterops.config import LabelingConfig

POLICIES = get_args(LabelingConfig.model_fields["policy"].annotation)   # declared once, in the config
SIDE_OUTCOMES = ("agreed", "overruled", "disputed")    # annotations that are not the one applied


def _key(annotation) -> tuple:
    """What two annotations must share to agree: the verdict, and the text of a correction."""
    text = " ".join(str(annotation.completion or "").split()) if annotation.verdict == "correct" else ""
    return annotation.verdict, text


def _when(annotation) -> str:
    return str(annotation.time or "")


def _verdicts_text(annotations) -> str:
    return "; ".join(f"{a.verdict} by {a.annotator or '?'}" for a in sorted(annotations, key=_when))


def settle_task(annotations: list, policy: str, reviewer: str | None = None):
    """(the annotation that settles the task or None when disputed, why): one task's annotations under a policy."""
    if policy not in POLICIES:
        raise ValueError(f"unknown labeling policy {policy!r}")
    ordered = sorted(annotations, key=_when)
    if len(ordered) == 1:
        return ordered[0], "one annotation"
    keys = Counter(_key(a) for a in ordered)
    if policy == "latest":
        return ordered[-1], "latest annotation"
    if policy == "owner_wins" and reviewer:
        own = [a for a in ordered if str(a.annotator).casefold() == reviewer.casefold()]
        if own:
            return own[-1], f"reviewer {reviewer}"
    if len(keys) == 1:
        return ordered[-1], "all agree"
    if policy == "majority":
        key, count = keys.most_common(1)[0]
        if count * 2 > len(ordered):
            return [a for a in ordered if _key(a) == key][-1], f"majority {count} of {len(ordered)}"
        return None, f"no majority ({_verdicts_text(ordered)})"
    if policy == "owner_wins":
        return None, f"waiting for reviewer {reviewer or '?'} ({_verdicts_text(ordered)})"
    return None, f"not unanimous ({_verdicts_text(ordered)})"


def settle(annotations: list, policy: str, reviewer: str | None = None) -> tuple[list, list[dict]]:
    """(the settling annotation of every settled task, a report row for every other annotation).

    Tasks are the annotations' (file, task, record id, record digest); the settling annotations keep the
    order of their tasks' first appearance. Other rows are `agreed` or `overruled` (settled tasks) or
    `disputed` (every annotation of a task no annotation settles).
    """
    tasks: dict[tuple, list] = {}
    for annotation in annotations:
        key = (annotation.file, annotation.task, annotation.record_id, annotation.record_digest)
        tasks.setdefault(key, []).append(annotation)
    settled, rows = [], []
    for group in tasks.values():
        chosen, why = settle_task(group, policy, reviewer)
        if chosen is None:
            rows += [side_row(a, "disputed", f"{a.verdict} by {a.annotator or '?'}: disputed under {policy}, {why}")
                     for a in group]
            continue
        settled.append(chosen)
        for other in (a for a in group if a is not chosen):
            outcome = "agreed" if _key(other) == _key(chosen) else "overruled"
            rows.append(side_row(other, outcome, f"{other.verdict} by {other.annotator or '?'}: {outcome}; "
                                                 f"{chosen.verdict} by {chosen.annotator or '?'} applies ({why})"))
    return settled, rows


def side_row(annotation, outcome: str, detail: str) -> dict:
    row = asdict(annotation)
    return {"record_id": row.pop("record_id"), "file": row.pop("file"), "outcome": outcome, "detail": detail, **row}


def disputed_tasks(rows: list[dict]) -> list[dict]:
    """One entry per disputed task: its record, task id, file and each annotator's verdict."""
    tasks: dict[tuple, dict] = {}
    for row in rows:
        if row.get("outcome") != "disputed":
            continue
        key = (row.get("file"), row.get("task"), row.get("record_id"))
        entry = tasks.setdefault(key, {"record_id": row.get("record_id"), "task": row.get("task") or "",
                                       "file": row.get("file"), "verdicts": []})
        entry["verdicts"].append(f"{row.get('verdict')} by {row.get('annotator') or '?'}"
                                 + (f" ({row['note']})" if row.get("note") else ""))
    return list(tasks.values())


# --- agreement ----------------------------------------------------------------------------------------

def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 4)


def _cohen_kappa(a: list[str], b: list[str]) -> float | None:
    from sklearn.metrics import cohen_kappa_score

    if not a or len(set(a) | set(b)) < 2:
        return None                       # one verdict throughout: kappa is undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _number(cohen_kappa_score(a, b))


def _krippendorff_alpha(matrix: list[list[str | None]], verdicts: list[str]) -> float | None:
    import krippendorff

    codes = {v: i for i, v in enumerate(verdicts)}
    data = np.array([[np.nan if v is None else codes[v] for v in row] for row in matrix], dtype=float)
    pairable = (np.sum(~np.isnan(data), axis=0) >= 2)
    if not pairable.any() or len(set(data[:, pairable][~np.isnan(data[:, pairable])])) < 2:
        return None
    return _number(krippendorff.alpha(reliability_data=data[:, pairable], level_of_measurement="nominal"))


def agreement(annotations: list) -> dict:
    """Per-annotator verdict counts, pairwise agreement (share and Cohen's kappa) and the overall figure.

    Overall: Cohen's kappa with two annotators, Krippendorff's alpha (nominal) with more; None when
    undefined (no task with two annotators, or one verdict throughout). An annotator who labeled a
    task twice counts with their latest annotation.
    """
    latest: dict[tuple, object] = {}
    for a in sorted(annotations, key=_when):
        latest[((a.file, a.task, a.record_id), a.annotator or "?")] = a
    annotators = sorted({who for _, who in latest})
    tasks = sorted({task for task, _ in latest}, key=str)
    verdict = {(task, who): a.verdict for (task, who), a in latest.items()}
    counts = {who: dict(Counter(v for (_, w), v in verdict.items() if w == who)) for who in annotators}
    pairwise = []
    for first, second in combinations(annotators, 2):
        both = [t for t in tasks if (t, first) in verdict and (t, second) in verdict]
        a, b = [verdict[t, first] for t in both], [verdict[t, second] for t in both]
        pairwise.append({"annotators": [first, second], "tasks": len(both),
                         "agreement": _number(sum(x == y for x, y in zip(a, b)) / len(both)) if both else None,
                         "cohen_kappa": _cohen_kappa(a, b)})
    shared = [t for t in tasks if sum((t, who) in verdict for who in annotators) >= 2]
    agreeing = sum(len({verdict[t, w] for w in annotators if (t, w) in verdict}) == 1 for t in shared)
    overall = {"method": None, "value": None, "tasks": len(shared),
               "agreement": _number(agreeing / len(shared)) if shared else None}
    if len(annotators) == 2:
        overall |= {"method": "cohen_kappa", "value": pairwise[0]["cohen_kappa"]}
    elif len(annotators) > 2:
        matrix = [[verdict.get((t, who)) for t in tasks] for who in annotators]
        overall |= {"method": "krippendorff_alpha",
                    "value": _krippendorff_alpha(matrix, sorted(set(verdict.values())))}
    return {"annotations": len(annotations), "tasks": len(tasks), "annotators": counts, "pairwise": pairwise,
            "overall": overall}


def agreement_by_round(annotations: list) -> list[dict]:
    """agreement() per label round: each labels file is one round."""
    files: dict[str, list] = {}
    for a in annotations:
        files.setdefault(a.file, []).append(a)
    return [{"file": file} | agreement(group) for file, group in files.items()]


def agreement_metrics(rounds: list[dict], disputed: int) -> dict[str, float]:
    """MLflow metrics of the rounds: labels.<round>.<figure>, rounds numbered in file order from 1."""
    metrics = {"labels.disputed_tasks": float(disputed)}
    for number, entry in enumerate(rounds, start=1):
        prefix = f"labels.round{number}"
        metrics |= {f"{prefix}.annotations": float(entry["annotations"]), f"{prefix}.tasks": float(entry["tasks"]),
                    f"{prefix}.annotators": float(len(entry["annotators"]))}
        overall = entry["overall"]
        if overall["agreement"] is not None:
            metrics[f"{prefix}.agreement"] = overall["agreement"]
        if overall["value"] is not None:
            metrics[f"{prefix}.{overall['method']}"] = overall["value"]
    return metrics


def agreement_lines(rounds: list[dict], escape) -> list[str]:
    """Markdown lines: per round the overall figure, pairwise agreement and each annotator's verdict counts."""
    lines = []
    for number, entry in enumerate(rounds, start=1):
        overall = entry["overall"]
        figure = (f"{overall['method'].replace('_', ' ')} {overall['value']:.3f}" if overall["value"] is not None
                  else "agreement undefined (no task with two annotators, or one verdict throughout)")
        share = f", same verdict on {overall['agreement']:.0%} of {overall['tasks']} shared tasks" \
            if overall["agreement"] is not None else ""
        lines += [f"Round {number} ({escape(entry['file'])}): {entry['annotations']} annotations on {entry['tasks']} "
                  f"tasks; {figure}{share}.", "", "| annotator | accept | correct | reject |", "|---|---|---|---|"]
        lines += [f"| {escape(who)} | {c.get('accept', 0)} | {c.get('correct', 0)} | {c.get('reject', 0)} |"
                  for who, c in entry["annotators"].items()]
        lines += [""] + [f"- {escape(p['annotators'][0])} / {escape(p['annotators'][1])}: {p['tasks']} shared tasks"
                         + (f", agreement {p['agreement']:.0%}" if p["agreement"] is not None else "")
                         + (f", Cohen's kappa {p['cohen_kappa']:.3f}" if p["cohen_kappa"] is not None else "")
                         for p in entry["pairwise"]] + [""]
    return lines
