"""`adapterops status`: corpus versions, adapter versions and aliases, in the terminal."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from adapterops.escaping import terminal
from cli.common import prepare

out = Console()


def status(name: str = typer.Option("demo", help="Pipeline name (the config's `name`).")) -> None:
    """Corpus versions, adapter versions and aliases recorded in MLflow."""
    prepare()
    import mlflow

    from adapterops.tracking import tracking_uri
    from cli.commands.corpus import versions_table
    from tasks.release import aliases_by_version, registry_call

    mlflow.set_tracking_uri(tracking_uri())
    out.print(versions_table(name))
    client = mlflow.MlflowClient()
    adapters = Table(title="Adapter versions")
    for column in ("model", "version", "aliases", "corpus", "decision", "reason"):
        adapters.add_column(column)
    for model in registry_call(client.search_registered_models, "listing the registered models"):
        held = aliases_by_version(model.aliases)
        versions = registry_call(lambda: client.search_model_versions(f"name='{model.name}'"),
                                 f"listing the versions of {model.name!r}")
        for v in sorted(versions, key=lambda v: int(v.version)):
            adapters.add_row(*map(terminal, (model.name, str(v.version), ", ".join(held.get(str(v.version), [])),
                                             "v" + v.tags.get("corpus.version", "?"),
                                             v.tags.get("release.decision", ""), v.tags.get("release.reason", ""))))
    out.print(adapters)
