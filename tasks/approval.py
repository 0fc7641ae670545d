"""Owner approval of a corpus version, bound to its digest; training refuses anything else."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from adapterops.errors import AdapterOpsError

AUTO_APPROVER = "policy:auto"


def decision_record(version: int, digest: str, approver: str, decision: str, note: str = "",
                    when: datetime | None = None) -> dict:
    if decision not in ("approved", "rejected", "superseded"):
        raise AdapterOpsError(f"A decision log entry is 'approved', 'rejected' or 'superseded', not {decision!r}.")
    return {"version": version, "digest": digest, "approver": approver, "decision": decision, "note": note,
            "time": (when or datetime.now(timezone.utc)).isoformat()}


def check_owner(approver: str, owners: list[str], contract: str) -> None:
    if approver not in owners:
        raise AdapterOpsError(f"{approver!r} is not an owner of contract {contract!r} (owners: {', '.join(owners)}); "
                              "ask one of them to decide, or add the approver to the contract's owners.")


def verify_approved(tags: dict, recomputed_digest: str) -> None:
    """Raise unless the version is approved and its bytes still hash to the approved digest."""
    version = tags.get("corpus.version", "?")
    status = tags.get("corpus.status", "pending")
    if status != "approved":
        raise AdapterOpsError(f"Corpus version {version} is {status}, not approved; training refused. "
                              f"Ask a contract owner to run `adapterops corpus approve {version} --as NAME`.")
    if tags.get("approval.digest") != tags.get("corpus.digest"):
        raise AdapterOpsError(f"Corpus version {version}'s approval names digest {tags.get('approval.digest')}, not the "
                              f"version's {tags.get('corpus.digest')}; approve the version again.")
    if recomputed_digest != tags.get("corpus.digest"):
        raise AdapterOpsError(f"Corpus version {version}'s files changed after approval (now {recomputed_digest}, approved "
                              f"{tags.get('corpus.digest')}); training refused. Re-curate and approve a new version.")


# --- wrappers: MLflow tags and the append-only decision log ---------------------------------------

def _append_log(client, run, record: dict) -> None:
    """Append to the version's decision log (file + numbered MLflow tag); earlier entries stay."""
    from adapterops.storage import append_jsonl

    tags = run.data.tags
    log = Path(tags["corpus.path"]).parent / f"decisions-v{int(tags['corpus.version']):04d}.jsonl"
    append_jsonl(record, log)
    count = sum(1 for key in client.get_run(run.info.run_id).data.tags if key.startswith("approval.log."))
    client.set_tag(run.info.run_id, f"approval.log.{count + 1}",
                   f"{record['time']} {record['approver']} {record['decision']} {record['note']}"[:5000])
    client.log_artifact(run.info.run_id, str(log), artifact_path="approvals")


def record_decision(pipeline: str, digest: str, approver: str, decision: str, note: str = "",
                    owners: list[str] | None = None, announce: bool = True) -> dict:
    """Decide a pending version as one of its contract's owners; an approval supersedes older ones.

    announce: emit `adapterops.corpus.approved`, which starts the `on-approval` deployment. The
    approve flow passes False: the run it belongs to trains the version itself, and the event
    would start a second training of the same digest.
    """
    import mlflow

    from tasks.corpus import find_version, list_versions
    from tasks.contract import load_contract

    if decision not in ("approved", "rejected"):   # "superseded" follows from a newer approval only
        raise AdapterOpsError(f"An owner's decision is 'approved' or 'rejected', not {decision!r}.")
    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"No corpus version of {pipeline!r} has digest {digest}; list versions with `adapterops corpus list`.")
    tags = run.data.tags
    version = int(tags["corpus.version"])
    status = tags.get("corpus.status", "pending")
    if status != "pending":
        raise AdapterOpsError(f"Corpus version {version} is already {status} ({tags.get('approval.approver', '')} at "
                              f"{tags.get('approval.time', '?')}); decisions are final. Re-curate to get a new version.")
    check_owner(approver, owners if owners is not None else load_contract(tags["contract"]).owners, tags["contract"])
    record = decision_record(version, digest, approver, decision, note)
    client = mlflow.MlflowClient()
    _append_log(client, run, record)
    for key, value in {"corpus.status": decision, "approval.status": decision, "approval.approver": approver,
                       "approval.digest": digest, "approval.time": record["time"], "approval.note": note}.items():
        client.set_tag(run.info.run_id, key, value)
    if decision == "approved":
        for older in list_versions(pipeline):
            if older.data.tags.get("corpus.status") == "approved" and older.info.run_id != run.info.run_id:
                _append_log(client, older, decision_record(int(older.data.tags["corpus.version"]),
                                                           older.data.tags["corpus.digest"], approver, "superseded",
                                                           f"superseded by version {version}"))
                client.set_tag(older.info.run_id, "corpus.status", "superseded")
                client.set_tag(older.info.run_id, "corpus.superseded_by", str(version))
        if announce:
            _emit_approved(pipeline, version, digest, approver)
    return record


def _emit_approved(pipeline: str, version: int, digest: str, approver: str) -> None:
    """Prefect event a deployment trigger can start training from."""
    from prefect.events import emit_event

    emit_event(event="adapterops.corpus.approved",
               resource={"prefect.resource.id": f"adapterops.corpus.{pipeline}.v{version}",
                         "prefect.resource.name": f"{pipeline} corpus v{version}"},
               payload={"pipeline": pipeline, "version": version, "digest": digest, "approver": approver})


def require_approved(pipeline: str, digest: str) -> dict:
    """Re-hash the corpus files, check the approval and the approver; returns the version's tags."""
    from tasks.corpus import corpus_digest, find_version, load_manifest
    from tasks.contract import load_contract

    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"Digest {digest} matches no corpus version of {pipeline!r}; training refused. "
                              "Curate the corpus first (`adapterops run CONFIG`).")
    manifest = load_manifest(run)
    folder = Path(run.data.tags["corpus.path"])
    recomputed = corpus_digest(pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "heldout.parquet"),
                               manifest["settings"], manifest["contract_version"])
    verify_approved(run.data.tags, recomputed)
    approver = run.data.tags.get("approval.approver", "")
    owners = load_contract(run.data.tags["contract"]).owners
    if approver not in owners:
        raise AdapterOpsError(f"Corpus version {run.data.tags['corpus.version']} was approved by {approver!r}, who is not "
                              f"an owner of contract {run.data.tags['contract']} ({', '.join(owners)}); training refused. "
                              "Ask an owner to approve a new version.")
    return dict(run.data.tags)
