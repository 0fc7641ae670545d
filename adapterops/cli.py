"""The `adapterops` command line; user errors print one line and exit non-zero."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapterops.commands import prepare
from adapterops.config import Config, field_docs, load_config, parse_config
from adapterops.errors import AdapterOpsError
from adapterops.escaping import terminal
from adapterops.storage import disk_full_error, is_disk_full
from adapterops.workspace import require_free_space, resolve_workspace

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="AdapterOps: curate, approve, train, evaluate and release LoRA adapters.")
console = Console(stderr=True)
out = Console()

# The demo trains long enough for the tiny model to learn the triage decision, not only the house style.
DEMO_SETTINGS = {"name": "demo", "approval": "auto", "train": {"max_steps": 200, "batch_size": 16}}


def _run_pipeline(config: Config) -> None:
    prepare(config)
    require_free_space(resolve_workspace())
    from flows.retrain import retrain

    started = time.perf_counter()
    result = retrain(config)
    _print_summary(result, time.perf_counter() - started)


def _print_summary(result: dict, seconds: float) -> None:
    corpus = result["corpus"]
    table = Table(title=f"retrain finished in {seconds:.0f} s", show_header=False)
    table.add_row("corpus", f"v{corpus.version}  {corpus.digest[:23]}  "
                            + ", ".join(f"{k} {v}" for k, v in corpus.counts.items()))
    if elsewhere := result.get("approved_elsewhere"):
        table.add_row("adapter", f"not trained here: {elsewhere['approver']} approved the corpus outside this run, "
                                 "which trains it (the on-approval deployment, or the run whose form approved it)")
        out.print(table)
        return
    if reused := result.get("reused"):
        table.add_row("adapter", f"unchanged: {reused.model_name} v{reused.version} was already trained from this "
                                 f"corpus and recipe (aliases: {', '.join(reused.aliases) or 'none'}); nothing to do")
        table.add_row("workspace", str(resolve_workspace().root))
        out.print(table)
        return
    adapter, evaluation, release = (result[k] for k in ("adapter", "evaluation", "release"))
    from adapterops.commands.evaluate import gate_table, scores_table

    table.add_row("adapter", f"{adapter.model_name} v{adapter.version}  ({adapter.logged_bytes / 1e6:.2f} MB logged, "
                             f"base {adapter.base_name} {adapter.base_revision})")
    table.add_row("evaluation", f"{evaluation.examples} eval records, {evaluation.seconds:.0f} s, MLflow run "
                                f"{evaluation.run_id}")
    if staged := result.get("staging"):
        table.add_row("staging", f"{'passed' if staged.passed else 'FAILED'}: {staged.requests} eval prompts over "
                                 f"HTTP at alias staging, p95 {staged.p95_seconds:.2f} s, format {staged.format_share:.0%}, "
                                 f"{staged.differ} differ from the offline answers"
                                 + ("" if staged.passed else " — " + escape("; ".join(staged.reasons))))
    table.add_row("release", ("promoted to production: " if release.promoted else "held at candidate: ")
                  + escape(release.reason))
    table.add_row("workspace", str(resolve_workspace().root))
    out.print(table)
    out.print(scores_table(evaluation, "Task scores on the held-out workload: base → candidate"))
    out.print(gate_table(release.checks, "Release gate"))


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
    from tasks.registry import aliases_by_version, registry_call

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
from adapterops.commands import evaluate as _evaluate; app.command("eval")(_evaluate.evaluate_version)  # noqa: E402,E702
from adapterops.commands import keys as _keys; app.add_typer(_keys.app, name="keys")  # noqa: E402,E702
from adapterops.commands import serve as _serve; app.command("serve")(_serve.serve)  # noqa: E402,E702
from adapterops.commands import export as _export; app.command("export")(_export.export)  # noqa: E402,E702
from adapterops.commands import notify as _notify; app.add_typer(_notify.app, name="notify")  # noqa: E402,E702


def main() -> None:
    try:
        app()
    except AdapterOpsError as error:
        console.print(f"[bold red]error:[/] {terminal(error)}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except Exception as error:       # a full disk or a registry fault where no step expected one: one line too
        if is_disk_full(error):
            error = disk_full_error(getattr(error, "filename", None) or resolve_workspace().root)
        elif _is_mlflow_error(error):
            from tasks.registry import registry_failure

            error = registry_failure(error, "running this command")
        else:
            raise
        console.print(f"[bold red]error:[/] {terminal(error)}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _is_mlflow_error(error: Exception) -> bool:
    exceptions = sys.modules.get("mlflow.exceptions")      # loaded by any command that reached MLflow
    return exceptions is not None and isinstance(error, exceptions.MlflowException)


if __name__ == "__main__":
    main()
