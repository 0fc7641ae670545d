"""Owner approval of a corpus version, bound to its digest; training refuses anything else."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from adapterops.errors import AdapterOpsError

AUTO_APPROVER = "policy:auto"


def decision_record(version: int, digest: str, approver: str, decision: str, note: str = "",
                    when: datetime | None = None) -> dict:
    if decision not in ("approved", "rejected"):
        raise AdapterOpsError(f"A decision is 'approved' or 'rejected', not {decision!r}.")
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

def record_decision(pipeline: str, digest: str, approver: str, decision: str, note: str = "",
                    owners: list[str] | None = None) -> dict:
    """Tag the version's run with the decision and append it to the version's decision log."""
    import mlflow

    from adapterops.storage import append_jsonl
    from tasks.corpus import find_version

    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"No corpus version of {pipeline!r} has digest {digest}; list versions with `adapterops corpus list`.")
    tags = run.data.tags
    if owners is not None:
        check_owner(approver, owners, tags.get("contract", "?"))
    record = decision_record(int(tags["corpus.version"]), digest, approver, decision, note)
    log = Path(tags["corpus.path"]).parent / f"decisions-v{int(tags['corpus.version']):04d}.jsonl"
    append_jsonl(record, log)
    client = mlflow.MlflowClient()
    count = sum(1 for key in tags if key.startswith("approval.log."))
    for key, value in {"corpus.status": decision, "approval.status": decision, "approval.approver": approver,
                       "approval.digest": digest, "approval.time": record["time"], "approval.note": note,
                       f"approval.log.{count + 1}": f"{record['time']} {approver} {decision}"}.items():
        client.set_tag(run.info.run_id, key, value)
    client.log_artifact(run.info.run_id, str(log), artifact_path="approvals")
    return record


def require_approved(pipeline: str, digest: str) -> dict:
    """Re-hash the corpus files and check the approval; returns the version's tags."""
    from tasks.corpus import corpus_digest, find_version, load_manifest

    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"Digest {digest} matches no corpus version of {pipeline!r}; training refused. "
                              "Curate the corpus first (`adapterops run CONFIG`).")
    manifest = load_manifest(run)
    folder = Path(run.data.tags["corpus.path"])
    recomputed = corpus_digest(pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "heldout.parquet"),
                               manifest["settings"], manifest["contract_version"])
    verify_approved(run.data.tags, recomputed)
    return dict(run.data.tags)
