"""Content-addressed corpus versions: canonical digest, manifest, and the accounting check."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from adapterops import __version__
from adapterops.errors import AdapterOpsError
from adapterops.escaping import md_cell, md_code
from adapterops.faults import crash_point
from adapterops.refs import CorpusRef, CurationStages, LabelResult, ValidationResult
from adapterops.storage import file_digest, read_yaml, write_json, write_parquet
from adapterops.tracking import corpus_experiment, ensure_experiment, tracking_uri
from adapterops.workspace import resolve_workspace
from tasks.corpus.fetch import CONTRACT_FILE, corpus_folder, version_folder
from tasks.records.contract import Contract, contract_path, load_contract
from tasks.records.conversation import CONVERSATION_FIELDS

CANONICAL_FIELDS = ("id", "source", "timestamp", "prompt", "completion")


def records_digest(frame: pd.DataFrame) -> str:
    """sha256 of the records' canonical JSON, sorted by id: independent of file encoding and order.

    A conversation's `messages` and `tools` are appended to its row; a one-turn record (both null) hashes as it
    always has, so prompt/completion corpora keep their digests and approvals.
    """
    digest = hashlib.sha256()
    ordered = frame.sort_values("id", kind="stable") if len(frame) else frame
    extra = [c for c in CONVERSATION_FIELDS if c in ordered.columns]
    for row in ordered[list(CANONICAL_FIELDS) + extra].itertuples(index=False):
        values = list(row)
        conversation = [_null_to_none(v) for v in values[len(CANONICAL_FIELDS):]]
        values = values[:len(CANONICAL_FIELDS)] + (conversation if any(v is not None for v in conversation) else [])
        digest.update(json.dumps(values, ensure_ascii=False, default=str).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _null_to_none(value):
    return None if value is None or (isinstance(value, float) and value != value) or value is pd.NA else value


def corpus_digest(train: pd.DataFrame, heldout: pd.DataFrame, settings: dict, contract_version: int) -> str:
    """The corpus version's identity: its train and held-out bytes, the curation settings and the contract."""
    return digest_of_parts(records_digest(train), records_digest(heldout), settings, contract_version)


def digest_of_parts(train_digest: str, heldout_digest: str, settings: dict, contract_version: int) -> str:
    """corpus_digest from the records digests already computed."""
    digest = hashlib.sha256()
    for part in (train_digest, heldout_digest, json.dumps(settings, sort_keys=True), str(contract_version)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def check_accounting(counts: dict[str, int]) -> None:
    """Every input record is kept, removed as a duplicate or quarantined: exactly once; every eval record
    is in the eval set or quarantined."""
    placed = counts["kept"] + counts["duplicates"] + counts["quarantined"]
    if placed != counts["input"]:
        raise AdapterOpsError(
            f"Record accounting does not add up: input {counts['input']} != kept {counts['kept']} + duplicates "
            f"{counts['duplicates']} + quarantined {counts['quarantined']}; the corpus version was not written. Please report this.")
    if "eval_input" in counts and counts["eval"] + counts["eval_quarantined"] != counts["eval_input"]:
        raise AdapterOpsError(
            f"Eval record accounting does not add up: input {counts['eval_input']} != eval {counts['eval']} + "
            f"quarantined {counts['eval_quarantined']}; the corpus version was not written. Please report this.")


# --- wrapper: writes the version folder and its MLflow run ----------------------------------------

def _code_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{__version__}+{rev}" if rev else __version__


def _experiment_id(pipeline: str) -> str | None:
    """The pipeline's corpus experiment, without creating it (reading must not write); None if there is none."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(corpus_experiment(pipeline))
    return experiment.experiment_id if experiment else None


def _finished_runs(pipeline: str, clause: str = "") -> list:
    """Corpus runs marked FINISHED (complete): a run a crash left RUNNING, or FAILED, is no version."""
    import mlflow

    experiment = _experiment_id(pipeline)
    if experiment is None:
        return []
    where = "attributes.status = 'FINISHED'" + (f" and {clause}" if clause else "")
    runs = mlflow.search_runs([experiment], filter_string=where, output_format="list")
    return sorted((r for r in runs if "corpus.version" in r.data.tags), key=lambda r: int(r.data.tags["corpus.version"]))


def find_version(pipeline: str, digest: str | None = None, version: int | None = None):
    """The MLflow run of a complete corpus version, by digest (the newest not found damaged) or number; None if none."""
    clause = f"tags.`corpus.digest` = '{digest}'" if digest else f"tags.`corpus.version` = '{version}'"
    runs = [r for r in _finished_runs(pipeline, clause) if r.data.tags.get("corpus.status") != DAMAGED]
    return runs[-1] if runs else None


def load_manifest(run) -> dict:
    return json.loads((version_folder(run) / "manifest.json").read_text(encoding="utf-8"))


DAMAGED, INCOMPLETE = "damaged", "incomplete"


@contextmanager
def pipeline_lock(pipeline: str):
    """An exclusive lock on the pipeline's corpus folder, held across numbering and publishing.

    fcntl locks end with the process: a killed curation never leaves the pipeline locked.
    """
    root = resolve_workspace().corpus_dir / pipeline
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".publish.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield root


def file_digests(folder) -> dict:
    return {name: file_digest(Path(folder) / name) for name in VERSION_FILES if (Path(folder) / name).exists()
            or name != CONTRACT_FILE}


VERSION_FILES = ("train.parquet", "heldout.parquet", "eval.parquet", CONTRACT_FILE)


def version_contract(folder: Path, manifest: dict, local: bool = True) -> Contract:
    """The contract a version was curated with: its stored bytes, checked against the digest the version's
    (signed) digest covers; refused by name, with both digests, if the file it came from changed since.

    local False (a copy fetched from MLflow): the contract file must also be on this machine, where it was
    curated from or by its name, with the same digest: fetched bytes alone decide no gate.
    """
    name, version = manifest.get("contract", "?"), manifest.get("version", "?")
    recorded = manifest.get("settings", {}).get("contract_digest")
    stored = Path(folder) / CONTRACT_FILE
    if not recorded or not stored.is_file():
        raise AdapterOpsError(f"Corpus version {version} does not hold the contract it was curated with (versions "
                              "curated before contracts were stored with them); re-curate it (`adapterops run CONFIG`) "
                              "and decide the new version.")
    if (held := file_digest(stored)) != recorded:
        raise AdapterOpsError(f"Corpus version {version}'s stored contract {stored} changed since curation (recorded "
                              f"{recorded}, now {held}); refused. Re-curate and decide the new version.")
    origin = Path(manifest.get("contract_file", {}).get("path") or contract_path(name))
    anchors = [origin] if local else [origin, contract_path(name)]
    present = [path for path in anchors if path.is_file()]
    for path in present:
        if (now := file_digest(path)) != recorded:
            raise AdapterOpsError(f"Contract {name!r} ({path}) changed after corpus version {version} was curated with "
                                  f"it: curated with {recorded}, the file is now {now}; refused. Re-curate under the "
                                  "changed contract (`adapterops run CONFIG`) and decide the new version, or restore "
                                  "the file.")
    if not local and not present:
        raise AdapterOpsError(f"Corpus version {version} was fetched from MLflow and its contract {name!r} is not on "
                              f"this machine ({origin}); a gate does not trust a contract read from the tracking "
                              "server alone. Put that contract file here (same path, or data_contracts/ / "
                              "ADAPTEROPS_CONTRACTS by its name), or run this step where the version was curated.")
    try:
        return Contract.model_validate(read_yaml(stored, f"Contract {stored} does not exist."))
    except ValidationError:   # checked at curation; the full check names the first problem in one line
        return load_contract(str(stored))


def verified_digest(run, folder: Path | None = None) -> str:
    """Rehash a version's train and held-out records; one clear line if unreadable or no longer its digest.

    The digest covers the settings the manifest records, among them the approval policy and the contract
    file's digest, so those are verified here too. folder: where to read (default: version_folder(run)).
    """
    tags = run.data.tags
    folder, version = folder or version_folder(run), tags["corpus.version"]
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        recomputed = corpus_digest(pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "heldout.parquet"),
                                   manifest["settings"], manifest["contract_version"])
    except Exception as error:   # pyarrow, JSON or file errors: whatever the damage, these are not the curated bytes
        detail = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise AdapterOpsError(f"Corpus version {version}'s files in {folder} changed since it was curated and approved: "
                              f"they no longer read back ({type(error).__name__}: {detail}); refused. Re-curate and "
                              "approve a new version.") from None
    if recomputed != tags["corpus.digest"]:
        raise AdapterOpsError(f"Corpus version {version}'s files changed after approval (now {recomputed}, approved "
                              f"{tags['corpus.digest']}); refused. Re-curate and approve a new version.")
    return recomputed


def _retire_incomplete(experiment: str, root) -> int:
    """Under the pipeline lock: mark runs a crash left RUNNING as FAILED/incomplete, remove their folders and
    staging folders, set aside folders no run names; returns the highest number ever used, so none is reused."""
    import mlflow

    client = mlflow.MlflowClient()
    highest, state = 0, {}
    for run in mlflow.search_runs([experiment], output_format="list"):
        number = int(run.data.tags.get("corpus.version", 0))
        highest = max(highest, number)
        if run.info.status == "RUNNING":          # no publisher holds the lock: its process is gone
            client.set_tag(run.info.run_id, "corpus.status", INCOMPLETE)
            client.set_terminated(run.info.run_id, "FAILED")
        state[number] = "complete" if run.info.status == "FINISHED" or state.get(number) == "complete" else "failed"
    for path in root.iterdir():
        match = re.fullmatch(r"\.?v(\d{4,})(\.partial|\.orphaned)?", path.name)
        if not (match and path.is_dir()):
            continue
        number = int(match.group(1))
        highest = max(highest, number)
        if match.group(2) == ".partial" or (not match.group(2) and state.get(number) == "failed"):
            shutil.rmtree(path, ignore_errors=True)       # staging, or the files of a run that never finished
        elif not match.group(2) and number not in state:
            path.rename(root / f".{path.name}.orphaned")    # no run names it (crash before the run); kept aside
    return highest


def displayed_status(run) -> str:
    """The status to show: the tag, unless the version's files no longer match their manifest (damaged)."""
    status = run.data.tags.get("corpus.status", "pending")
    try:
        recorded = load_manifest(run).get("files", {})
        if any(file_digest(Path(run.data.tags["corpus.path"]) / name) != value for name, value in recorded.items()):
            return DAMAGED
    except (OSError, ValueError):
        return DAMAGED
    return status


def _reusable(existing) -> bool:
    """A complete version with this digest whose files still rehash to it; a damaged one is marked and replaced."""
    import mlflow

    try:
        verified_digest(existing)
        return True
    except AdapterOpsError:
        mlflow.MlflowClient().set_tag(existing.info.run_id, "corpus.status", DAMAGED)
        return False


def _fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def version_settings(settings: dict, contract_file: Path) -> dict:
    """The settings that enter the digest: the curation's, the approval policy it runs under (`owner` unless
    given: fail closed) and the sha256 of the contract file's bytes."""
    return {**settings, "approval": settings.get("approval", "owner"), "contract_digest": file_digest(contract_file)}


def publish_version(pipeline: str, stages: CurationStages, settings: dict, stage_dir,
                    contract_file: str | Path | None = None) -> CorpusRef:
    """Write the corpus version (files + manifest) and its MLflow run; identical content reuses the version.

    Under the pipeline lock: the number is the highest ever used + 1, the folder is staged then renamed,
    and the MLflow run comes last, FINISHED only when complete (a crash leaves no listed version).
    contract_file: the contract the version was validated with (default: found by its name); its bytes are
    stored in the version (contract.yaml) and its digest enters the corpus digest.
    """
    ingest, dedup, valid, split, label = stages.ingest, stages.dedup, stages.validation, stages.split, stages.label
    contract_file = Path(contract_file or contract_path(valid.contract)).resolve()
    contract_bytes = contract_file.read_bytes()
    settings = version_settings(settings, contract_file)
    train, heldout = pd.read_parquet(split.train), pd.read_parquet(split.heldout)
    evaluation = pd.read_parquet(split.eval)
    record_digests = {"train": records_digest(train), "heldout": records_digest(heldout), "eval": records_digest(evaluation)}
    digest = digest_of_parts(record_digests["train"], record_digests["heldout"], settings, valid.contract_version)
    counts = {"input": ingest.input, "kept": len(train) + len(heldout),
              "duplicates": dedup.input - dedup.kept, "exact_duplicates": dedup.exact, "near_duplicates": dedup.near,
              "quarantined": ingest.quarantined + stages.pii.quarantined + (label.quarantined if label else 0)
              + valid.quarantined + split.quarantined,
              "train": len(train), "heldout": len(heldout), "eval": len(evaluation),
              "eval_input": stages.eval_ingest.input,
              "eval_quarantined": stages.eval_ingest.quarantined + stages.eval_pii.quarantined + split.eval_quarantined}
    check_accounting(counts)

    with pipeline_lock(pipeline) as root:
        experiment = ensure_experiment(corpus_experiment(pipeline))
        highest = _retire_incomplete(experiment, root)
        existing = find_version(pipeline, digest=digest)
        if existing is not None and _reusable(existing):
            return version_ref(existing.info.run_id, existing.data.tags["corpus.path"], load_manifest(existing),
                               valid.owners)
        number = highest + 1
        folder = root / f"v{number:04d}"
        staging = root / f".{folder.name}.partial"
        staging.mkdir()      # exclusive: fails rather than share a folder
        _stage_files(staging, stages)
        (staging / CONTRACT_FILE).write_bytes(contract_bytes)
        if file_digest(staging / CONTRACT_FILE) != settings["contract_digest"]:
            raise AdapterOpsError(f"Contract file {contract_file} changed while curating; nothing was published. "
                                  "Run again once it is no longer being edited.")
        parent = last_approved(pipeline)
        manifest = {"pipeline": pipeline, "version": number, "digest": digest,
                    "eval_digest": "sha256:" + record_digests["eval"], "record_digests": record_digests,
                    "files": file_digests(staging),
                    "sources": ingest.files, "labels": label.files if label else [], "counts": counts,
                    "contract": valid.contract, "contract_version": valid.contract_version, "settings": settings,
                    "contract_file": {"path": str(contract_file), "digest": settings["contract_digest"]},
                    "approval": settings["approval"],
                    "parent": parent.data.tags["corpus.digest"] if parent else None, "code_version": _code_version(),
                    "created": datetime.now(timezone.utc).isoformat()}
        write_json(manifest, staging / "manifest.json")
        _fsync_dir(staging)
        staging.rename(folder)   # refuses to replace a non-empty folder: nothing is clobbered
        _fsync_dir(root)
        crash_point("version-folder")
        run_id = _log_version_run(experiment, pipeline, number, digest, folder, valid, settings, counts,
                                  manifest["eval_digest"], record_digests, label)
    return version_ref(run_id, folder, manifest, valid.owners, new=True)


def _stage_files(staging, stages: CurationStages) -> None:
    """Copy every file the version holds into its staging folder."""
    for name in ("train", "heldout", "eval"):
        shutil.copyfile(getattr(stages.split, name), staging / f"{name}.parquet")
    dedup = stages.dedup
    shutil.copyfile(dedup.duplicates, staging / "duplicates.parquet")
    # dedup's report and stored signatures travel with the version (incremental dedup reads them next time)
    shutil.copyfile(dedup.report, staging / "dedup_report.json")
    if dedup.signatures:
        shutil.copytree(dedup.signatures, staging / "signatures")
    shutil.copyfile(stages.validation.result, staging / "validation.json")
    # PII quarantine and report, label outcomes and the contract's rendered Data Docs travel with the version
    quarantine_files = [stages.ingest.quarantine, stages.validation.quarantine, stages.split.quarantine,
                        stages.pii.quarantine]
    shutil.copyfile(stages.pii.report, staging / "pii.json")
    if label := stages.label:
        quarantine_files.append(label.quarantine)
        shutil.copyfile(label.report, staging / "labels.parquet")
        shutil.copyfile(label.agreement, staging / "labels_agreement.json")
    shutil.copyfile(stages.eval_pii.report, staging / "eval_pii.json")
    shutil.copytree(stages.validation.data_docs, staging / "data_docs")
    quarantine = pd.concat([pd.read_parquet(p) for p in quarantine_files], ignore_index=True)
    write_parquet(quarantine, staging / "quarantine.parquet")
    eval_quarantine = [stages.eval_ingest.quarantine, stages.eval_pii.quarantine, stages.split.eval_quarantine]
    write_parquet(pd.concat([pd.read_parquet(p) for p in eval_quarantine], ignore_index=True),
                  staging / "eval_quarantine.parquet")


def _log_version_run(experiment: str, pipeline: str, number: int, digest: str, folder, valid: ValidationResult,
                     settings: dict, counts: dict, eval_digest: str, record_digests: dict,
                     label: LabelResult | None = None) -> str:
    """The version's MLflow run, created last; it ends FINISHED only if everything was logged."""
    import mlflow

    with mlflow.start_run(experiment_id=experiment, run_name=f"corpus-v{number}") as run:
        mlflow.set_tags({"corpus.digest": digest, "corpus.version": str(number), "corpus.status": "pending",
                         "corpus.path": str(folder), "contract": valid.contract,
                         "contract.version": str(valid.contract_version), "corpus.eval_digest": eval_digest})
        crash_point("run-tags")
        mlflow.log_params({f"dedup.{k}": v for k, v in settings["dedup"].items()}
                          | {f"split.{k}": v for k, v in settings["split"].items()})
        mlflow.log_metrics({f"records.{k}": v for k, v in counts.items()})
        if label:   # agreement per label round, next to the version it made
            mlflow.log_params({"labels.policy": label.policy, "labels.reviewer": label.reviewer or "-"})
            mlflow.log_metrics(label.metrics)
        for name, dataset in corpus_datasets(folder, pipeline, record_digests):
            mlflow.log_input(dataset, context=name)
        mlflow.log_artifacts(str(folder), artifact_path="corpus")
    return run.info.run_id


# --- versions side by side -------------------------------------------------------------------------

def diff_records(old: pd.DataFrame, new: pd.DataFrame) -> dict:
    """Ids added, removed and changed (same id, other content) from old to new, and records per source."""
    def keyed(frame):
        return {str(r[0]): tuple(r[1:]) for r in frame[list(CANONICAL_FIELDS)].itertuples(index=False)}

    before, after = keyed(old), keyed(new)
    sources = sorted(set(old["source"].dropna()) | set(new["source"].dropna()))
    return {"added": sorted(after.keys() - before.keys()), "removed": sorted(before.keys() - after.keys()),
            "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
            "sources": {s: {"old": int((old["source"] == s).sum()), "new": int((new["source"] == s).sum())}
                        for s in sources}}


def diff_markdown(diff: dict, old_label: str, new_label: str, sample: int = 10) -> str:
    """The diff for a reviewer; record ids and source names are escaped (adapterops.escaping)."""
    lines = [f"**{old_label} → {new_label}**: {len(diff['added'])} added, {len(diff['removed'])} removed, "
             f"{len(diff['changed'])} changed", "", "| source | before | after |", "|---|---|---|"]
    lines += [f"| {md_cell(s)} | {c['old']} | {c['new']} |" for s, c in diff["sources"].items()]
    for kind in ("added", "removed", "changed"):
        if diff[kind]:
            shown = ", ".join(md_code(i) for i in diff[kind][:sample]) + (" …" if len(diff[kind]) > sample else "")
            lines.append(f"\n{kind}: {shown}")
    return "\n".join(lines)


def list_versions(pipeline: str) -> list:
    """The MLflow runs of every complete corpus version of a pipeline, oldest first."""
    return _finished_runs(pipeline)


def last_approved(pipeline: str, other_than=None):
    """The MLflow run of the newest approved corpus version (other than the run `other_than`); None if there is none."""
    approved = [r for r in list_versions(pipeline) if r.data.tags.get("corpus.status") == "approved"
                and (other_than is None or r.info.run_id != other_than.info.run_id)]
    return approved[-1] if approved else None


def last_approved_signatures(pipeline: str) -> str | None:
    """The signatures/ folder of the pipeline's approved corpus version, for incremental dedup; None if there is none."""
    approved = last_approved(pipeline)
    if approved is None:
        return None
    folder = Path(approved.data.tags["corpus.path"]) / "signatures"
    return str(folder) if folder.is_dir() else None   # versions made before signatures were stored have none


def get_version(pipeline: str, version: int):
    run = find_version(pipeline, version=version)
    if run is None:
        raise AdapterOpsError(f"Corpus {pipeline!r} has no version {version}; list them with `adapterops corpus list --name {pipeline}`.")
    return run


def version_records(run) -> pd.DataFrame:
    folder = version_folder(run)
    return pd.concat([pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "heldout.parquet")],
                     ignore_index=True)


def diff_against_last_approved(pipeline: str, run) -> str:
    """What the approver reviews: this version against the last approved one (or 'first version')."""
    last = last_approved(pipeline, other_than=run)
    new_label = f"v{run.data.tags['corpus.version']}"
    if last is None:
        return f"{new_label} is the first version to be approved: {len(version_records(run))} records."
    return diff_markdown(diff_records(version_records(last), version_records(run)),
                         f"v{last.data.tags['corpus.version']} (approved)", new_label)


# --- lineage: what a training run and an adapter version name ----------------------------------

def lineage_tags(corpus: CorpusRef, corpus_tags: dict) -> dict:
    """Tags that let a user walk from an adapter version back to its approved corpus and reports."""
    return {"corpus.pipeline": corpus.pipeline, "corpus.version": str(corpus.version), "corpus.digest": corpus.digest,
            "corpus.run_id": corpus.run_id, "contract": corpus.contract,
            "contract.version": str(corpus.contract_version),
            "approval.approver": corpus_tags.get("approval.approver", ""),
            "approval.time": corpus_tags.get("approval.time", ""),
            "eval.digest": corpus_tags.get("corpus.eval_digest", "")}


# MLflow 3.17's UI picks GenAI or model-training pages from this query parameter (else a browser setting)
ML_WORKFLOW = "workflowType=machine_learning"


def lineage_markdown(corpus: CorpusRef) -> str:
    """A model-version description linking to the corpus version's run in the MLflow UI."""
    import mlflow

    experiment = mlflow.get_run(corpus.run_id).info.experiment_id
    return (f"Trained on [corpus {corpus.pipeline} v{corpus.version}](#/experiments/{experiment}/runs/"
            f"{corpus.run_id}?{ML_WORKFLOW}) (digest `{corpus.digest}`, contract {corpus.contract} "
            f"v{corpus.contract_version}); its run holds the manifest, quarantine, duplicates and approvals.")


def corpus_datasets(folder, pipeline: str, record_digests: dict):
    """(name, MLflow dataset) for the train, held-out and eval files: logged by reference, schema and digest."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.schema import Schema
    from mlflow.types import ColSpec

    schema = Schema([ColSpec("string", c) for c in CANONICAL_FIELDS])
    for name in ("train", "heldout", "eval"):
        path = Path(folder) / f"{name}.parquet"
        with warnings.catch_warnings():  # MLflow registers the local file source twice and warns it picked one
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(path.as_uri())
        yield name, MetaDataset(source=source, name=f"{pipeline}-{name}", digest=record_digests[name][:16], schema=schema)


def log_corpus_inputs(corpus: CorpusRef) -> None:
    """Name the corpus version's datasets as inputs of the active MLflow run (digests from its manifest)."""
    import mlflow

    folder = corpus_folder(corpus)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for name, dataset in corpus_datasets(folder, corpus.pipeline, manifest["record_digests"]):
        mlflow.log_input(dataset, context=f"corpus-v{corpus.version}-{name}")


# the order counts are shown in (the manifest stores them sorted by name)
COUNT_ORDER = ("input", "kept", "duplicates", "exact_duplicates", "near_duplicates", "quarantined", "train", "heldout",
               "eval", "eval_input", "eval_quarantined")


def version_ref(run_id: str, path, manifest: dict, owners, new: bool = False) -> CorpusRef:
    """The reference the flows pass around, from a version's run, folder and manifest: the one place it is built."""
    counts = manifest["counts"]
    counts = {k: counts[k] for k in COUNT_ORDER if k in counts} | counts
    return CorpusRef(pipeline=manifest["pipeline"], version=int(manifest["version"]), digest=manifest["digest"],
                     path=str(path), run_id=run_id, new=new, counts=counts, contract=manifest["contract"],
                     contract_version=int(manifest["contract_version"]), owners=tuple(owners))


def corpus_contract(corpus: CorpusRef) -> Contract:
    """The contract a corpus version was curated with, wherever its file lives now (see version_contract):
    what approval, training, evaluation, staging and release judge it by."""
    from tasks.corpus.fetch import local_folder

    folder = local_folder(corpus.pipeline, corpus.digest, corpus.version)
    local = folder is not None
    folder = folder or corpus_folder(corpus)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("digest") != corpus.digest:
        raise AdapterOpsError(f"Corpus version {corpus.version}'s manifest in {folder} does not name digest "
                              f"{corpus.digest}; refused. Re-curate and decide a new version.")
    return version_contract(folder, manifest, local)


def run_contract(run) -> Contract:
    """corpus_contract for a corpus version's MLflow run (its folder as version_folder finds it)."""
    folder = version_folder(run)
    return version_contract(folder, json.loads((folder / "manifest.json").read_text(encoding="utf-8")))


def stored_ref(run, manifest: dict | None = None) -> CorpusRef:
    """A stored version's reference, its owners read from the contract stored with it (version_contract: a contract
    file changed since curation is refused by name, with both digests)."""
    folder = version_folder(run)
    manifest = manifest or json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return version_ref(run.info.run_id, folder, manifest, version_contract(folder, manifest).owners)


def corpus_ref(pipeline: str, digest: str) -> CorpusRef:
    """The reference of a stored version by its digest (e.g. for an approval event)."""
    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"Digest {digest} matches no corpus version of {pipeline!r}; list them with "
                              f"`adapterops corpus list --name {pipeline}`.")
    return stored_ref(run)
