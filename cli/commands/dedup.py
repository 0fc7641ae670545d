"""`adapterops dedup INPUT --out DIR`: exact and near-duplicate removal of a JSONL, Parquet or CSV file.

Parquet and CSV inputs are read in batches of rows and only compact sketches are kept between
passes, so memory stays bounded for large files; JSONL is parsed by Arrow a block at a time and
its kept rows are taken from what was parsed. Imports stay light (no pandas, Prefect or MLflow):
this module is imported by every `adapterops` command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from adapterops.config import DedupConfig, from_options
from adapterops.errors import AdapterOpsError

out = Console()
PROGRESS_FROM_ROWS = 50_000
PROGRESS_FROM_BYTES = 20 << 20
DEFAULTS = DedupConfig()   # the option defaults are the config's, and the config validates them: one place for both
OPTIONS = {"threshold": "--threshold", "num_perm": "--num-perm", "ngram": "--ngram", "keep": "--keep",
           "shingle": "--char", "source_priority": "--source-priority"}


def _help(name: str) -> str:
    return DedupConfig.model_fields[name].description


def expected_rows(path: Path) -> int | None:
    """Rows in the file when its metadata says so (Parquet), else None."""
    if path.suffix.lower() != ".parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def dedup(input: Path = typer.Argument(..., help="JSONL, Parquet or CSV file of records (Parquet and CSV are streamed)."),
          out_dir: Path = typer.Option(..., "--out", help="Folder for kept.parquet, duplicates.parquet and report.json."),
          threshold: float = typer.Option(DEFAULTS.threshold, help=_help("threshold")),
          num_perm: int = typer.Option(DEFAULTS.num_perm, help=_help("num_perm")),
          ngram: int = typer.Option(DEFAULTS.ngram, help=_help("ngram")),
          char: bool = typer.Option(DEFAULTS.shingle == "char", "--char", help="Character n-grams instead of words (short texts)."),
          keep: str = typer.Option(DEFAULTS.keep, help=_help("keep")),
          source_priority: list[str] = typer.Option([], "--source-priority",
                                                    help="With --keep source_priority: a source, most preferred first (repeat)."),
          workers: int = typer.Option(0, min=0, help="Threads for hashing; 0: one per available core. Same result either way."),
          id_column: str = typer.Option("id", help="Column with each record's unique id."),
          text_column: str = typer.Option("text", help="Column with the text to compare."),
          source_column: str = typer.Option("source", help="Column naming each record's source (per-source counts, --keep source_priority)."),
          previous: Optional[Path] = typer.Option(None, help="signatures/ folder of an earlier run: its records stay kept."),
          signatures: bool = typer.Option(False, "--signatures",
                                          help="Also write signatures/ (MinHash sketches), to pass as --previous next time.")) -> None:
    """Remove exact and near-duplicate records; one row per input record in duplicates.parquet."""
    if keep == "source_priority" and not source_priority:
        raise AdapterOpsError("--keep source_priority needs the sources in order: --source-priority A --source-priority B.")
    config = from_options(DedupConfig, {"threshold": threshold, "num_perm": num_perm, "ngram": ngram, "keep": keep,
                                        "shingle": "char" if char else "word", "source_priority": list(source_priority)},
                          OPTIONS)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tasks.dedup import finish_dedup, sketch_columns, sketch_file

    read = sketch_columns(input, (text_column,), id_column, source_column,
                          options={id_column: "--id-column", text_column: "--text-column"})
    if keep == "source_priority" and source_column not in read:
        raise AdapterOpsError(f"{input} has no column {source_column!r} for --keep source_priority; "
                              "name the source column with --source-column.")
    total = expected_rows(input)
    quiet = total < PROGRESS_FROM_ROWS if total is not None else input.stat().st_size < PROGRESS_FROM_BYTES
    with Progress(TextColumn("[bold]dedup"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task("sketch", total=total)
        current = sketch_file(input, config, (text_column,), workers or available_cores(), id_column, source_column,
                              lambda rows: progress.advance(task, rows))
    summary = finish_dedup(input, current, config, out_dir, str(previous) if previous else None, (text_column,),
                           id_column, signatures, "ids must be unique (pick another --id-column)")
    out.print(f"{summary.input} records: {summary.kept} kept, {summary.exact} exact and {summary.near} "
              f"near duplicates removed → {out_dir}")
