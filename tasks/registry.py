"""Release decisions: the promotion gate and the record of what moved where."""

from __future__ import annotations

from dataclasses import dataclass

from adapterops.config import ReleaseConfig


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide_promotion(candidate_loss: float, base_loss: float, production_loss: float | None,
                     release: ReleaseConfig) -> Decision:
    """Promote only if the candidate beats the base by min_improvement and does not regress production."""
    needed = base_loss * (1 - release.min_improvement)
    if candidate_loss > needed:
        return Decision(False, f"held-out loss {candidate_loss:.4f} does not beat the base model's {base_loss:.4f} "
                               f"by {release.min_improvement:.0%} (needs <= {needed:.4f})")
    if production_loss is not None:
        allowed = production_loss * (1 + release.max_regression)
        if candidate_loss > allowed:
            return Decision(False, f"held-out loss {candidate_loss:.4f} is worse than production's {production_loss:.4f} "
                                   f"(allowed <= {allowed:.4f})")
        return Decision(True, f"held-out loss {candidate_loss:.4f} beats base {base_loss:.4f} and production {production_loss:.4f}")
    return Decision(True, f"held-out loss {candidate_loss:.4f} beats base {base_loss:.4f}; no production version yet")


# --- wrapper: aliases and the audit trail in the registry ------------------------------------------

def release_adapter(release: ReleaseConfig, adapter: dict, evaluation: dict) -> dict:
    """Alias the new version 'candidate'; move 'production' only if the gate passes; record why."""
    from datetime import datetime, timezone

    import mlflow

    client = mlflow.MlflowClient()
    name, version = adapter["model_name"], adapter["version"]
    client.set_registered_model_alias(name, "candidate", version)
    production = evaluation.get("production")
    decision = decide_promotion(evaluation["candidate"]["loss"], evaluation["base"]["loss"],
                                production["loss"] if production else None, release)
    previous = production["version"] if production else None
    if decision.promote:
        client.set_registered_model_alias(name, "production", version)
    when = datetime.now(timezone.utc).isoformat()
    for key, value in {"release.decision": "promoted" if decision.promote else "held",
                       "release.reason": decision.reason, "release.time": when,
                       "release.previous_production": previous or ""}.items():
        client.set_model_version_tag(name, version, key, value)
    with mlflow.start_run(run_id=evaluation["run_id"]):
        mlflow.set_tags({"release.decision": "promoted" if decision.promote else "held", "release.reason": decision.reason})
    return {"model_name": name, "version": version, "promoted": decision.promote, "reason": decision.reason,
            "previous_production": previous, "time": when}


# --- reuse: an unchanged corpus and recipe does not train twice -----------------------------------

def training_key(corpus_digest: str, base_revision: str, recipe: dict) -> str:
    """What decides an adapter's bytes: the corpus digest, the base model revision and the recipe."""
    import hashlib
    import json

    text = json.dumps({"corpus": corpus_digest, "base": base_revision, "recipe": recipe}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


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
    from tasks.train import recipe_settings, resolve_base_model

    base = resolve_base_model(cfg, resolve_workspace().models_dir)
    found = find_trained_version(cfg.release.model_name, training_key(corpus["digest"], base.revision,
                                                                      recipe_settings(cfg)))
    if found is None:
        return None
    return {"model_name": cfg.release.model_name, "version": str(found.version), "aliases": list(found.aliases),
            "decision": found.tags.get("release.decision", ""), "reason": found.tags.get("release.reason", "")}
