"""Find and read inputs (files, globs, folders, Hugging Face save_to_disk folders) into the ingest stage's files."""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

from adapterops.config import DEFAULT_SPLITS, Columns, InputsConfig
from adapterops.errors import AdapterOpsError
from adapterops.refs import IngestResult
from adapterops.storage import file_digest, write_parquet
from tasks.curate.ingest import (STORED_FIELDS, Ingested, file_shape, jsonl_objects, parse_csv, parse_jsonl_lines,
                                 parse_rows)
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
        folder, _, split = spec.rpartition("#")
        if split and not Path(spec).exists() and Path(folder).is_dir() and _is_hf_dataset(Path(folder)):
            found.append((spec, "hf"))                      # one split of a DatasetDict: folder#split
            continue
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


def read_input(path: str, fmt: str, columns: Columns, seen: set[str], inputs: InputsConfig | None = None) -> Ingested:
    """Parse one input of a known format; file-level problems are one AdapterOpsError naming the file.

    The file's shape (record format, id mode) is decided first, from its rows' keys or its schema."""
    notes: list[str] = []
    if fmt == "jsonl":
        with Path(path).open("rb") as handle:        # streamed twice: the pre-scan, then the rows
            shape = file_shape(jsonl_objects(handle), path, columns, inputs, notes)
        with Path(path).open("rb") as handle:        # a 50 MB line is one line, not the whole file
            result = parse_jsonl_lines(handle, path, columns, seen, shape=shape)
    elif fmt in ("csv", "tsv"):
        result = parse_csv(Path(path).read_bytes(), path, columns, seen, "\t" if fmt == "tsv" else ",", inputs=inputs)
    elif fmt == "parquet":
        names = _parquet_columns(path)
        shape = file_shape([dict.fromkeys(names, "x")] if names else [], path, columns, inputs, notes)
        result = parse_rows(_parquet_rows(path), path, columns, seen, shape=shape)
    else:
        result = Ingested()
        for name, dataset in _hf_splits(path):
            shape = file_shape([dict.fromkeys(dataset.column_names, "x")], name, columns, inputs, notes)
            part = parse_rows(dataset.to_list(), name, columns, seen, shape=shape)
            result.records += part.records
            result.quarantine += part.quarantine
            result.lines += part.lines
            result.record_format = part.record_format
    result.notes = notes + result.notes
    if result.lines == 0:
        raise AdapterOpsError(f"{path}: empty (no rows{' after the header' if fmt in ('csv', 'tsv') else ''}); "
                              f"remove it from the sources or re-export it.")
    result.check(path)
    return result


def _parquet_columns(path: str) -> list[str]:
    try:
        return list(parquet_reader(path).schema_arrow.names)
    except Exception as error:  # pyarrow raises several types for corrupt or truncated files
        raise AdapterOpsError(f"{path}: cannot be read as Parquet ({str(error).splitlines()[0]}); "
                              f"re-export the file.") from None


def _parquet_rows(path: str):
    """The file's rows as dicts, a record batch at a time (never the whole file in memory)."""
    try:
        for batch in parquet_reader(path).iter_batches(batch_size=BATCH_ROWS):
            yield from batch.to_pylist()
    except Exception as error:  # pyarrow raises several types for corrupt or truncated files
        raise AdapterOpsError(f"{path}: cannot be read as Parquet ({str(error).splitlines()[0]}); "
                              f"re-export the file.") from None


def _load_hf(path: str):
    from datasets import load_from_disk

    try:
        return load_from_disk(path)
    except Exception as error:
        raise AdapterOpsError(f"{path}: cannot be loaded as a Hugging Face dataset ({str(error).splitlines()[0]}); "
                              f"write it with Dataset.save_to_disk.") from None


def _hf_splits(path: str):
    """(name, Dataset) for a save_to_disk folder: the dataset, every split of a DatasetDict, or folder#split's one."""
    from datasets import Dataset

    folder, _, split = path.rpartition("#")
    if split and not Path(path).exists():
        loaded = _load_hf(folder)
        if isinstance(loaded, Dataset) or split not in loaded:
            raise AdapterOpsError(f"{path}: the dataset at {folder} has no split {split!r}; check `inputs.splits`.")
        return [(path, loaded[split])]
    loaded = _load_hf(path)
    if isinstance(loaded, Dataset):
        return [(path, loaded)]
    return [(f"{path}#{name}", loaded[name]) for name in sorted(loaded)]


def route_splits(sources: list[str], inputs: InputsConfig | None = None) -> tuple[list[str], list[str], list[str]]:
    """(training inputs, evaluation inputs, notes): each DatasetDict source's splits as `inputs.splits` maps them
    (`folder#split`); other sources are training inputs. By default `train` feeds the corpus, `test` and
    `validation` the evaluation set, and splits not named are skipped; the notes say which went where."""
    inputs = inputs or InputsConfig()
    train, evaluation, notes = [], [], []
    for spec in map(str, sources):
        folder = Path(spec)
        if not (folder.is_dir() and (folder / "dataset_dict.json").is_file()):
            train.append(spec)
            continue
        splits = _dict_splits(folder)
        roles = {split: inputs.splits.get(split, "skip") for split in splits}
        train += [f"{spec}#{s}" for s in splits if roles[s] == "train"]
        evaluation += [f"{spec}#{s}" for s in splits if roles[s] == "eval"]
        how = "inputs.splits" if inputs.splits != DEFAULT_SPLITS else "the default inputs.splits"
        notes.append(f"{spec}: splits " + ", ".join(f"{s} → {roles[s]}" for s in splits) + f" ({how})")
        if not any(roles[s] == "train" for s in splits):
            raise AdapterOpsError(f"{spec}: no split of this DatasetDict is mapped to train (it has {splits}); map "
                                  f"one in the config's `inputs.splits`, e.g. {{{splits[0]}: train}}.")
    return train, evaluation, notes


def _dict_splits(folder: Path) -> list[str]:
    import json

    try:
        return list(json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"])
    except (OSError, ValueError, KeyError, TypeError):
        raise AdapterOpsError(f"{folder}: dataset_dict.json cannot be read; write the folder with "
                              f"DatasetDict.save_to_disk.") from None


def _digest(path: str) -> str:
    folder, _, split = path.rpartition("#")
    target = Path(path) if Path(path).exists() or not split else Path(folder) / split
    if target.is_file():
        return file_digest(target)
    digest = hashlib.sha256()
    for item in sorted(p for p in target.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(target)}\0{file_digest(item)}\n".encode())
    return "sha256:" + digest.hexdigest()


def reason_counts(quarantine: list[dict]) -> str:
    """Quarantine rows counted by reason kind (the text before the first colon), most frequent first."""
    from collections import Counter

    counts = Counter(row["reason"].split(":", 1)[0] for row in quarantine)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def ingest_files(paths: list, columns: Columns, stage_dir, inputs: InputsConfig | None = None,
                 notes: list[str] | None = None) -> IngestResult:
    """Parse every input into records.parquet and quarantine.parquet under stage_dir; ids are unique across files."""
    import pandas as pd

    seen: set[str] = set()
    records, quarantine, files, rows = [], [], [], 0
    said = list(notes or [])
    for path, fmt in expand_inputs(paths):
        result = read_input(path, fmt, columns, seen, inputs)
        records += result.records
        quarantine += result.quarantine
        rows += result.lines
        for note in result.notes:       # said once per file, on the terminal and in the ingest table
            print(f"ingest: {path}: {note}", flush=True)
        said += [f"{path}: {note}" for note in result.notes]
        files.append({"path": path, "format": fmt, "records_format": result.record_format, "digest": _digest(path),
                      "lines": result.lines, "records": len(result.records), "quarantined": len(result.quarantine),
                      "reasons": reason_counts(result.quarantine), "notes": "; ".join(result.notes)})
    stage_dir = Path(stage_dir)
    write_parquet(pd.DataFrame(records, columns=[*STORED_FIELDS, "input_file", "input_line"]), stage_dir / "records.parquet")
    write_parquet(pd.DataFrame(quarantine, columns=list(QUARANTINE_FIELDS)), stage_dir / "quarantine.parquet")
    return IngestResult(records=str(stage_dir / "records.parquet"), quarantine=str(stage_dir / "quarantine.parquet"),
                        input=rows, kept=len(records), quarantined=len(quarantine), files=files, notes=said)
