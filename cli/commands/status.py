"""`adapterops status`: corpus versions of every pipeline (or one), adapter versions and aliases, in the terminal."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from adapterops.escaping import terminal
from cli.common import prepare

out = Console()


def pipeline_names() -> list[str]:
    """Every pipeline with a corpus experiment in the tracking store (NAME/corpus), sorted."""
    import mlflow

    suffix = "/corpus"
    experiments = mlflow.search_experiments(filter_string=f"name LIKE '%{suffix}'")
    return sorted(e.name[:-len(suffix)] for e in experiments if e.name.endswith(suffix))


def status(name: Optional[str] = typer.Option(None, help="Pipeline name (the config's `name`); unset: every pipeline.")) -> None:
    """Corpus versions, adapter versions and aliases recorded in MLflow."""
    prepare()
    import mlflow

    from adapterops.tracking import tracking_uri
    from cli.commands.corpus import shown_time, versions_table
    from tasks.release import aliases_by_version, registry_call

    mlflow.set_tracking_uri(tracking_uri())
    names = [name] if name else pipeline_names()
    if not names:
        out.print("No pipeline has a corpus version yet: run `adapterops demo` or `adapterops run CONFIG`.")
    for pipeline in names:
        out.print(versions_table(pipeline))
    client = mlflow.MlflowClient()
    adapters = Table(title="Adapter versions")
    for column in ("model", "version", "created (UTC)", "aliases", "corpus", "decision", "reason"):
        adapters.add_column(column)
    for model in registry_call(client.search_registered_models, "listing the registered models"):
        held = aliases_by_version(model.aliases)
        versions = registry_call(lambda: client.search_model_versions(f"name='{model.name}'"),
                                 f"listing the versions of {model.name!r}")
        for v in sorted(versions, key=lambda v: int(v.version)):
            adapters.add_row(*map(terminal, (model.name, str(v.version), shown_time(v.creation_timestamp),
                                             ", ".join(held.get(str(v.version), [])),
                                             "v" + v.tags.get("corpus.version", "?"),
                                             v.tags.get("release.decision", ""), v.tags.get("release.reason", ""))))
    out.print(adapters)
