"""`adapterops dedup INPUT --out DIR`: exact and near-duplicate removal of a JSONL, Parquet or CSV file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adapterops.errors import AdapterOpsError

out = Console()
PROGRESS_FROM_ROWS = 50_000
READERS = {".jsonl": lambda p: pd.read_json(p, lines=True, dtype=False), ".json": lambda p: pd.read_json(p, lines=True, dtype=False),
           ".parquet": pd.read_parquet, ".csv": lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)}


def read_records(path: Path, id_column: str, text_column: str) -> pd.DataFrame:
    """The input file as a frame with its id and text columns checked; the error says what to fix."""
    if not path.is_file():
        raise AdapterOpsError(f"{path} does not exist; pass a JSONL, Parquet or CSV file.")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise AdapterOpsError(f"{path}: unknown format {path.suffix!r}; use a .jsonl, .parquet or .csv file.")
    try:
        frame = reader(path)
    except Exception as error:  # the readers raise many types for a malformed file
        raise AdapterOpsError(f"{path}: could not be read as {path.suffix[1:]} ({error.__class__.__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); check the file's format.") from None
    for option, column in (("--id-column", id_column), ("--text-column", text_column)):
        if column not in frame.columns:
            raise AdapterOpsError(f"{path} has no column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
                                  f"name the right one with {option}.")
    if frame[id_column].astype(str).duplicated().any():
        first = frame[id_column].astype(str)[frame[id_column].astype(str).duplicated()].iloc[0]
        raise AdapterOpsError(f"{path}: id {first!r} appears more than once; ids must be unique (pick another --id-column).")
    return frame


def dedup(input: Path = typer.Argument(..., help="JSONL, Parquet or CSV file of records."),
          out_dir: Path = typer.Option(..., "--out", help="Folder for kept.parquet, duplicates.parquet and report.json."),
          threshold: float = typer.Option(0.8, min=0.01, max=0.99, help="Jaccard at or above which records are near-duplicates."),
          num_perm: int = typer.Option(128, min=16, max=1024, help="MinHash permutations."),
          ngram: int = typer.Option(5, min=1, max=16, help="Shingle size in words (characters with --char)."),
          char: bool = typer.Option(False, "--char", help="Character n-grams instead of words (short texts)."),
          keep: str = typer.Option("longest", help="Record each cluster keeps: longest, earliest or first."),
          workers: int = typer.Option(1, min=1, help="Threads for hashing."),
          id_column: str = typer.Option("id", help="Column with each record's unique id."),
          text_column: str = typer.Option("text", help="Column with the text to compare."),
          previous: Optional[Path] = typer.Option(None, help="signatures/ folder of an earlier run: its records stay kept.")) -> None:
    """Remove exact and near-duplicate records; one row per input record in duplicates.parquet."""
    from tasks.dedup import (DedupParams, concat_sketches, load_sketches, reusable_previous, sketch_in_shards,
                             write_outputs)

    if keep not in ("longest", "earliest", "first"):
        raise AdapterOpsError(f"--keep must be longest, earliest or first, not {keep!r}.")
    frame = read_records(input, id_column, text_column)
    frame = frame.assign(id=frame[id_column].astype(str)) if id_column != "id" else frame.assign(id=frame["id"].astype(str))
    params = DedupParams(threshold=threshold, num_perm=num_perm, ngram=ngram, keep=keep,
                         shingle="char" if char else "word")
    with Progress(TextColumn("[bold]dedup"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=len(frame) < PROGRESS_FROM_ROWS) as progress:
        task = progress.add_task("sketch", total=len(frame))
        current = sketch_in_shards(frame, params, (text_column,), workers, lambda rows: progress.advance(task, rows))
    anchors = reusable_previous(load_sketches(previous), current.ids.astype(str), num_perm) if previous else None
    sketches = concat_sketches([anchors, current]) if anchors is not None else current
    summary = write_outputs(frame, sketches, params, out_dir, (text_column,))
    out.print(f"{summary['input']} records: {summary['kept']} kept, {summary['exact']} exact and {summary['near']} "
              f"near duplicates removed → {out_dir}")
