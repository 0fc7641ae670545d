"""MLflow helpers: experiments whose artifacts live in the workspace when the store is local."""

from __future__ import annotations

import os

from adapterops.workspace import resolve_workspace

# MLflow 3's UI opens an experiment in its GenAI traces view unless it is tagged for model training.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or resolve_workspace().mlflow_uri()


def ensure_experiment(name: str) -> str:
    """Experiment id for `name`, created with its artifact root in the workspace for a local store."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    existing = mlflow.get_experiment_by_name(name)
    if existing:
        if existing.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
            mlflow.MlflowClient().set_experiment_tag(existing.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        return existing.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        root = resolve_workspace().artifact_root
        location = (root / name.replace("/", "_")).as_uri()
    return mlflow.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})


def corpus_experiment(pipeline: str) -> str:
    return f"{pipeline}/corpus"


def adapter_experiment(pipeline: str) -> str:
    return f"{pipeline}/adapters"


def resume_run(run_id: str):
    """Reopen a finished run to add to it, whatever experiment this process last set as active.

    MLflow refuses to resume a run outside the active experiment; a process that set another one
    (an earlier step, an earlier test) would otherwise fail here."""
    import mlflow

    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    return mlflow.start_run(run_id=run_id)
