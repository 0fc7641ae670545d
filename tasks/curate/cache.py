"""An unchanged curation known before curating: a fingerprint of everything that decides the corpus digest."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from adapterops.refs import CorpusRef
from adapterops.storage import file_digest, write_json
from adapterops.workspace import resolve_workspace
from tasks.corpus.versions import corpus_digest, find_version, last_approved, load_manifest, records_digest, stored_ref
from tasks.curate.inputs import expand_inputs
from tasks.records.contract import contract_path

# Libraries whose behaviour decides what curation keeps (their versions enter the fingerprint).
CURATION_LIBRARIES = ("datasketch", "great_expectations", "numpy", "pandas", "pyarrow")
CODE_FOLDERS = ("adapterops", "flows", "tasks")
KEEP_FINGERPRINTS = 100   # entries in a pipeline's index: enough for configs that alternate


def curation_fingerprint(inputs: dict[str, list[list[str]]], settings: dict, contract_digest: str, code: str) -> str:
    """sha256 over the input, eval and label file digests, the settings, the contract and the code."""
    parts = {"inputs": inputs, "settings": settings, "contract": contract_digest, "code": code}
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def entry_applies(entry: dict | None, approved_now: str | None) -> bool:
    """Incremental dedup anchors on the last approved version, so an entry holds while that is the one it was
    curated against, or the version it gave (anchored on itself, curation keeps what it kept)."""
    return entry is not None and approved_now in (entry["anchored_on"], entry["digest"])


# --- wrappers: hash the files, read and write the pipeline's index --------------------------------

def rehashes_to(folder: Path, manifest: dict) -> bool:
    """True when the version's train, held-out and eval files still hash to its digest and manifest."""
    train, heldout = pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "heldout.parquet")
    if corpus_digest(train, heldout, manifest["settings"], manifest["contract_version"]) != manifest["digest"]:
        return False
    return records_digest(pd.read_parquet(folder / "eval.parquet")) == manifest["record_digests"]["eval"]


def _digest_paths(paths: list[str]) -> list[list[str]]:
    """[path, sha256] for every file the inputs expand to (a Hugging Face folder: each file in it)."""
    rows = []
    for path, fmt in expand_inputs(paths):
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if fmt == "hf" else [Path(path)]
        rows += [[str(f), file_digest(f)] for f in files]
    return rows


def code_version() -> str:
    """sha256 of the project's Python sources and the curation libraries' versions (uncommitted edits count)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for folder in CODE_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    for name in CURATION_LIBRARIES:
        try:
            digest.update(f"{name}=={version(name)}\0".encode("utf-8"))
        except PackageNotFoundError:
            digest.update(f"{name} absent\0".encode("utf-8"))
    return digest.hexdigest()


def fingerprint_of(sources: list[str], eval_paths: list[str], labels: list[str], contract: str, settings: dict) -> str:
    """The curation fingerprint of these resolved paths, this contract and these settings, read from the disk now."""
    inputs = {"sources": _digest_paths(sources), "eval": _digest_paths(eval_paths),
              "labels": [[p, file_digest(Path(p))] for p in labels]}   # label exports are files (.json, .jsonl)
    return curation_fingerprint(inputs, settings | {"contract": contract}, file_digest(contract_path(contract)),
                                code_version())


def approved_digest(pipeline: str) -> str | None:
    """The digest of the pipeline's last approved version (what incremental dedup anchors on); None if none."""
    approved = last_approved(pipeline)
    return approved.data.tags["corpus.digest"] if approved else None


def _index_path(pipeline: str) -> Path:
    return resolve_workspace().corpus_dir / pipeline / "fingerprints.json"


def _read_index(pipeline: str) -> dict:
    path = _index_path(pipeline)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):   # a damaged cache only costs a full curation
        return {}


def remember(pipeline: str, fingerprint: str, digest: str, anchored_on: str | None) -> None:
    """Record that curating with this fingerprint, anchored on that approved version, gave this digest."""
    index = {k: v for k, v in _read_index(pipeline).items() if k != fingerprint}
    index[fingerprint] = {"digest": digest, "anchored_on": anchored_on}
    write_json(dict(list(index.items())[-KEEP_FINGERPRINTS:]), _index_path(pipeline))


def reusable_corpus(pipeline: str, fingerprint: str, approved_now: str | None) -> tuple[CorpusRef | None, str]:
    """(the corpus reference to reuse, why) when a version was curated from this fingerprint and its files
    still rehash to its digest; (None, why not) otherwise."""
    entry = _read_index(pipeline).get(fingerprint)
    if entry is None:
        return None, "no earlier version was curated from these inputs, labels, contract, settings and code"
    if not entry_applies(entry, approved_now):
        return None, "another version was approved since: incremental dedup anchors on it"
    run = find_version(pipeline, digest=entry["digest"])
    if run is None:
        return None, f"the version with digest {entry['digest']} is no longer in MLflow"
    version = run.data.tags["corpus.version"]
    try:
        manifest = load_manifest(run)
        intact = rehashes_to(Path(run.data.tags["corpus.path"]), manifest)
    except (OSError, KeyError, ValueError) as error:
        return None, f"version {version}'s files cannot be read ({error})"
    if not intact:
        return None, f"version {version}'s files no longer hash to its digest"
    return stored_ref(run, manifest), (f"same inputs, labels, contract, settings and code as version {version}; "
                                       f"its files rehash to {entry['digest']}")

