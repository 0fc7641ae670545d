"""Find and read inputs (files, globs, folders, Hugging Face save_to_disk folders) into the ingest stage's files."""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

from adapterops.config import Columns
from adapterops.errors import AdapterOpsError
from adapterops.refs import IngestResult
from adapterops.storage import file_digest, write_parquet
from tasks.curate.ingest import RECORD_FIELDS, Ingested, parse_csv, parse_jsonl_lines, parse_rows
from tasks.records.batches import BATCH_ROWS, FORMATS, parquet_reader
from tasks.records.quarantine import QUARANTINE_FIELDS

# A folder's .json files are label exports or metadata more often than records: only named ones are read.
FOLDER_FORMATS = {suffix: kind for suffix, kind in FORMATS.items() if suffix != ".json"}


def _is_hf_dataset(folder) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def expand_inputs(paths: list) -> list[tuple[str, str]]:
    """(path, format) for every input: files, globs, folders of files and Hugging Face save_to_disk folders."""
    found: list[tuple[str, str]] = []
    for spec in map(str, paths):
        matches = [Path(spec)] if Path(spec).exists() else sorted(Path(p) for p in glob.glob(spec))
        if not matches:
            raise AdapterOpsError(f"Input {spec} does not exist (and matches no file as a glob); check the path.")
        for path in matches:
            if path.is_dir():
                found += _expand_folder(path)
            elif path.suffix.lower() in FORMATS:
                found.append((str(path), FORMATS[path.suffix.lower()]))
            else:
                raise AdapterOpsError(f"{path}: unsupported format {path.suffix or '(no extension)'!r}; use .jsonl, "
                                      f".json (JSON Lines), .csv, .tsv or .parquet files, or a Hugging Face save_to_disk folder.")
    return found


def _expand_folder(folder) -> list[tuple[str, str]]:
    if _is_hf_dataset(folder):
        return [(str(folder), "hf")]
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_FORMATS
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise AdapterOpsError(f"{folder}: folder with no data (no .jsonl, .csv, .tsv or .parquet file, and not a "
                              f"Hugging Face save_to_disk folder); point the source at the data.")
    return [(str(p), FORMATS[p.suffix.lower()]) for p in files]


def read_input(path: str, fmt: str, columns: Columns, seen: set[str]) -> Ingested:
    """Parse one input of a known format; file-level problems are one AdapterOpsError naming the file."""
    if fmt == "jsonl":
        with Path(path).open("rb") as handle:        # streamed: a 50 MB line is one line, not the whole file
            result = parse_jsonl_lines(handle, path, columns, seen)
    elif fmt in ("csv", "tsv"):
        result = parse_csv(Path(path).read_bytes(), path, columns, seen, "\t" if fmt == "tsv" else ",")
    elif fmt == "parquet":
        result = parse_rows(_parquet_rows(path), path, columns, seen)
    else:
        result = Ingested()
        for name, rows in _hf_splits(path):
            part = parse_rows(rows, name, columns, seen)
            result.records += part.records
            result.quarantine += part.quarantine
            result.lines += part.lines
    if result.lines == 0:
        raise AdapterOpsError(f"{path}: empty (no rows{' after the header' if fmt in ('csv', 'tsv') else ''}); "
                              f"remove it from the sources or re-export it.")
    result.check(path)
    return result


def _parquet_rows(path: str):
    """The file's rows as dicts, a record batch at a time (never the whole file in memory)."""
    try:
        for batch in parquet_reader(path).iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()
    except Exception as error:  # pyarrow raises several types for corrupt or truncated files
        raise AdapterOpsError(f"{path}: cannot be read as Parquet ({str(error).splitlines()[0]}); "
                              f"re-export the file.") from None


def _hf_splits(path: str):
    from datasets import Dataset, load_from_disk

    try:
        loaded = load_from_disk(path)
    except Exception as error:
        raise AdapterOpsError(f"{path}: cannot be loaded as a Hugging Face dataset ({str(error).splitlines()[0]}); "
                              f"write it with Dataset.save_to_disk.") from None
    if isinstance(loaded, Dataset):
        return [(path, loaded.to_list())]
    return [(f"{path}#{split}", loaded[split].to_list()) for split in sorted(loaded)]


def _digest(path: str) -> str:
    target = Path(path)
    if target.is_file():
        return file_digest(target)
    digest = hashlib.sha256()
    for item in sorted(p for p in target.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(target)}\0{file_digest(item)}\n".encode())
    return "sha256:" + digest.hexdigest()


def ingest_files(paths: list, columns: Columns, stage_dir) -> IngestResult:
    """Parse every input into records.parquet and quarantine.parquet under stage_dir; ids are unique across files."""
    import pandas as pd

    seen: set[str] = set()
    records, quarantine, files, rows = [], [], [], 0
    for path, fmt in expand_inputs(paths):
        result = read_input(path, fmt, columns, seen)
        records += result.records
        quarantine += result.quarantine
        rows += result.lines
        files.append({"path": path, "format": fmt, "digest": _digest(path), "lines": result.lines,
                      "records": len(result.records), "quarantined": len(result.quarantine),
                      "notes": "; ".join(result.notes)})
    stage_dir = Path(stage_dir)
    write_parquet(pd.DataFrame(records, columns=[*RECORD_FIELDS, "input_file", "input_line"]), stage_dir / "records.parquet")
    write_parquet(pd.DataFrame(quarantine, columns=list(QUARANTINE_FIELDS)), stage_dir / "quarantine.parquet")
    return IngestResult(records=str(stage_dir / "records.parquet"), quarantine=str(stage_dir / "quarantine.parquet"),
                        input=rows, kept=len(records), quarantined=len(quarantine), files=files)
