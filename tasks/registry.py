"""Release decisions: the promotion gate and the record of what moved where."""

from __future__ import annotations

from adapterops.config import ReleaseConfig
from adapterops.errors import AdapterOpsError


def production_entry(version: str, previous: str | None, action: str, by: str, reason: str, when: str) -> dict:
    """One move of the production alias, as the audit trail keeps it (MLflow keeps no alias history)."""
    return {"version": str(version), "previous": str(previous) if previous else None, "action": action, "by": by,
            "reason": reason, "time": when}


def rollback_target(history: list[dict], current: str | None, promoted: set[str], to_version: str | None) -> str:
    """The version a rollback moves production to: to_version, else the one production held before its last move.

    Only a version that passed the release gate once (promoted) is a target; rolling back twice
    returns to where it started.
    """
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


# --- wrapper: aliases and the audit trail in the registry ------------------------------------------

PRODUCTION_LOG = "production.log."


def production_history(model_name: str) -> list[dict]:
    """Every move of the production alias, oldest first, from the registered model's numbered log tags."""
    import mlflow

    return history_of(registered_model(mlflow.MlflowClient(), model_name))


def history_of(model) -> list[dict]:
    """production_history of a registered model already fetched."""
    import json

    numbered = sorted((int(k[len(PRODUCTION_LOG):]), v) for k, v in model.tags.items() if k.startswith(PRODUCTION_LOG))
    return [json.loads(value) for _, value in numbered]


def registered_model(client, model_name: str):
    """The registered model, or an error that says where to find the names."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(model_name)
    except MlflowException:
        raise AdapterOpsError(f"No registered model {model_name!r}; `adapterops status` lists the adapters.") from None


def registered_version(client, model_name: str, version: str):
    """One registered model version, or an error that says how to list them."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise AdapterOpsError(f"{model_name!r} has no version {version}; `adapterops status` lists them.") from None
        raise AdapterOpsError(f"The MLflow registry did not answer for {model_name} v{version} ({error.error_code}); "
                              "check the tracking server and retry.") from None


def aliases_by_version(aliases: dict) -> dict[str, list[str]]:
    """A registered model's alias → version map turned around (search results leave versions' aliases empty)."""
    held: dict[str, list[str]] = {}
    for alias, version in sorted(aliases.items()):
        held.setdefault(str(version), []).append(alias)
    return held


def move_production(client, model, version: str, action: str, by: str, reason: str) -> dict:
    """Point the registered model's production alias at version and append the move to the audit trail
    (a numbered registered-model tag)."""
    import json
    from datetime import datetime, timezone

    entry = production_entry(version, model.aliases.get("production"), action, by, reason,
                             datetime.now(timezone.utc).isoformat())
    client.set_registered_model_alias(model.name, "production", version)
    client.set_registered_model_tag(model.name, f"{PRODUCTION_LOG}{len(history_of(model)) + 1}", json.dumps(entry)[:5000])
    return entry


def rollback_production(model_name: str, to_version: str | None, by: str, reason: str) -> dict:
    """Move production back (to to_version, or to the version before the last move), recorded in the audit trail."""
    import mlflow

    if not reason.strip():
        raise AdapterOpsError("A rollback needs a reason (--reason): it stays in the audit trail.")
    client = mlflow.MlflowClient()
    model = registered_model(client, model_name)
    current = model.aliases.get("production")
    promoted = {str(v.version) for v in client.search_model_versions(f"name = '{model_name}'")
                if v.tags.get("release.decision") == "promoted"}
    target = rollback_target(history_of(model), current, promoted, to_version)
    entry = move_production(client, model, target, "rollback", by, reason)
    client.set_model_version_tag(model_name, str(current), "release.rolled_back", f"{entry['time']} by {by}: {reason}")
    return {"model_name": model_name, **entry}



def production_version(client, model_name: str):
    """The model version at alias 'production', or None when the model or the alias does not exist.

    Any other registry error stops the step: reading it as "no production" would skip the comparison.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, "production")
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
            return None
        raise AdapterOpsError(f"The MLflow registry did not answer which version of {model_name!r} is in production "
                              f"({error.error_code}: {str(error).splitlines()[0]}); nothing was released. Check the "
                              "tracking server and retry.") from None


def release_adapter(release: ReleaseConfig, adapter: dict, evaluation: dict) -> dict:
    """Alias the new version 'candidate'; move 'production' only if every gate rule passes; record why."""
    import json
    from datetime import datetime, timezone

    import mlflow

    from tasks.gate import decide

    client = mlflow.MlflowClient()
    name, version = adapter["model_name"], adapter["version"]
    client.set_registered_model_alias(name, "candidate", version)
    decision = decide(release.gate, evaluation["summary"])
    current = production_version(client, name)
    previous = str(current.version) if current is not None else None
    promote, reason = decision.promote, decision.reason()
    if previous not in (evaluation["production_version"], version):   # production moved since the evaluation
        promote, reason = False, (f"held: production is v{previous} but the evaluation compared against "
                                  f"{'v' + evaluation['production_version'] if evaluation['production_version'] else 'no production'}; evaluate again")
    if promote:
        move_production(client, client.get_registered_model(name), version, "promote", "release gate", reason)
    when = datetime.now(timezone.utc).isoformat()
    verdict = "promoted" if promote else "held"
    for key, value in {"release.decision": verdict, "release.reason": reason[:5000], "release.time": when,
                       "release.previous_production": previous or ""}.items():
        client.set_model_version_tag(name, version, key, value)
    gate = decision.as_dict() | {"promote": promote, "reason": reason}
    with mlflow.start_run(run_id=evaluation["run_id"]):
        mlflow.set_tags({"release.decision": verdict, "release.reason": reason[:5000]})
        mlflow.log_dict(gate, "evaluation/gate.json")
    return {"model_name": name, "version": version, "promoted": promote, "reason": reason,
            "previous_production": previous, "time": when, "checks": gate["checks"], "notes": decision.notes}


# --- reuse: an unchanged corpus and recipe does not train twice -----------------------------------

def find_trained_version(model_name: str, key: str):
    """The registered version already trained with this training key, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{model_name}' and tag.`train.key` = '{key}'")
    except MlflowException:
        return None
    return max(versions, key=lambda v: int(v.version)) if versions else None


def reusable_version(cfg, corpus: dict) -> dict | None:
    """The adapter version already trained from this corpus and recipe, with its release decision; else None."""
    from adapterops.workspace import resolve_workspace
    from tasks.train import recipe_settings, resolve_base_model, training_key

    base = resolve_base_model(cfg, resolve_workspace().models_dir)
    found = find_trained_version(cfg.release.model_name, training_key(corpus["digest"], base.revision,
                                                                      recipe_settings(cfg)))
    if found is None:
        return None
    import mlflow

    aliases = aliases_by_version(mlflow.MlflowClient().get_registered_model(cfg.release.model_name).aliases)
    return {"model_name": cfg.release.model_name, "version": str(found.version),
            "aliases": aliases.get(str(found.version), []),
            "decision": found.tags.get("release.decision", ""), "reason": found.tags.get("release.reason", "")}
