"""A judge earns its vote: its agreement with the owner's settled labels, as Cohen's kappa, before its score may gate.

The labelled examples are the corpus version's settled decisions (`labels.parquet`, outcome applied or
correction_rejected) with the text the owner judged, read back from the label files its manifest names
(digests checked). guidelines and correctness judges are asked about each labelled completion (accept:
yes; reject or correct: no); a pairwise judge is shown each correction beside the completion it replaced
(the owner preferred the correction), on a side fixed per record.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adapterops.config import EvaluationConfig, JudgeConfig, ScorerSpec
from adapterops.refs import CorpusRef
from adapterops.storage import file_digest
from tasks.corpus.fetch import corpus_folder
from tasks.evaluate.judges import JudgeClient, candidate_first, judge_pairwise, judge_single, unscored_counts
from tasks.label.files import read_label_files

SETTLED = ("applied", "correction_rejected")


@dataclass(frozen=True)
class Labelled:
    """One settled decision of the owner with the text it was made on."""
    record_id: str
    prompt: str
    answer: str                 # the completion the owner judged
    verdict: str                # accept | correct | reject
    correction: str | None      # the owner's completion, with verdict correct


def cohen_kappa(owner: list[str], judge: list[str]) -> float | None:
    """Cohen's kappa of two label lists; None when undefined (one label throughout)."""
    from sklearn.metrics import cohen_kappa_score

    if not owner or len(set(owner) | set(judge)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(owner, judge))
    return value if math.isfinite(value) else None


def judge_agreement(client: JudgeClient, spec: ScorerSpec, labelled: list[Labelled]) -> dict:
    """The judge's verdicts on the labelled examples against the owner's: kappa, counts, unscored by reason."""
    if spec.judge == "pairwise":
        pairs = [item for item in labelled if item.verdict == "correct" and item.correction]
        verdicts = judge_pairwise(client, spec, [p.record_id for p in pairs], [p.prompt for p in pairs],
                                  [p.correction for p in pairs], [p.answer for p in pairs], "the owner's corrections")
        sides = ["A" if candidate_first(p.record_id) else "B" for p in pairs]
        owner = sides
        judge = [side if v.value == 1 else "tie" if v.value == 0.5 else ("B" if side == "A" else "A")
                 for side, v in zip(sides, verdicts)]
    else:
        pairs = labelled
        verdicts = judge_single(client, spec, [p.prompt for p in pairs], [p.answer for p in pairs], [None] * len(pairs),
                                "the owner's labelled examples")
        owner = ["yes" if p.verdict == "accept" else "no" for p in pairs]
        judge = ["yes" if v.value == 1 else "no" for v in verdicts]
    scored = [i for i, v in enumerate(verdicts) if v.reason is None]
    kappa = cohen_kappa([owner[i] for i in scored], [judge[i] for i in scored])
    agree = sum(owner[i] == judge[i] for i in scored)
    return {"labelled": len(pairs), "scored_labels": len(scored), "agreed": agree, "kappa": kappa,
            "unscored_labels": unscored_counts(verdicts)}


def gate_standing(figures: dict, settings: JudgeConfig, missing: str = "") -> dict:
    """figures plus whether the judge's score may gate and why, in one line the decision and summary show."""
    kappa, scored, n = figures.get("kappa"), figures.get("scored_labels", 0), figures.get("labelled", 0)
    on = f"on {scored} labelled examples"
    if n == 0:
        reason = f"agreement with the owner's labels not measured: {missing or 'no labelled examples'}"
    elif scored < settings.min_labels:
        lost = ", ".join(f"{k}: {v}" for k, v in figures.get("unscored_labels", {}).items())
        reason = (f"agreement not measured: {scored} of {n} labelled examples scored, evaluation.judge.min_labels is "
                  f"{settings.min_labels}" + (f" (unscored {lost})" if lost else ""))
    elif kappa is None:
        reason = f"agreement undefined: one verdict throughout the {scored} labelled examples"
    elif kappa < settings.min_kappa:
        reason = f"kappa {kappa:.2f} < evaluation.judge.min_kappa {settings.min_kappa:.2f} {on}"
    else:
        reason = f"kappa {kappa:.2f} >= {settings.min_kappa:.2f} {on}"
    gates = kappa is not None and scored >= settings.min_labels and n > 0 and kappa >= settings.min_kappa
    return figures | {"min_kappa": settings.min_kappa, "gates": bool(gates), "reason": reason}


# --- wrapper: the corpus version's settled labels and each judge's standing on them ------------------

def owner_labels(folder: Path) -> tuple[list[Labelled], str]:
    """(the corpus version's settled labels with their texts, what is missing when there are none or fewer)."""
    report_path = folder / "labels.parquet"
    if not report_path.is_file():
        return [], "the corpus version was curated without labels (list annotated exports under `labels:`)"
    report = pd.read_parquet(report_path)
    settled = report[report["outcome"].isin(SETTLED)]
    if settled.empty:
        return [], "the corpus version has no settled labels"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    usable, problems = [], []
    for entry in manifest.get("labels") or []:
        path = Path(entry["path"])
        if not path.is_file():
            problems.append(f"label file {path} is missing")
        elif file_digest(path) != entry["digest"]:
            problems.append(f"label file {path} changed since curation")
        else:
            usable.append(str(path))
    tasks = read_label_files(usable)[0] if usable else []
    texts = {(str(t["data"].get("record_id")), str(t["data"].get("record_digest"))): t["data"]
             for t in tasks if isinstance(t.get("data"), dict)}
    labelled = []
    for row in settled.to_dict("records"):
        data = texts.get((str(row["record_id"]), str(row["record_digest"])))
        if data is not None:
            correction = row.get("completion") if row["verdict"] == "correct" else None
            labelled.append(Labelled(str(row["record_id"]), str(data.get("prompt") or ""),
                                     str(data.get("completion") or ""), str(row["verdict"]), correction))
    return labelled, "; ".join(problems)


def judge_standings(client: JudgeClient, judges: list[ScorerSpec], corpus: CorpusRef, evaluation: EvaluationConfig) -> dict:
    """Per judge: its agreement with the owner's labels on the corpus version and whether its score may gate."""
    labelled, missing = owner_labels(corpus_folder(corpus))
    standings = {}
    for spec in judges:
        figures = judge_agreement(client, spec, labelled) if labelled else \
            {"labelled": 0, "scored_labels": 0, "agreed": 0, "kappa": None, "unscored_labels": {}}
        why = missing
        if labelled and not figures["labelled"]:
            why = f"no correction among the {len(labelled)} settled labels (a pairwise judge is measured on corrections)"
        standings[spec.label] = gate_standing(figures, evaluation.judge, why)
    return standings
