"""The `adapterops` command line; user errors print one line and exit non-zero."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from adapterops.config import Config, field_docs, load_config, parse_config
from adapterops.errors import AdapterOpsError
from adapterops.workspace import configure_environment, resolve_workspace

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="AdapterOps: curate, approve, train, evaluate and release LoRA adapters.")
console = Console(stderr=True)
out = Console()

DEMO_SETTINGS = {"name": "demo", "approval": "auto"}


class _HideUserErrorTracebacks(logging.Filter):
    """Prefect logs a flow's exception with its traceback; for our user errors one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], AdapterOpsError):
            record.exc_info, record.exc_text = None, None
        return True


def prepare(config: Config | None = None) -> None:
    configure_environment(resolve_workspace(), config.mlflow_tracking_uri if config else None,
                          config.prefect_api_url if config else None)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # The embedded Prefect server's connection pool logs a cancelled rollback when the process exits.
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)

    # A logger's own filters see every record it creates, whatever handlers Prefect installs later.
    for name in ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine"):
        logging.getLogger(name).addFilter(_HideUserErrorTracebacks())


def _run_pipeline(config: Config) -> None:
    prepare(config)
    from flows.retrain import retrain

    started = time.perf_counter()
    result = retrain(config)
    _print_summary(result, time.perf_counter() - started)


def _print_summary(result: dict, seconds: float) -> None:
    corpus = result["corpus"]
    table = Table(title=f"retrain finished in {seconds:.0f} s", show_header=False)
    table.add_row("corpus", f"v{corpus['version']}  {corpus['digest'][:23]}  "
                            + ", ".join(f"{k} {v}" for k, v in corpus["counts"].items()))
    if elsewhere := result.get("approved_elsewhere"):
        table.add_row("adapter", f"not trained here: {elsewhere['approver']} approved the corpus outside this run, "
                                 "which trains it (the on-approval deployment, or the run whose form approved it)")
        out.print(table)
        return
    if reused := result.get("reused"):
        table.add_row("adapter", f"unchanged: {reused['model_name']} v{reused['version']} was already trained from this "
                                 f"corpus and recipe (aliases: {', '.join(reused['aliases']) or 'none'}); nothing to do")
        table.add_row("workspace", str(resolve_workspace().root))
        out.print(table)
        return
    adapter, evaluation, release = (result[k] for k in ("adapter", "evaluation", "release"))
    table.add_row("adapter", f"{adapter['model_name']} v{adapter['version']}  ({adapter['logged_bytes'] / 1e6:.2f} MB logged, "
                             f"base {adapter['base_name']} {adapter['base_revision']})")
    table.add_row("held-out loss", f"base {evaluation['base']['loss']:.4f} → candidate {evaluation['candidate']['loss']:.4f}")
    table.add_row("release", ("promoted to production: " if release["promoted"] else "held at candidate: ") + release["reason"])
    table.add_row("workspace", str(resolve_workspace().root))
    out.print(table)


@app.command()
def demo() -> None:
    """Run the whole pipeline on the generated demo corpus and the built-in tiny model."""
    _run_pipeline(parse_config(DEMO_SETTINGS, "built-in demo config"))


@app.command()
def run(config: Path = typer.Argument(..., help="YAML config file, e.g. configs/demo.yaml.")) -> None:
    """Run the retrain pipeline described by CONFIG."""
    _run_pipeline(load_config(config))


@app.command()
def status(name: str = typer.Option("demo", help="Pipeline name (the config's `name`).")) -> None:
    """Corpus versions, adapter versions and aliases recorded in MLflow."""
    prepare()
    import mlflow

    from adapterops.commands.corpus import versions_table
    from adapterops.tracking import tracking_uri
    from tasks.registry import aliases_by_version

    mlflow.set_tracking_uri(tracking_uri())
    out.print(versions_table(name))
    client = mlflow.MlflowClient()
    adapters = Table(title="Adapter versions")
    for column in ("model", "version", "aliases", "corpus", "decision", "reason"):
        adapters.add_column(column)
    for model in client.search_registered_models():
        held = aliases_by_version(model.aliases)
        for v in sorted(client.search_model_versions(f"name='{model.name}'"), key=lambda v: int(v.version)):
            adapters.add_row(model.name, str(v.version), ", ".join(held.get(str(v.version), [])),
                             "v" + v.tags.get("corpus.version", "?"),
                             v.tags.get("release.decision", ""), v.tags.get("release.reason", ""))
    out.print(adapters)


@app.command("config-fields")
def config_fields() -> None:
    """Every config field with its default and description."""
    table = Table("field", "default", "description")
    for row in field_docs():
        table.add_row(*row)
    out.print(table)


# Command modules in adapterops/commands/ register themselves here, one line each.
from adapterops.commands import corpus as _corpus  # noqa: E402

app.add_typer(_corpus.app, name="corpus")
from adapterops.commands.contract import register as _register_contract  # noqa: E402
_register_contract(app)  # `contract check`, `validate`
from adapterops.commands import train as _train; app.command("train")(_train.train)  # noqa: E402,E702
from adapterops.commands import dedup as _dedup; app.command("dedup")(_dedup.dedup)  # noqa: E402,E702
from adapterops.commands import label as _label; app.add_typer(_label.app, name="label")  # noqa: E402,E702
from adapterops.commands import release as _release; app.add_typer(_release.app, name="release")  # noqa: E402,E702
from adapterops.commands import notify as _notify; app.add_typer(_notify.app, name="notify")  # noqa: E402,E702


def main() -> None:
    try:
        app()
    except AdapterOpsError as error:
        console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
