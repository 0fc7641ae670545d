"""Replay: general examples mixed into training so the adapter keeps what the base could do (train.replay_share).

The examples come from train.replay_source: the built-in base's general corpus (demo:general, outside the support
domain and apart from the retain set's seed) or the owner's JSONL of {prompt, completion}. They are one-turn
records beside the corpus's; the corpus itself, its digest and its approval are untouched.
"""

from __future__ import annotations

from pathlib import Path

from adapterops.config import TrainConfig
from adapterops.errors import AdapterOpsError
from tasks.records.prompt_pairs import prompt_pairs

REPLAY_SEED = 5_000   # apart from the pretraining seeds and the retain set's


def replay_count(train: TrainConfig, corpus_records: int) -> int:
    """How many replayed examples make them train.replay_share of all training examples."""
    share = train.replay_share
    return round(corpus_records * share / (1 - share)) if share else 0


def replay_records(train: TrainConfig, corpus_records: int) -> list[dict]:
    """The replayed records (id, prompt, completion), deterministic; a file shorter than needed is cycled."""
    count = replay_count(train, corpus_records)
    if not count:
        return []
    if train.replay_source == "demo:general":
        from adapterops.general_data import RETAIN_KINDS, general_records

        rows = general_records(count, REPLAY_SEED, id_prefix="P", kinds=RETAIN_KINDS)
    else:
        path = Path(train.replay_source).expanduser()
        if not path.is_file():
            raise AdapterOpsError(f"train.replay_source {train.replay_source!r} is not a file; write a JSONL of "
                                  "{prompt, completion} there or use demo:general.")
        pairs = prompt_pairs(path.read_text(encoding="utf-8"), path, "the replay file")
        rows = [pairs[i % len(pairs)] for i in range(count)]
    return [{"id": f"replay-{i:06d}", "prompt": r["prompt"], "completion": r["completion"]} for i, r in enumerate(rows)]
