"""Owner decisions on a corpus version: signed statements bound to its digest, verified where they are used.

A decision is a DSSE envelope (adapterops/signing.py) in the version folder, created exclusively:
the first decision wins and is final. MLflow tags mirror it for search and display only.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.workspace import resolve_workspace
from adapterops.signing import (
    open_envelope,
    owner_private_key,
    parse_public_key,
    public_key_line,
    sign_statement,
    statement_of,
    workspace_key,
)
from tasks.corpus.fetch import DECISION_FILE, local_folder, trusted_folder, version_folder
from tasks.corpus.versions import file_digests, find_version, list_versions, verified_digest, version_contract

AUTO_APPROVER = "policy:auto"
VIA_POLICY, VIA_FORM, VIA_KEY = "policy", "prefect-form", "owner-key"


def decision_record(version: int, digest: str, approver: str, decision: str, note: str = "",
                    when: datetime | None = None) -> dict:
    if decision not in ("approved", "rejected", "superseded"):
        raise AdapterOpsError(f"A decision log entry is 'approved', 'rejected' or 'superseded', not {decision!r}.")
    return {"version": version, "digest": digest, "approver": approver, "decision": decision, "note": note,
            "time": (when or datetime.now(timezone.utc)).isoformat()}


def decision_statement(pipeline: str, version: int, digest: str, approver: str, decision: str, note: str,
                       via: str, files: dict | None = None, when: datetime | None = None) -> dict:
    """What an approver signs: which records (digest) and file bytes (sha256 per file), which version of which
    pipeline, the decision, who, when, how."""
    return ({"type": "adapterops.corpus-decision/v1", "pipeline": pipeline, "via": via, "files": files or {}}
            | decision_record(version, digest, approver, decision, note, when))


def changed_files(signed: dict, current: dict) -> list[str]:
    """Files whose bytes differ from those the decision signed (all of them if it signed none)."""
    return sorted(name for name in signed.keys() | current.keys() if signed.get(name) != current.get(name)) \
        if signed else sorted(current) or ["(no files signed)"]


def check_owner(approver: str, owners: list[str], contract: str) -> None:
    if approver not in owners:
        raise AdapterOpsError(f"{approver!r} is not an owner of contract {contract!r} (owners: {', '.join(owners)}); "
                              "ask one of them to decide, or add the approver to the contract's owners.")


def check_policy(approver: str, approval: str) -> None:
    """`policy:*` approvers decide only for pipelines configured with `approval: auto`."""
    if approver.startswith("policy:") and approval != "auto":
        raise AdapterOpsError(f"{approver!r} is an automatic policy: it decides only inside a run of a pipeline "
                              "configured with `approval: auto`. A person decides as themselves (`--as NAME`).")


def check_curated_policy(approver: str, manifest: dict) -> None:
    """`policy:*` decides only versions curated under `approval: auto` (the policy their digest covers): another
    config of the same name set to `auto` decides nothing for a version its owners curated."""
    curated = manifest.get("settings", {}).get("approval", "owner")
    if approver.startswith("policy:") and curated != "auto":
        raise AdapterOpsError(f"Corpus version {manifest.get('version', '?')} was curated under `approval: {curated}`: "
                              f"{approver!r} decides only versions curated under `approval: auto`; a contract owner "
                              f"decides it (`adapterops corpus approve {manifest.get('version', '?')} --as NAME`).")


def version_at(pipeline: str, digest: str, run) -> tuple[Path, dict, object]:
    """(folder, manifest, contract) of the version a gate uses: the workspace's folder found by digest (else the
    MLflow copy, anchored by a local contract file), its manifest, and the contract it was curated with."""
    folder, local = trusted_folder(pipeline, digest, run)
    version = run.data.tags.get("corpus.version", "?")
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    if manifest.get("digest") != digest or manifest.get("pipeline") != pipeline:
        raise AdapterOpsError(f"Corpus version {version} of {pipeline!r}: the manifest in {folder} does not name digest "
                              f"{digest}; refused. Re-curate and decide a new version.")
    return folder, manifest, version_contract(folder, manifest, local)


def signer_kind(approver: str, via: str, contract) -> str:
    """Which key must sign (VIA_POLICY and VIA_FORM: the workspace key; VIA_KEY: the owner's), or why none may."""
    owner = contract.owner(approver)
    if approver.startswith("policy:") or via == VIA_POLICY:
        if not (approver.startswith("policy:") and via == VIA_POLICY):
            raise AdapterOpsError(f"A decision by {approver!r} via {via!r} mixes a policy and a person; refused.")
        return VIA_POLICY
    if via == VIA_FORM:
        if owner is None or not owner.form:
            raise AdapterOpsError(f"Contract {contract.name!r} does not accept Prefect-form decisions by {approver!r}; "
                                  f"decide with `adapterops corpus approve VERSION --as {approver}`, or set `form: true` "
                                  "on that owner in the contract.")
        return VIA_FORM
    if owner is None or not owner.public_key:
        raise AdapterOpsError(f"Contract {contract.name!r} lists no public key for {approver!r}: run `adapterops keys init "
                              f"--as {approver}` and add the printed line to that owner in the contract.")
    return VIA_KEY


def verify_statement(statement: dict, pipeline: str, digest: str, contract, approval: str) -> dict:
    """Check a signature-verified statement against what is being used: pipeline, digest, owner and policy."""
    version = statement.get("version", "?")
    if statement.get("pipeline") != pipeline or statement.get("digest") != digest:
        raise AdapterOpsError(f"Corpus version {version}'s signed decision names {statement.get('pipeline')!r} digest "
                              f"{statement.get('digest')}, not {pipeline!r} {digest}; it belongs to other bytes. "
                              "Training refused; ask an owner to decide this version.")
    approver = statement.get("approver", "")
    if approver not in contract.owners:
        raise AdapterOpsError(f"Corpus version {version} was decided by {approver!r}, who is not an owner of contract "
                              f"{contract.name} ({', '.join(contract.owners)}); training refused. Ask an owner to "
                              "approve a new version.")
    check_policy(approver, approval)
    return statement


def require_decision(statement: dict | None, version: int, status_hint: str = "") -> None:
    """Raise unless the verified statement approves."""
    if statement is None:
        hint = f" (its tags say {status_hint!r}, but tags do not approve: no signed decision exists)" \
            if status_hint not in ("", "pending") else ""
        raise AdapterOpsError(f"Corpus version {version} is pending, not approved{hint}; training refused. "
                              f"Ask a contract owner to run `adapterops corpus approve {version} --as NAME`.")
    if statement["decision"] != "approved":
        raise AdapterOpsError(f"Corpus version {version} is {statement['decision']} ({statement['approver']}: "
                              f"{statement.get('note') or 'no note'}); training refused. Fix the data and re-curate.")


# --- wrappers: the decision file, the append-only log and MLflow ----------------------------------

def decision_path(run, folder: Path | None = None) -> Path:
    return (folder or version_folder(run)) / DECISION_FILE


def read_envelope(run, folder: Path | None = None) -> dict | None:
    """The version's decision envelope; None only when no decision file exists."""
    try:
        text = decision_path(run, folder).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {}    # damaged: open_envelope refuses it with one line


def current_decision(run) -> dict | None:
    """The decision statement of a version, unverified: for display and to stop a flow early (gates verify)."""
    envelope = read_envelope(run)
    return statement_of(envelope) if envelope is not None else None


def _verification_key(statement: dict, contract):
    kind = signer_kind(statement.get("approver", ""), statement.get("via", ""), contract)
    if kind == VIA_KEY:
        return parse_public_key(contract.owner(statement["approver"]).public_key, f"contract {contract.name}")
    return workspace_key().public_key()


def verified_decision(run, pipeline: str, approval: str, digest: str | None = None) -> dict | None:
    """The version's decision, signature and binding verified; None when it has none; else one clear line.

    Everything it uses is read from files: the version folder found by digest, the contract stored with the
    version (its digest covered by the corpus digest), the approval policy the version was curated under.
    """
    digest = digest or run.data.tags["corpus.digest"]
    folder, manifest, contract = version_at(pipeline, digest, run)
    envelope = read_envelope(run, folder)
    if envelope is None:
        return None
    claimed = statement_of(envelope)
    where = f"Corpus version {manifest.get('version', '?')} of {pipeline!r}"
    if not claimed:
        raise AdapterOpsError(f"{where}: the decision file is not a readable signed envelope; it was edited or damaged. "
                              "Ask an owner to decide a freshly curated version.")
    if claimed.get("approver") not in contract.owners:
        return verify_statement(claimed, pipeline, digest, contract, approval)   # raises: not an owner
    statement = open_envelope(envelope, _verification_key(claimed, contract), where)
    check_curated_policy(statement.get("approver", ""), manifest)
    return verify_statement(statement, pipeline, digest, contract, approval)


def _claim(folder: Path, envelope: dict) -> bool:
    """Write the decision file only if none exists (link is atomic): True if this decision won."""
    staging = folder / f".{DECISION_FILE}.{uuid.uuid4().hex}.partial"
    with open(staging, "w", encoding="utf-8") as handle:
        json.dump(envelope, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(staging, folder / DECISION_FILE)
        return True
    except FileExistsError:
        return False
    finally:
        staging.unlink()


def _log_path(run, folder: Path | None = None) -> Path:
    folder = folder or version_folder(run)
    return folder.parent / f"decisions-{folder.name}.jsonl"


def decision_log(run) -> list[dict]:
    """The version's decision log, in order (entries written before sequence numbers get their position)."""
    try:
        lines = [line for line in _log_path(run).read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    return [{"seq": n} | json.loads(line) for n, line in enumerate(lines, start=1)]


def append_log(run, record: dict, folder: Path | None = None) -> int:
    """Append to the version's decision log under a lock; returns the entry's sequence number (1, 2, ...)."""
    with open(_log_path(run, folder), "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)     # released when the file closes, or the process dies
        handle.seek(0)
        sequence = sum(1 for line in handle if line.strip()) + 1
        handle.write(json.dumps(record | {"seq": sequence}, sort_keys=True, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return sequence


def _mirror(client, run, record: dict, sequence: int, folder: Path | None = None) -> None:
    """The log entry as a numbered tag and the log file as an artifact: for the MLflow UI, not for gates."""
    client.set_tag(run.info.run_id, f"approval.log.{sequence}",
                   f"{record['time']} {record['approver']} {record['decision']} {record['note']}"[:5000])
    client.log_artifact(run.info.run_id, str(_log_path(run, folder)), artifact_path="approvals")


def _display_tags(client, run, statement: dict) -> None:
    for key, value in {"corpus.status": statement["decision"], "approval.status": statement["decision"],
                       "approval.approver": statement["approver"], "approval.digest": statement["digest"],
                       "approval.time": statement["time"], "approval.note": statement["note"],
                       "approval.via": statement["via"]}.items():
        client.set_tag(run.info.run_id, key, value)


def _signing_key(approver: str, via: str, contract, key_file):
    kind = signer_kind(approver, via, contract)
    if kind != VIA_KEY:
        return workspace_key()
    key = owner_private_key(approver, key_file)
    listed = parse_public_key(contract.owner(approver).public_key, f"contract {contract.name}")
    if public_key_line(key.public_key()) != public_key_line(listed):
        raise AdapterOpsError(f"The private key used for {approver!r} does not match the public key contract "
                              f"{contract.name!r} lists for them; use the key file `adapterops keys init --as {approver}` "
                              "made, or put its public-key line in the contract.")
    return key


def _refuse_decided(client, run, version: int, folder: Path | None = None) -> None:
    """One line naming the decision that won; its tags are mirrored if its writer died before doing so."""
    winner = statement_of(read_envelope(run, folder) or {})
    if winner and run.data.tags.get("corpus.status", "pending") == "pending":
        _display_tags(client, run, winner)
    raise AdapterOpsError(f"Corpus version {version} is already {winner.get('decision', 'decided')} "
                          f"({winner.get('approver', '?')} at {winner.get('time', '?')}); decisions are final. "
                          "Re-curate to get a new version.")


def record_decision(pipeline: str, digest: str, approver: str, decision: str, note: str = "",
                    approval: str = "owner", via: str | None = None, key_file: Path | None = None,
                    announce: bool = True) -> dict:
    """Decide a pending version, signed: an owner with their key, `policy:*` (only under `approval: auto`)
    or a Prefect-form decision with the workspace key. The first decision of a version wins; an approval
    supersedes older ones. announce: emit `adapterops.corpus.approved` once the decision is on disk (the
    approve flow passes False: its run trains the version itself).
    """
    import mlflow

    if decision not in ("approved", "rejected"):   # "superseded" follows from a newer approval only
        raise AdapterOpsError(f"An owner's decision is 'approved' or 'rejected', not {decision!r}.")
    via = via or (VIA_POLICY if approver.startswith("policy:") else VIA_KEY)
    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"No corpus version of {pipeline!r} has digest {digest}; list versions with `adapterops corpus list`.")
    tags = run.data.tags
    version = int(tags["corpus.version"])
    if local_folder(pipeline, digest, version) is None:   # the decision and its log live in the version folder
        raise AdapterOpsError(f"Corpus version {version}'s folder is not on this machine; decide where it was curated "
                              f"(looked in {resolve_workspace().corpus_dir / pipeline}: the cpu worker's "
                              "ADAPTEROPS_HOME), or mount that workspace here.")
    folder, manifest, contract = version_at(pipeline, digest, run)
    check_owner(approver, contract.owners, manifest.get("contract", "?"))
    check_policy(approver, approval)
    check_curated_policy(approver, manifest)
    client = mlflow.MlflowClient()
    if read_envelope(run, folder) is not None:
        _refuse_decided(client, run, version, folder)
    key = _signing_key(approver, via, contract, key_file)
    verified_digest(run, folder)        # never sign for bytes that no longer hash to the digest
    files = file_digests(folder)
    recorded = manifest.get("files", {})
    if recorded and (changed := changed_files(recorded, files)):
        raise AdapterOpsError(f"Corpus version {version}'s {', '.join(changed)} changed since it was curated; nothing "
                              "was signed. Re-curate and decide the new version.")
    statement = decision_statement(pipeline, version, digest, approver, decision, note, via, files)
    if not _claim(folder, sign_statement(statement, key)):
        _refuse_decided(client, run, version, folder)
    record = {k: statement[k] for k in ("version", "digest", "approver", "decision", "note", "time")} | {"via": via}
    _mirror(client, run, record, append_log(run, record, folder), folder)
    client.log_artifact(run.info.run_id, str(decision_path(run, folder)), artifact_path="approvals")
    _display_tags(client, run, statement)
    if decision == "approved":
        for older in list_versions(pipeline):
            if older.data.tags.get("corpus.status") == "approved" and older.info.run_id != run.info.run_id:
                entry = decision_record(int(older.data.tags["corpus.version"]), older.data.tags["corpus.digest"],
                                        approver, "superseded", f"superseded by version {version}")
                _mirror(client, older, entry, append_log(older, entry))
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


def _superseded_by(pipeline: str, run, statement: dict, approval: str) -> int | None:
    """The version whose verified approval is newer than this one's, if any."""
    newest = None
    for other in list_versions(pipeline):
        if other.info.run_id == run.info.run_id or not decision_path(other).is_file():
            continue
        try:
            theirs = verified_decision(other, pipeline, approval)
        except AdapterOpsError:
            continue     # a forged or foreign decision supersedes nothing
        if theirs and theirs["decision"] == "approved" and theirs["time"] > statement["time"]:
            newest = max(newest or 0, int(theirs["version"]))
    return newest


def require_approved(pipeline: str, digest: str, approval: str = "owner") -> dict:
    """Rehash the corpus files and verify the signed approval (owner, key, policy, digest, not superseded).

    approval: the pipeline's `approval` setting (`policy:*` decisions count only under "auto").
    Returns the version's tags, with the approval fields taken from the verified statement.
    """
    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"Digest {digest} matches no corpus version of {pipeline!r}; training refused. "
                              "Curate the corpus first (`adapterops run CONFIG`).")
    version = int(run.data.tags["corpus.version"])
    folder, _, _ = version_at(pipeline, digest, run)
    verified_digest(run, folder)
    statement = verified_decision(run, pipeline, approval, digest)
    require_decision(statement, version, run.data.tags.get("corpus.status", "pending"))
    if changed := changed_files(statement.get("files", {}), file_digests(folder)):
        raise AdapterOpsError(f"Corpus version {version}'s {', '.join(changed)} changed after approval: the bytes differ "
                              "from those the decision signed; refused. Re-curate and approve a new version.")
    newer = _superseded_by(pipeline, run, statement, approval)
    if newer is not None:
        raise AdapterOpsError(f"Corpus version {version} is superseded by version {newer}, approved later; training "
                              f"refused. Train version {newer}, or approve a new version.")
    return dict(run.data.tags) | {"approval.approver": statement["approver"], "approval.time": statement["time"],
                                  "approval.digest": statement["digest"], "approval.via": statement["via"],
                                  "corpus.path": str(folder)}


def require_approved_adapter(pipeline: str, model_name: str, version: str, approval: str = "owner") -> dict:
    """The release gate's check: the corpus an adapter version was trained on still has a verified approval
    over unchanged bytes (the digest is read from the version; a digest naming another corpus fails there)."""
    import mlflow

    digest = mlflow.MlflowClient().get_model_version(model_name, str(version)).tags.get("corpus.digest")
    if not digest:
        raise AdapterOpsError(f"{model_name} v{version} names no corpus digest; release refused. Train adapters for "
                              "release with the train flow or `adapterops train`.")
    return require_approved(pipeline, digest, approval)
