"""Release decisions: the promotion gate and the record of what moved where."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from adapterops.config import ReleaseConfig
from adapterops.errors import AdapterOpsError, RegistryError
from adapterops.faults import crash_point
from adapterops.tracking import resume_run
from adapterops.refs import AdapterRef, EvaluationResult, ReleaseDecision, StagingResult
from tasks.release.authority import GATE, check_releaser, release_contract, sign_move
from tasks.release.gate import decide


def production_entry(version: str, previous: str | None, action: str, by: str, reason: str, when: str,
                     status: str = "done") -> dict:
    """One move of the production alias, as the audit trail keeps it (MLflow keeps no alias history).

    status is "intent" while the move is under way, "done" once alias and tags agree, "abandoned" when the
    alias was found moved elsewhere before the move finished.
    """
    return {"version": str(version), "previous": str(previous) if previous else None, "action": action, "by": by,
            "reason": reason, "time": when, "status": status}


def reconcile_step(entry: dict, alias: str | None) -> str:
    """What to do with a recorded intent, given where the alias is now: 'finish', or 'abandon' when the
    alias was moved elsewhere (by hand, or by another mover) since the intent was written."""
    if alias is not None and str(alias) == entry["version"]:
        return "finish"             # moved, but not yet marked done
    if (str(alias) if alias is not None else None) == entry["previous"]:
        return "finish"             # not moved yet: the decision was made and recorded, so the move completes
    return "abandon"


def completed_moves(history: list[dict]) -> list[dict]:
    """The moves that happened (entries written before the status field existed count as done)."""
    return [e for e in history if e.get("status", "done") == "done"]


def rollback_target(history: list[dict], current: str | None, promoted: set[str], to_version: str | None) -> str:
    """The version a rollback moves production to: to_version, else the one production held before its last move.

    Only a version that passed the release gate once (promoted) is a target; rolling back twice
    returns to where it started.
    """
    history = completed_moves(history)
    if current is None:
        raise AdapterOpsError("No version is in production; there is nothing to roll back.")
    if to_version is None:
        last = history[-1] if history else None
        if not last or last["version"] != str(current) or not last["previous"]:
            raise AdapterOpsError(f"Production (v{current}) has no earlier version in its audit trail; name one with --to.")
        to_version = last["previous"]
    to_version = str(to_version)
    if to_version == str(current):
        raise AdapterOpsError(f"v{to_version} is already in production.")
    if to_version not in promoted:
        raise AdapterOpsError(f"v{to_version} never passed the release gate, so it is no rollback target "
                              f"(versions that did: {', '.join(sorted(promoted, key=int)) or 'none'}); "
                              "release it through the pipeline instead.")
    return to_version


def retried_rollback(history: list[dict], to_version: str | None, by: str, reason: str) -> dict | None:
    """The crashed rollback that a plain retry of the same command asks for, once reconciling has finished it.

    Only a rollback finished by a reconcile (its process died mid-way) counts; a completed rollback run
    again still moves production back, as before.
    """
    moves = completed_moves(history)
    last = moves[-1] if moves else None
    if (last and last["action"] == "rollback" and last.get("reconciled") and last["by"] == by
            and last["reason"] == reason and to_version in (None, last["version"])):
        return last
    return None


# --- wrapper: aliases and the audit trail in the registry ------------------------------------------

PRODUCTION_LOG = "production.log."
ABSENT = "RESOURCE_DOES_NOT_EXIST"      # the only registry error code that means "not there"


def registry_failure(error: Exception, doing: str) -> RegistryError:
    """One line for a registry error that is not "does not exist": where, what failed, what to do."""
    import mlflow

    detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if any(sign in detail for sign in ("Max retries exceeded", "NewConnectionError", "ConnectionError", "timed out")):
        detail = "no answer after MLflow's retries: the server could not be reached"   # urllib3's text runs to 500 chars
    detail = detail[:300]
    return RegistryError(f"The MLflow registry at {mlflow.get_registry_uri()} failed while {doing} ({detail}); "
                         "the step stopped instead of guessing. Check that the server is reachable and "
                         "MLFLOW_TRACKING_URI is right, then run again.")


def registry_call(call, doing: str, absent_ok: bool = False):
    """call(); None if absent_ok and the registry says the thing does not exist; any other error stops the step."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as error:
        if absent_ok and getattr(error, "error_code", None) == ABSENT:
            return None
        raise registry_failure(error, doing) from None


def registered_model(client, model_name: str, reconcile: bool = True):
    """The registered model (with interrupted production moves finished), or an error that says where to find names."""
    model = registry_call(lambda: client.get_registered_model(model_name),
                          f"reading registered model {model_name!r}", absent_ok=True)
    if model is None:
        raise AdapterOpsError(f"No registered model {model_name!r}; `adapterops status` lists the adapters.")
    if reconcile and reconcile_production(client, model):
        model = registry_call(lambda: client.get_registered_model(model_name), f"reading registered model {model_name!r}")
    return model


def production_version(client, model_name: str):
    """The model version at alias 'production'; None only when the model or the alias does not exist.

    Reads the registered model's aliases rather than asking for the alias: a missing alias is not an
    error there, so every error left means the registry failed, and the step stops.
    """
    model = registry_call(lambda: client.get_registered_model(model_name),
                          f"reading the production alias of {model_name!r}", absent_ok=True)
    if model is None:
        return None
    if reconcile_production(client, model):
        model = registry_call(lambda: client.get_registered_model(model_name),
                              f"reading the production alias of {model_name!r}")
    version = model.aliases.get("production")
    if version is None:
        return None
    return registry_call(lambda: client.get_model_version(model_name, str(version)),
                         f"reading {model_name} v{version}, which production points at")


def production_history(model_name: str) -> list[dict]:
    """Every move of the production alias, oldest first, from the registered model's numbered log tags."""
    import mlflow

    return history_of(registered_model(mlflow.MlflowClient(), model_name))


def _numbered_log(model) -> list[tuple[int, dict]]:
    return sorted((int(k[len(PRODUCTION_LOG):]), json.loads(v)) for k, v in model.tags.items()
                  if k.startswith(PRODUCTION_LOG))


def history_of(model) -> list[dict]:
    """production_history of a registered model already fetched."""
    return [entry for _, entry in _numbered_log(model)]


def registered_version(client, model_name: str, version: str):
    """One registered model version, or an error that says how to list them."""
    found = registry_call(lambda: client.get_model_version(model_name, str(version)),
                          f"reading {model_name} v{version}", absent_ok=True)
    if found is None:
        raise AdapterOpsError(f"{model_name!r} has no version {version}; `adapterops status` lists them.")
    return found


def aliases_by_version(aliases: dict) -> dict[str, list[str]]:
    """A registered model's alias → version map turned around (search results leave versions' aliases empty)."""
    held: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        held.setdefault(str(version), []).append(alias)
    return held


def _write_entry(client, name: str, number: int, entry: dict) -> None:
    text = json.dumps(entry)
    if len(text) > 5000 and "signature" in entry:    # a cut envelope would not verify: shorten the reason instead
        entry = entry | {"reason": entry["reason"][: max(0, 5000 - (len(text) - len(entry["reason"])) - 20)] + " …"}
        text = json.dumps(entry)
    registry_call(lambda: client.set_registered_model_tag(name, f"{PRODUCTION_LOG}{number}", text[:5000]),
                  f"writing production log entry {number} of {name!r}")


def _crash_name(entry: dict) -> str:
    return "release" if entry["action"] == "promote" else entry["action"]


def finish_move(client, name: str, number: int, entry: dict, reconciled: bool = False) -> dict:
    """Complete a recorded intent: move the alias, tag the versions it concerns, then mark the entry done.

    Every step is idempotent, so finishing twice (a reconcile racing the mover, a retry) does no harm.
    """
    registry_call(lambda: client.set_registered_model_alias(name, "production", entry["version"]),
                  f"moving {name}'s production alias to v{entry['version']}")
    crash_point(f"{_crash_name(entry)}-after-alias")
    if entry["action"] == "promote":
        tags = {"release.decision": "promoted", "release.reason": entry["reason"], "release.time": entry["time"],
                "release.previous_production": entry["previous"] or ""}
        target = entry["version"]
    else:
        tags, target = {"release.rolled_back": f"{entry['time']} by {entry['by']}: {entry['reason']}"}, entry["previous"]
    for key, value in tags.items():
        if target:
            registry_call(lambda: client.set_model_version_tag(name, target, key, value),
                          f"tagging {name} v{target} with {key}")
    done = entry | {"status": "done"} | ({"reconciled": True} if reconciled else {})
    _write_entry(client, name, number, done)
    return done


def reconcile_production(client, model) -> list[dict]:
    """Finish (or mark abandoned) every production move whose intent was recorded but not marked done.

    Returns the entries it changed; called by every read of the alias, so a crash mid-move is repaired
    by the next command, whichever it is.
    """
    changed = []
    alias = model.aliases.get("production")
    for number, entry in _numbered_log(model):
        if entry.get("status", "done") != "intent":
            continue
        if reconcile_step(entry, alias) == "finish":
            changed.append(finish_move(client, model.name, number, entry, reconciled=True))
            alias = entry["version"]
        else:
            abandoned = entry | {"status": "abandoned",
                                 "reason": f"{entry['reason']} [not completed: production was found at v{alias}]"}
            _write_entry(client, model.name, number, abandoned)
            changed.append(abandoned)
    return changed


def move_production(client, model, version: str, action: str, by: str, reason: str, sign=None) -> dict:
    """Point the registered model's production alias at version, recorded in the audit trail.

    Intent first (a numbered log entry with status "intent"), then the alias and version tags, then the
    entry marked done: a crash at any point leaves an intent that the next read finishes. sign(entry) returns
    the DSSE envelope of the move (tasks/release/authority.py), which the entry carries.
    """
    log = _numbered_log(model)
    number = (log[-1][0] if log else 0) + 1
    entry = production_entry(version, model.aliases.get("production"), action, by, reason,
                             datetime.now(timezone.utc).isoformat(), status="intent")
    if sign is not None:
        entry["signature"] = sign(entry)
    _write_entry(client, model.name, number, entry)
    crash_point(f"{_crash_name(entry)}-after-intent")
    return finish_move(client, model.name, number, entry)


def record_hold(client, model, version: str, action: str, reason: str) -> dict:
    """A candidate stopped on its way to production, in the audit trail beside the moves (status "held":
    it moved nothing, so rollback and reconciling skip it)."""
    log = _numbered_log(model)
    entry = production_entry(version, model.aliases.get("production"), action, "release gate", reason,
                             datetime.now(timezone.utc).isoformat(), status="held")
    _write_entry(client, model.name, (log[-1][0] if log else 0) + 1, entry)
    return entry


def _signer(client, model_name: str, version: str, by: str, key_file):
    """Check that `by` may move production to this version (the contract of its corpus says who may), and
    return the function that signs the move with their key."""
    contract, _, digest = release_contract(registered_version(client, model_name, version))
    check_releaser(by, contract, model_name)
    return lambda entry: sign_move(model_name, entry, digest, contract, key_file)


def promote_production(model_name: str, version: str, by: str, reason: str, key_file=None) -> dict:
    """A person moves production to `version`: a releaser of the contract of its corpus, signed with their key;
    the corpus's approval is verified first (signed, bytes rehashed)."""
    import mlflow

    from tasks.approve.approval import require_approved

    if not reason.strip():
        raise AdapterOpsError("A promotion needs a reason (--reason): it stays in the audit trail.")
    client = mlflow.MlflowClient()
    model = registered_model(client, model_name)
    version = str(version)
    if model.aliases.get("production") is not None and str(model.aliases["production"]) == version:
        raise AdapterOpsError(f"{model_name} v{version} is already in production.")
    sign = _signer(client, model_name, version, by, key_file)
    target = registered_version(client, model_name, version)
    _, pipeline, digest = release_contract(target)
    require_approved(pipeline, digest)
    return {"model_name": model_name, **move_production(client, model, version, "promote", by, reason, sign)}


def rollback_production(model_name: str, to_version: str | None, by: str, reason: str, key_file=None) -> dict:
    """Move production back (to to_version, or to the version before the last move), recorded in the audit trail;
    only a releaser of the contract of the target's corpus may, signed with their key.

    A plain retry of a rollback that crashed half-way returns the rollback it finished instead of moving again.
    """
    import mlflow

    if not reason.strip():
        raise AdapterOpsError("A rollback needs a reason (--reason): it stays in the audit trail.")
    client = mlflow.MlflowClient()
    model = registered_model(client, model_name)
    history = history_of(model)
    if (entry := retried_rollback(history, to_version, by, reason)) is not None:
        return {"model_name": model_name, **entry}
    current = model.aliases.get("production")
    versions = registry_call(lambda: client.search_model_versions(f"name = '{model_name}'"),
                             f"listing the versions of {model_name!r}")
    promoted = {str(v.version) for v in versions if v.tags.get("release.decision") == "promoted"}
    promoted |= {e["version"] for e in completed_moves(history) if e["action"] == "promote"}
    target = rollback_target(history, current, promoted, to_version)
    sign = _signer(client, model_name, target, by, key_file)
    entry = move_production(client, model, target, "rollback", by, reason, sign)
    show_audit_trail(client, model_name)
    return {"model_name": model_name, **entry}


AUDIT_TABLE = "release/audit_trail.json"
AUDIT_COLUMNS = ("entry", "time", "action", "version", "previous", "by", "status", "reason")


def audit_rows(history: list[dict]) -> list[list]:
    """The audit trail as table rows (numbered from 1, oldest first), for people; the log tags stay the record."""
    return [[number, e.get("time", ""), e.get("action", ""), e.get("version", ""), e.get("previous") or "",
             e.get("by", ""), e.get("status", "done"), e.get("reason", "")] for number, e in enumerate(history, start=1)]


def show_audit_trail(client, model_name: str) -> str | None:
    """Write the whole audit trail as a table artifact (MLflow's table format, rendered as a table in the
    artifact view) on the run of the registered model's latest version; replaced each time, never appended.
    Returns that run's id (None when the version has no run)."""
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_ARTIFACTS

    model = registered_model(client, model_name, reconcile=False)
    versions = registry_call(lambda: client.search_model_versions(f"name = '{model_name}'"),
                             f"listing the versions of {model_name!r}")
    latest = max(versions, key=lambda v: int(v.version), default=None)
    if latest is None or not latest.run_id:
        return None
    table = {"columns": list(AUDIT_COLUMNS), "data": audit_rows(history_of(model))}
    registry_call(lambda: client.log_dict(latest.run_id, table, AUDIT_TABLE),
                  f"writing the audit trail of {model_name!r} to v{latest.version}'s run")
    logged = json.loads(client.get_run(latest.run_id).data.tags.get(MLFLOW_LOGGED_ARTIFACTS, "[]"))
    if {"path": AUDIT_TABLE, "type": "table"} not in logged:
        client.set_tag(latest.run_id, MLFLOW_LOGGED_ARTIFACTS, json.dumps(logged + [{"path": AUDIT_TABLE, "type": "table"}]))
    return latest.run_id


def release_adapter(release: ReleaseConfig, adapter: AdapterRef, evaluation: EvaluationResult,
                    staging: StagingResult | None = None) -> ReleaseDecision:
    """Alias the new version 'candidate'; move 'production' only if every gate rule passes and, with
    release.staging, the staging smoke suite passed over HTTP; record why.

    Production is read again here (failing closed): when it is no longer the version the candidate was
    evaluated against, the candidate is held, since the gate's production comparison would be stale.
    """
    import mlflow

    client = mlflow.MlflowClient()
    name, version = adapter.model_name, adapter.version
    registry_call(lambda: client.set_registered_model_alias(name, "candidate", version),
                  f"setting {name}'s candidate alias to v{version}")
    decision = decide(release.gate, evaluation.summary, release.waivers)
    evaluated_against = evaluation.production_version
    current = production_version(client, name)
    current = str(current.version) if current is not None else None
    previous, promote, reason = evaluated_against, decision.promote, decision.reason()
    if current == str(version):         # promoted by an earlier attempt of this step (a retry after a crash)
        moves = [e for e in completed_moves(history_of(registered_model(client, name))) if e["version"] == str(version)]
        promote, reason = True, moves[-1]["reason"] if moves else "already in production"
        previous = moves[-1]["previous"] if moves else None
    elif current != evaluated_against:
        promote, reason = False, (f"held: production is now {'v' + current if current else 'unset'}, but this candidate "
                                  f"was evaluated against {'v' + evaluated_against if evaluated_against else 'no production version'}; "
                                  "evaluate it again against the current production before releasing")
        previous = current
    elif promote and release.staging and not (staging and staging.passed):
        promote = False
        reason = "held: staging failed: " + ("; ".join(staging.reasons) if staging else "the smoke suite did not run")
        record_hold(client, registered_model(client, name, reconcile=False), version, "staging-failed", reason)
        previous = current
    elif promote:
        digest = registered_version(client, name, version).tags.get("corpus.digest", "")
        move_production(client, registered_model(client, name, reconcile=False), version, "promote", GATE, reason,
                        sign=lambda entry: sign_move(name, entry, digest, None))
    when = datetime.now(timezone.utc).isoformat()
    if not promote:   # a promotion's tags are written by the move itself (finish_move)
        for key, value in {"release.decision": "held", "release.reason": reason[:5000], "release.time": when,
                           "release.previous_production": previous or ""}.items():
            registry_call(lambda: client.set_model_version_tag(name, version, key, value),
                          f"tagging {name} v{version} with {key}")
    verdict = "promoted" if promote else "held"
    gate = decision.as_dict() | {"promote": promote, "reason": reason,
                                 "staging": staging.model_dump(mode="json") if staging else None,
                                 "rules": [rule.model_dump(exclude_none=True) for rule in release.gate],
                                 "waivers": [w.model_dump() for w in release.waivers]}
    with resume_run(evaluation.run_id):
        mlflow.set_tags({"release.decision": verdict, "release.reason": reason[:5000]})
        mlflow.log_dict(gate, "evaluation/gate.json")
    show_audit_trail(client, name)
    return ReleaseDecision(model_name=name, version=version, promoted=promote, reason=reason,
                           previous_production=previous, time=when, checks=gate["checks"], notes=decision.notes,
                           staging=staging)
