"""`adapterops train CONFIG [--resume]`: train on the newest approved corpus version, with a progress bar."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from adapterops.errors import AdapterOpsError
from adapterops.refs import CorpusRef

out = Console()


def approved_corpus(pipeline: str, version: int | None = None) -> CorpusRef:
    """The corpus reference training takes: the given version, else the newest approved one."""
    from tasks.corpus import corpus_ref, get_version, last_approved

    run = get_version(pipeline, version) if version is not None else last_approved(pipeline)
    if run is None:
        raise AdapterOpsError(f"Pipeline {pipeline!r} has no approved corpus version to train on: run "
                              "`adapterops run CONFIG` to curate one, then approve it with `adapterops corpus approve`.")
    return corpus_ref(pipeline, run.data.tags["corpus.digest"])


@contextmanager
def progress_bar(total_steps: int):
    """A rich progress bar fed by the training step callback: loss and real tokens/s."""
    columns = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TextColumn("{task.fields[speed]} tokens/s"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        bar = progress.add_task("train", total=total_steps, loss="-", speed="-")

        def on_step(step: int, metrics: dict) -> None:
            progress.update(bar, completed=step + 1, loss=f"{metrics['loss']:.4f}",
                            speed=f"{metrics['tokens_per_second']:,.0f}")

        yield on_step


def train(config: Path = typer.Argument(..., help="YAML config file, e.g. configs/demo.yaml."),
          resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of this config and corpus."),
          corpus_version: Optional[int] = typer.Option(None, "--corpus-version", help="Corpus version; default: the newest approved.")) -> None:
    """Train an adapter on an approved corpus version and register it (the recipe, tracked in MLflow)."""
    from adapterops.config import load_config
    from cli.common import prepare

    run_config = load_config(config)
    prepare(run_config)
    from adapterops.base_models import resolve_base_model
    from tasks.train import latest_checkpoint, train_adapter, train_run_dir, truncation_note

    corpus = approved_corpus(run_config.name, corpus_version)
    run_dir = train_run_dir(corpus)
    if resume and latest_checkpoint(run_dir / "checkpoints") is None:
        raise AdapterOpsError(f"No checkpoint to resume in {run_dir / 'checkpoints'}; run without --resume to start.")
    with progress_bar(run_config.train.max_steps) as on_step:
        adapter = train_adapter(run_config.recipe, corpus, resolve_base_model(run_config.recipe), run_dir,
                                model_name=run_config.release.model_name, approval=run_config.approval,
                                logged_config=run_config.model_dump(mode="json"), progress=on_step, resume=resume)
    table = Table(title=f"adapter {adapter.model_name} v{adapter.version}", show_header=False)
    for key in ("steps", "final_loss", "resumed_from_step", "truncated", "device", "adapter_bytes", "run_id"):
        table.add_row(key, str(getattr(adapter, key)))
    table.add_row("corpus", f"v{corpus.version} {corpus.digest[:23]}")
    table.add_row("checkpoints", str(run_dir / "checkpoints"))
    out.print(table)
    if note := truncation_note(adapter, run_config.train.max_length):
        out.print(f"[yellow]note:[/] {note}", highlight=False)
