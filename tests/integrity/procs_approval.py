"""Helpers for the approval and version tests: owner keys and a contract listing them, the files
a curation hands to publish_version, and real child processes (Python snippets and the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from adapterops.refs import (
    CorpusRef,
    CurationStages,
    DedupResult,
    IngestResult,
    PiiResult,
    SplitResult,
    ValidationResult,
)

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"dedup": {"threshold": 0.8}, "split": {"heldout_fraction": 0.2, "seed": 1}}
CLI = [sys.executable, "-c", "from cli.main import main; main()"]


def owner_key_line(name: str) -> str:
    """NAME's public-key line, making the key in the session workspace on first use."""
    from adapterops.signing import init_key, owner_key_path, public_key_line

    key, _ = init_key(owner_key_path(name))
    return public_key_line(key.public_key())


def keyed_contract(folder: Path, owners: dict[str, dict] | None = None) -> Path:
    """A copy of the shipped contract (same name and version, so digests are unchanged) whose owners are
    `owners` (name -> extra fields, e.g. {"form": True}); a person gets a public key unless public_key=None."""
    from tasks.records.contract import CONTRACTS_DIR

    owners = {"dana.k": {"form": True}, "policy:auto": {}} if owners is None else owners
    data = yaml.safe_load((CONTRACTS_DIR / "support_tickets.yaml").read_text(encoding="utf-8"))
    entries = []
    for name, extra in owners.items():
        if name.startswith("policy:"):
            entries.append(name)
        else:
            entry = {"name": name, "public_key": owner_key_line(name)} | extra
            entries.append({k: v for k, v in entry.items() if v is not None})
    data["owners"] = entries
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "support_tickets.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def records(n: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"{tag}-{i}" for i in range(n)], "source": "email", "timestamp": "2026-01-01T00:00",
                         "prompt": [f"Ticket {tag} {i}: my invoice is wrong" for i in range(n)],
                         "completion": [f"Triage: billing | priority: {i % 3}" for i in range(n)]})


def fake_stages(folder: Path, tag: str, n: int = 6) -> CurationStages:
    """The stage outputs a curation hands to publish_version, for `n` records named by `tag`."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = records(n, tag)
    paths = {}
    for name, part in (("train", frame.iloc[: n - 2]), ("heldout", frame.iloc[n - 2:]), ("eval", records(3, "eval")),
                       ("duplicates", frame.iloc[:0]), ("quarantine", pd.DataFrame({"id": pd.Series([], dtype=str)}))):
        paths[name] = str(folder / f"{name}.parquet")
        part.to_parquet(paths[name], index=False)
    for name in ("validation.json", "report.json", "pii.json"):
        (folder / name).write_text("{}", encoding="utf-8")
    (folder / "data_docs").mkdir(exist_ok=True)
    empty = paths["quarantine"]
    ingest = IngestResult(records=paths["train"], quarantine=empty, input=n, kept=n, quarantined=0, files=[])
    pii = PiiResult(records=paths["train"], quarantine=empty, report=str(folder / "pii.json"), input=n, kept=n,
                    quarantined=0, redacted=0, detectors=[], contract="support_tickets", contract_version=1)
    return CurationStages(
        ingest=ingest, pii=pii, eval_ingest=ingest.model_copy(update={"input": 3, "kept": 3}),
        eval_pii=pii.model_copy(update={"input": 3, "kept": 3}),
        dedup=DedupResult(kept_records=paths["train"], duplicates=paths["duplicates"], report=str(folder / "report.json"),
                          signatures=None, input=n, kept=n, exact=0, near=0, bands_rows=[16, 8]),
        validation=ValidationResult(valid=paths["train"], quarantine=empty, result=str(folder / "validation.json"),
                                    data_docs=str(folder / "data_docs"), input=n, kept=n, quarantined=0,
                                    contract="support_tickets", contract_version=1, owners=["dana.k"]),
        split=SplitResult(train=paths["train"], heldout=paths["heldout"], eval=paths["eval"], quarantine=empty,
                          eval_quarantine=empty, input=n, train_count=n - 2, heldout_count=2, eval_count=3,
                          quarantined=0, eval_quarantined=0))


def publish(pipeline: str, folder: Path, tag: str, approval: str = "owner") -> CorpusRef:
    """A corpus version of `pipeline` curated under `approval` (the policy enters its digest)."""
    from tasks.corpus.versions import publish_version

    return publish_version(pipeline, fake_stages(folder / tag, tag), SETTINGS | {"approval": approval}, folder)


def child_env(**extra: str) -> dict:
    """The test session's environment (workspace, contracts, Prefect API) for a child process, less pytest's marker:
    MLflow runs test-only session checks when PYTEST_CURRENT_TEST is set, which a user's process never does."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    return env | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"} | extra


def python(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=child_env(**env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def cli(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(CLI + list(args), cwd=ROOT, env=child_env(**env), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def trained_on_corpus(client, model: str, versions: list[str], folder: Path, people: tuple[str, ...] = ("lee",),
                      pipeline: str | None = None) -> CorpusRef:
    """Give registered model versions a real corpus version (curated under a contract naming `people`, each with a
    key in the session workspace) the way training tags them: who may release them is then that contract's say."""
    import uuid

    from tasks.corpus.versions import publish_version

    pipeline = pipeline or f"rel-{uuid.uuid4().hex[:8]}"
    contract = keyed_contract(folder / "contracts", {p: {} for p in people})
    corpus = publish_version(pipeline, fake_stages(folder / "stages", pipeline), SETTINGS, folder, contract_file=contract)
    for version in versions:
        for key, value in {"corpus.digest": corpus.digest, "corpus.run_id": corpus.run_id,
                           "corpus.pipeline": pipeline, "corpus.version": str(corpus.version)}.items():
            client.set_model_version_tag(model, version, key, value)
    return corpus
