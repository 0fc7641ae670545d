"""Corpus versions: content digest, manifest, diff, the version folder and MLflow run, and fetching a
version's files on a machine that did not curate it.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.corpus.versions import (
    corpus_contract,
    corpus_ref,
    diff_against_last_approved,
    diff_markdown,
    diff_records,
    displayed_status,
    find_version,
    get_version,
    last_approved,
    last_approved_signatures,
    list_versions,
    load_manifest,
    publish_version,
    run_contract,
    stored_ref,
    version_records,
)

__all__ = [
    "corpus_contract", "corpus_ref", "diff_against_last_approved", "diff_markdown", "diff_records", "displayed_status", "find_version",
    "get_version", "last_approved", "last_approved_signatures", "list_versions", "load_manifest", "publish_version",
    "run_contract", "stored_ref", "version_records",
]
