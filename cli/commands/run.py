"""`adapterops demo` and `adapterops run CONFIG`: the retrain pipeline end to end, and its summary."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapterops.config import Config, load_config, parse_config
from adapterops.workspace import require_free_space, resolve_workspace
from cli.common import prepare

out = Console()

# The demo trains long enough for the tiny model to learn the triage decision, not only the house style.
DEMO_SETTINGS = {"name": "demo", "approval": "auto", "train": {"max_steps": 200, "batch_size": 16, "replay_share": 0.25}}


def _run_pipeline(config: Config) -> None:
    prepare(config)
    require_free_space(resolve_workspace())
    from adapterops.processes import retire_dead_runs
    from adapterops.tracking import adapter_experiment, corpus_experiment, tracking_uri
    from flows.retrain import retrain

    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    if retired := retire_dead_runs([corpus_experiment(config.name), adapter_experiment(config.name)]):
        out.print(f"Marked {len(retired)} MLflow run(s) of processes that died mid-run as KILLED "
                  f"({', '.join(r[:8] for r in retired)}); this run continues from the first step not done.")

    started = time.perf_counter()
    result = retrain(config)
    _print_summary(result, time.perf_counter() - started)
    _print_quarantine(result["corpus"])


def _print_quarantine(corpus) -> None:
    """Why records left the corpus version: counts by reason, one example each, and the full table's path."""
    import pandas as pd

    from adapterops.escaping import terminal
    from tasks.records import breakdown_lines, reason_breakdown

    table = Path(corpus.path) / "quarantine.parquet"
    if not table.is_file():
        return
    for line in breakdown_lines(reason_breakdown(pd.read_parquet(table)), table):
        out.print(terminal(line), highlight=False, soft_wrap=True)


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
    if step := result.get("resumed_from"):
        table.add_row("resumed", f"{adapter.model_name} v{adapter.version} was trained by an earlier run that stopped; "
                                 f"continued from {step.removesuffix('d')}")
    from cli.commands.evaluate import gate_table, judges_table, scores_table
    from tasks.release import format_text

    table.add_row("adapter", f"{adapter.model_name} v{adapter.version}  ({adapter.logged_bytes / 1e6:.2f} MB logged, "
                             f"base {adapter.base_name} {adapter.base_revision})")
    table.add_row("evaluation", f"{evaluation.examples} eval records, {evaluation.seconds:.0f} s, MLflow run "
                                f"{evaluation.run_id}")
    if staged := result.get("staging"):
        table.add_row("staging", f"{'passed' if staged.passed else 'FAILED'}: {staged.requests} eval prompts over "
                                 f"HTTP at alias staging, p95 {staged.p95_seconds:.2f} s, format {format_text(staged)}, "
                                 f"{staged.differ} differ from the offline answers"
                                 + ("" if staged.passed else " — " + escape("; ".join(staged.reasons))))
    table.add_row("release", ("promoted to production: " if release.promoted else "held at candidate: ")
                  + escape(release.reason))
    table.add_row("workspace", str(resolve_workspace().root))
    out.print(table)
    out.print(scores_table(evaluation, "Task scores on the held-out workload: base → candidate"))
    if judges := judges_table(evaluation):
        out.print(judges)
    out.print(gate_table(release.checks, "Release gate"))


def demo() -> None:
    """Run the whole pipeline on the generated demo corpus and the built-in tiny model."""
    _run_pipeline(parse_config(DEMO_SETTINGS, "built-in demo config"))


def run(config: Path = typer.Argument(..., help="YAML config file, e.g. configs/demo.yaml.")) -> None:
    """Run the retrain pipeline described by CONFIG."""
    _run_pipeline(load_config(config))
