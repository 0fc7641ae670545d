"""Train / held-out split that keeps near-duplicates on one side, and a leakage check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from adapterops.config import DedupConfig
from adapterops.refs import SplitResult
from adapterops.storage import write_parquet
from tasks.dedup.clusters import sketch_records, verified_pairs
from tasks.records.quarantine import QUARANTINE_FIELDS, quarantine_row


def assign_split(ids: pd.Series, heldout_fraction: float, seed: int) -> pd.Series:
    """'train' or 'heldout' per id, from a seeded hash: stable when records are added or removed."""
    def bucket(record_id: str) -> float:
        digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64
    return ids.astype(str).map(lambda i: "heldout" if bucket(i) < heldout_fraction else "train")


def leaking_train_ids(train: pd.DataFrame, heldout: pd.DataFrame, params: DedupConfig) -> dict[str, str]:
    """Train ids that near-duplicate a held-out record (Jaccard >= threshold), mapped to that record's id.

    Uses dedup's own sketches and verified pairs, so both stages agree on shingles and Jaccard.
    """
    if train.empty or heldout.empty:
        return {}
    both = pd.concat([heldout, train], ignore_index=True).assign(id=lambda f: f["id"].astype(str))
    sketches = sketch_records(both, params)
    rows = np.flatnonzero(np.diff(sketches.set_offsets) > 0)
    pairs, _ = verified_pairs(sketches, rows, params)
    n_held = len(heldout)
    ids = sketches.ids
    leaks: dict[str, str] = {}
    for i, j in pairs.tolist():
        if (i < n_held) == (j < n_held):
            continue
        held, tr = (i, j) if i < n_held else (j, i)
        leaks.setdefault(ids[tr], ids[held])
    return leaks


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

def unusable_eval_rows(evaluation: pd.DataFrame) -> pd.Series:
    """Per eval record, why it cannot be scored ('' when it can): a prompt and a completion are needed."""
    reasons = pd.Series("", index=evaluation.index, dtype=object)
    for column in ("completion", "prompt"):
        empty = evaluation[column].isna() | (evaluation[column].astype(str).str.strip() == "")
        reasons[empty.to_numpy()] = f"eval_missing_field: {column}"
    return reasons


def split_file(valid_path: str, eval_path: str, params: DedupConfig, heldout_fraction: float, seed: int,
               stage_dir) -> SplitResult:
    """train.parquet, heldout.parquet, eval.parquet; train records that leak into either are quarantined.

    eval_path: the evaluation records, already ingested and PII-checked; those that cannot be scored
    go to eval_quarantine.parquet.
    """
    stage_dir = Path(stage_dir)
    frame = pd.read_parquet(valid_path)
    side = assign_split(frame["id"], heldout_fraction, seed)
    train, heldout = frame[side == "train"], frame[side == "heldout"]
    evaluation = pd.read_parquet(eval_path).reindex(columns=frame.columns)
    reasons = unusable_eval_rows(evaluation)
    unusable = evaluation[(reasons != "").to_numpy()]
    eval_quarantine = pd.DataFrame([
        quarantine_row(row.id, row.input_file, row.input_line, "eval", reason, str(row.prompt))
        for row, reason in zip(unusable.itertuples(), reasons[reasons != ""])], columns=list(QUARANTINE_FIELDS))
    evaluation = evaluation[(reasons == "").to_numpy()]
    leaks = leaking_train_ids(train, pd.concat([heldout, evaluation], ignore_index=True), params)
    leaked = train["id"].astype(str).isin(leaks)
    quarantine = pd.DataFrame([
        quarantine_row(row.id, row.input_file, row.input_line, "split",
                       f"near_duplicate_of_heldout: {leaks[str(row.id)]}", str(row.prompt))
        for row in train.loc[leaked].itertuples()], columns=list(QUARANTINE_FIELDS))
    train = train[~leaked]
    for name, part in (("train", train), ("heldout", heldout), ("eval", evaluation)):
        write_parquet(part, stage_dir / f"{name}.parquet")
    write_parquet(quarantine, stage_dir / "split_quarantine.parquet")
    write_parquet(eval_quarantine, stage_dir / "eval_quarantine.parquet")
    return SplitResult(train=str(stage_dir / "train.parquet"), heldout=str(stage_dir / "heldout.parquet"),
                       eval=str(stage_dir / "eval.parquet"), quarantine=str(stage_dir / "split_quarantine.parquet"),
                       eval_quarantine=str(stage_dir / "eval_quarantine.parquet"),
                       input=len(frame), train_count=len(train), heldout_count=len(heldout),
                       eval_count=len(evaluation), quarantined=int(leaked.sum()), eval_quarantined=len(eval_quarantine))
