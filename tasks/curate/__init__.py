"""Curation: inputs → ingest → PII → (dedup) → contract → split, and the curation cache that skips an unchanged run.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.curate.cache import approved_digest, fingerprint_of, remember, reusable_corpus
from tasks.curate.inputs import ingest_files, route_splits
from tasks.curate.pii import pii_file
from tasks.curate.split import split_file
from tasks.curate.validate import validate_file

__all__ = [
    "approved_digest", "fingerprint_of", "ingest_files", "pii_file", "remember", "reusable_corpus",
    "route_splits", "split_file", "validate_file",
]
