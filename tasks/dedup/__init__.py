"""Exact and MinHash near-duplicate removal: text → signatures (minhash) → candidate pairs (lsh) → verified
clusters and keepers (clusters), the file stage and stored signatures (stage), and its report;
`python -m tasks.dedup` compiles and caches the kernels.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.dedup.clusters import (
    concat_sketches,
    dedup_records,
    empty_sketches,
    nearest_records,
    similarity_clusters,
    sketch_records,
)
from tasks.dedup.report import report_markdown
from tasks.dedup.stage import (
    SHARD_ROWS,
    TEXT_COLUMNS,
    dedup_file,
    finish_dedup,
    load_sketches,
    save_sketches,
    sketch_columns,
    sketch_file,
)

__all__ = [
    "SHARD_ROWS", "TEXT_COLUMNS", "concat_sketches", "dedup_file", "dedup_records", "empty_sketches",
    "finish_dedup", "load_sketches", "nearest_records", "report_markdown", "similarity_clusters", "save_sketches", "sketch_columns", "sketch_file",
    "sketch_records",
]
