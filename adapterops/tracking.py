"""MLflow helpers: experiments whose artifacts live in the workspace when the store is local."""

from __future__ import annotations

import os

from adapterops.workspace import resolve_workspace


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or resolve_workspace().mlflow_uri()


def ensure_experiment(name: str) -> str:
    """Experiment id for `name`, created with its artifact root in the workspace for a local store."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    existing = mlflow.get_experiment_by_name(name)
    if existing:
        return existing.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        root = resolve_workspace().artifact_root
        location = (root / name.replace("/", "_")).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)


def corpus_experiment(pipeline: str) -> str:
    return f"{pipeline}/corpus"


def adapter_experiment(pipeline: str) -> str:
    return f"{pipeline}/adapters"
