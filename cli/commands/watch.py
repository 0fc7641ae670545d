"""`adapterops watch NAME`: a window of the production adapter's recorded traffic against its corpus and its
release-time evaluation (the watch flow: MLflow run, Prefect artifact, a notification when a threshold trips)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from adapterops.config import WatchConfig
from adapterops.escaping import terminal
from cli.common import prepare

out = Console()


def watch(name: str = typer.Argument(..., help="Pipeline (the config's `name`) whose adapter is watched."),
          config: Path = typer.Option(None, help="YAML config (watch, release.model_name, serve.record); default: "
                                                 "the defaults with this name."),
          days: float = typer.Option(None, help=f"Days of traffic, ending now (default: watch.window_days, "
                                                f"{WatchConfig().window_days:g})."),
          store: Path = typer.Option(None, help="Traffic store to read (default: serve.record.folder, or "
                                                "ADAPTEROPS_HOME/traffic)."),
          fail_on_alert: bool = typer.Option(False, "--fail-on-alert", help="Exit 1 when a threshold trips.")) -> None:
    """Novelty of recorded traffic against the corpus, reference-free scores and feedback against release."""
    from adapterops.config import load_config, parse_config

    run_config = load_config(config) if config else parse_config({"name": name})
    update = {"name": name}
    if days is not None:
        update["watch"] = run_config.watch.model_copy(update={"window_days": days})
    run_config = run_config.model_copy(update=update)
    prepare(run_config)
    from flows.watch import watch as watch_flow

    result = watch_flow(run_config, store=str(store) if store else None)
    table = Table("figure", "production", "at release", "source",
                  title=terminal(f"{result.model_name} v{result.version}: {result.conversations} conversations, "
                                 f"{result.window_start[:16]} → {result.window_end[:16]}"))
    table.add_row("novel share", f"{result.novel_share:.0%}", f"{result.baseline_share:.0%}", "held-out set")
    for row in result.scores:
        table.add_row(terminal(row["score"]), f"{row['production']:.3f}",
                      "-" if row["release"] is None else f"{row['release']:.3f}", row["source"] or "-")
    feedback = result.feedback
    table.add_row("feedback rated bad", f"{feedback['bad_share']:.0%} of {int(feedback['count'])}", "-", "-")
    out.print(table)
    for number, cluster in enumerate(result.clusters, start=1):
        out.print(terminal(f"novel cluster {number}: {cluster['size']} conversations ({cluster['share']:.0%}); "
                           f"{', '.join(cluster['words'])}"), highlight=False)
        for example in cluster["examples"]:
            out.print("  " + terminal(" ".join(example["text"].split())[:160]), highlight=False)
    out.print(terminal(f"alert: {result.message}" if result.alerts else "no threshold tripped"), highlight=False)
    out.print(terminal(f"report: {result.folder}/report.md; {result.label_candidates} conversations to label in "
                       f"{result.folder}/candidates.jsonl"), highlight=False)
    if result.alerts and fail_on_alert:
        raise typer.Exit(1)
