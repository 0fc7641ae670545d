"""Who may move production: the contract an adapter's corpus was curated with names them (`releasers`, by default
its owners who are people). A person's promote or rollback is a statement signed with their key, verified
against that contract before the alias moves; the audit trail entry carries the envelope. The release gate's own
promotions are signed with the workspace key."""

from __future__ import annotations

import json
from pathlib import Path

from adapterops.errors import AdapterOpsError
from adapterops.signing import (
    open_envelope,
    owner_private_key,
    parse_public_key,
    public_key_line,
    sign_statement,
    statement_of,
    workspace_key,
)

RELEASE_TYPE = "adapterops.release-decision/v1"
GATE = "release gate"
STATEMENT_FIELDS = ("model", "version", "previous", "action", "by", "reason", "time")


def move_statement(model: str, entry: dict, corpus_digest: str) -> dict:
    """What a releaser signs: which model version goes to production, from which, why, who, when, over which corpus."""
    return {"type": RELEASE_TYPE, "model": model, "corpus_digest": corpus_digest,
            **{k: entry[k] for k in STATEMENT_FIELDS if k != "model"}}


def check_releaser(by: str, contract, model: str) -> None:
    """Raise unless `by` may move production under this contract, with a public key to verify them by."""
    person = contract.releaser(by)
    names = ", ".join(o.name for o in contract.releasers) or "nobody"
    if person is None:
        raise AdapterOpsError(f"{by!r} may not promote or roll back {model}: contract {contract.name!r} lets {names} "
                              "do that; ask one of them, or add the person to the contract's `releasers`.")
    if not person.public_key:
        raise AdapterOpsError(f"Contract {contract.name!r} lists no public key for {by!r}: run `adapterops keys init "
                              f"--as {by}` and add the printed line to that owner (or releaser) in the contract.")


def signing_key(by: str, contract, key_file: Path | None):
    """The releaser's private key, checked against the public key the contract lists for them."""
    key = owner_private_key(by, key_file)
    listed = parse_public_key(contract.releaser(by).public_key, f"contract {contract.name}")
    if public_key_line(key.public_key()) != public_key_line(listed):
        raise AdapterOpsError(f"The private key used for {by!r} does not match the public key contract "
                              f"{contract.name!r} lists for them; use the key `adapterops keys init --as {by}` made.")
    return key


def sign_move(model: str, entry: dict, corpus_digest: str, contract, key_file: Path | None = None) -> dict:
    """The DSSE envelope of a move: the releaser's key for a person, the workspace key for the release gate."""
    statement = move_statement(model, entry, corpus_digest)
    if entry["by"] == GATE and entry["action"] == "promote":
        return sign_statement(statement, workspace_key())
    check_releaser(entry["by"], contract, model)
    return sign_statement(statement, signing_key(entry["by"], contract, key_file))


def verify_move(model: str, entry: dict, contract) -> str:
    """'signed' when the entry's envelope verifies and says what the entry says; else why not, in a few words."""
    envelope = entry.get("signature")
    if not envelope:
        return "unsigned"
    claimed = statement_of(envelope)
    try:
        if claimed.get("by") == GATE:
            key = workspace_key().public_key()
        else:
            person = contract.releaser(claimed.get("by", "")) if contract is not None else None
            if person is None or not person.public_key:
                return "not a releaser"
            key = parse_public_key(person.public_key, f"contract {contract.name}")
        statement = open_envelope(envelope, key, f"{model} production move")
    except AdapterOpsError:
        return "bad signature"
    if statement.get("model") != model or any(str(statement.get(k)) != str(entry.get(k)) for k in STATEMENT_FIELDS[1:]
                                               if k in entry and k != "reason"):
        return "does not match"
    return "signed"


def release_contract(model_version) -> tuple[object, str, str]:
    """(contract, pipeline, corpus digest) of a registered adapter version: the contract stored with the corpus
    version it was trained on, found by digest in this workspace (or fetched, anchored by a local contract file)."""
    import mlflow

    from tasks.corpus.fetch import trusted_folder
    from tasks.corpus.versions import find_version, version_contract

    name, version = model_version.name, model_version.version
    digest, run_id = model_version.tags.get("corpus.digest"), model_version.tags.get("corpus.run_id")
    if not digest or not run_id:
        raise AdapterOpsError(f"{name} v{version} names no corpus version, so no contract says who may release it; "
                              "refused. Release adapters trained by `adapterops run` or `adapterops train`.")
    pipeline = model_version.tags.get("corpus.pipeline")
    if not pipeline:   # versions trained before the tag: the corpus run's experiment is PIPELINE/corpus
        pipeline = mlflow.get_experiment(mlflow.MlflowClient().get_run(run_id).info.experiment_id).name
        pipeline = pipeline.removesuffix("/corpus")
    run = find_version(pipeline, digest=digest)
    if run is None:
        raise AdapterOpsError(f"{name} v{version} was trained on corpus digest {digest}, which is no corpus version of "
                              f"{pipeline!r} here; refused.")
    folder, local = trusted_folder(pipeline, digest, run)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("digest") != digest:
        raise AdapterOpsError(f"The manifest in {folder} does not name digest {digest}; refused.")
    return version_contract(folder, manifest, local), pipeline, digest
