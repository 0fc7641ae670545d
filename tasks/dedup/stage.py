"""The dedup stage on files: sketch a records file in Arrow batches, write kept.parquet,
duplicates.parquet, report.json and signatures/, and store or load sketches (no pickle).

The file stage (`dedup_file`), the sharded flow (flows/dedup.py) and `adapterops dedup` all drive
the same steps: sketch_file (or shards + concat) → finish_dedup (previous anchors → clusters → files).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from adapterops.config import DedupConfig
from adapterops.errors import AdapterOpsError
from adapterops.progress import Progress
from adapterops.refs import DedupResult
from adapterops.storage import REMOVED, space_for, staging_path, write_json
from tasks.dedup.clusters import (
    Sketches,
    add_anchors,
    as_text,
    cluster_columns,
    concat_sketches,
    dedup_records,
    empty_sketches,
    object_array,
    release_memory,
    sketch_table,
)
from tasks.dedup.lsh import choose_bands
from tasks.dedup.minhash import fold_to_32
from tasks.dedup.report import build_report, report_rows
from tasks.records.arrow_arrays import from_numpy, strings
from tasks.records.batches import BATCH_ROWS, arrow_batches, column_names, jsonl_table, take_rows, write_rows

# --- wrapper: reads and writes the stage's files ---------------------------------------------------

SKETCH_ARRAYS = ("text_keys", "lengths", "timestamps", "signatures", "sets", "set_offsets")
SHARD_ROWS = BATCH_ROWS
TEXT_COLUMNS = ("prompt", "completion")


def sketch_file(records_path, params: DedupConfig, text_columns: tuple[str, ...] = TEXT_COLUMNS, workers: int = 1,
                id_column: str = "id", source_column: str = "source", on_batch=None, batch_rows: int = SHARD_ROWS,
                options: dict[str, str] | None = None) -> Sketches:
    """Sketches of every record of the file, read as Arrow batches (only the sketches are kept); on_batch(rows) reports progress.

    options: the command-line option that names each column, for the error when one is missing.
    """
    parts = []
    columns = sketch_columns(records_path, text_columns, id_column, source_column, options)
    for table in arrow_batches(records_path, columns, batch_rows):
        parts.append(sketch_table(table, params, text_columns, workers, id_column, source_column))
        if on_batch:
            on_batch(table.num_rows)
    release_memory()
    return concat_sketches(parts) if parts else empty_sketches(params.num_perm)


def with_previous(current: Sketches, previous_signatures: str | None, num_perm: int,
                  hint: str = "quarantine duplicate ids at ingest first") -> Sketches:
    """add_anchors with a previous version's signatures folder (if one is given)."""
    previous = load_sketches(previous_signatures, mmap=True) if previous_signatures else None
    return add_anchors(current, previous, num_perm, hint)


def sketch_columns(records_path, text_columns: tuple[str, ...], id_column: str = "id",
                   source_column: str = "source", options: dict[str, str] | None = None) -> list[str]:
    """The columns sketching reads: id, texts, and source and timestamp when the file has them.

    options: the command-line option that names each column, for the error when one is missing.
    """
    present = column_names(records_path)
    missing = [c for c in (id_column, *text_columns) if c not in present]
    if missing:
        option = (options or {}).get(missing[0])
        fix = f"name the right one with {option}" if option else "name the id and text columns that the file has"
        raise AdapterOpsError(f"{records_path} has no column {missing[0]!r} (columns: {', '.join(map(str, present))}); "
                              f"{fix}.")
    optional = [c for c in (source_column, "timestamp") if c in present and c not in (id_column, *text_columns)]
    if tuple(text_columns) == TEXT_COLUMNS and "messages" in present:    # conversations: compared role-tagged
        optional.append("messages")
    return [id_column, *dict.fromkeys(text_columns), *optional]


def write_outputs(records_path, sketches: Sketches, params: DedupConfig, out_dir,
                  text_columns: tuple[str, ...] = TEXT_COLUMNS, id_column: str = "id", signatures: bool = True) -> DedupResult:
    """Cluster the sketches and write kept.parquet, duplicates.parquet, report.json and (with `signatures`) signatures/.

    The kept rows and the report's samples are taken by position from the records read for sketching
    (JSONL) or from a second pass over the file in batches (Parquet, CSV): its texts are never all
    in memory at once unless they were already.
    """
    out_dir = Path(out_dir)
    table = cluster_columns(sketches, params) if len(sketches.ids) else empty_columns()
    release_memory()
    write_duplicates(table, out_dir / "duplicates.parquet")
    sources = sketches.source_values()[~sketches.anchors()]
    if signatures:
        save_sketches(sketches, out_dir / "signatures")
    write_rows(records_path, out_dir / "kept.parquet", np.flatnonzero(table["kept"]))
    release_memory()
    shown = report_rows(table)
    texts = (dict(zip(table["id"][shown].tolist(), _sample_texts(take_rows(records_path, shown, list(dict.fromkeys(text_columns))),
                                                                 text_columns))) if len(shown) else {})
    bands_rows = list(choose_bands(params.threshold, params.num_perm))
    report = build_report(table, texts, sources if any(s is not None for s in sources) else None,
                          params.model_dump(exclude=set(params.RUNTIME_FIELDS)) | {"bands_rows": bands_rows})
    write_json(report, out_dir / "report.json")
    counts = report["counts"]
    return DedupResult(kept_records=str(out_dir / "kept.parquet"), duplicates=str(out_dir / "duplicates.parquet"),
                       report=str(out_dir / "report.json"), signatures=str(out_dir / "signatures") if signatures else None,
                       input=counts["input"], kept=counts["kept"], exact=counts["exact"], near=counts["near"],
                       bands_rows=bands_rows)


def empty_columns() -> dict[str, np.ndarray]:
    return {"id": np.zeros(0, str), "cluster_id": np.zeros(0, str), "kept": np.zeros(0, bool),
            "duplicate_of": np.zeros(0, object), "jaccard": np.zeros(0), "kind": np.zeros(0, object)}


def write_duplicates(table: dict[str, np.ndarray], path) -> None:
    """duplicates.parquet, atomically: one row per input record, in input order."""
    def text(name: str) -> pa.Array:
        return strings(table[name].tolist()).cast(pa.string())

    arrow = pa.table({"id": text("id"), "cluster_id": text("cluster_id"), "kept": from_numpy(table["kept"]),
                      "duplicate_of": text("duplicate_of"), "jaccard": from_numpy(table["jaccard"].astype(np.float64)),
                      "kind": text("kind")})
    staging = staging_path(path)
    pq.write_table(arrow, staging)
    staging.replace(path)


def _sample_texts(samples: pa.Table, text_columns: tuple[str, ...]) -> list[str]:
    """The compared text of each sampled record (text columns joined by a space), as Python strings."""
    columns = [["" if v is None else v for v in as_text(samples[c]).to_pylist()] for c in text_columns]
    return columns[0] if len(columns) == 1 else [" ".join(parts) for parts in zip(*columns)]


def dedup_file(records_path: str, params: DedupConfig, stage_dir, previous_signatures: str | None = None,
               workers: int = 1, batch_rows: int = SHARD_ROWS) -> DedupResult:
    """kept.parquet, duplicates.parquet (one row per input record), report.json and signatures/ under stage_dir.

    previous_signatures: the signatures/ folder of the last corpus version; its records that are not
    in this input are kept in favour of new duplicates of them. The records file is read batch_rows at a time.
    """
    total = pq.ParquetFile(records_path).metadata.num_rows if str(records_path).endswith(".parquet") else None
    progress = Progress("dedup: sketching records", total, "records", every_seconds=10)
    progress.update(0)
    current = sketch_file(records_path, params, TEXT_COLUMNS, workers, on_batch=progress.advance, batch_rows=batch_rows)
    return finish_dedup(records_path, current, params, stage_dir, previous_signatures)


def finish_dedup(records_path, current: Sketches, params: DedupConfig, out_dir, previous_signatures: str | None = None,
                 text_columns: tuple[str, ...] = TEXT_COLUMNS, id_column: str = "id", signatures: bool = True,
                 hint: str = "quarantine duplicate ids at ingest first") -> DedupResult:
    """The common tail of every way dedup runs (the file stage, the sharded flow, the command): the
    sketches of this run after the previous version's anchors → clusters → the output files."""
    anchored = with_previous(current, previous_signatures, params.num_perm, hint)
    return write_outputs(records_path, anchored, params, out_dir, text_columns, id_column, signatures)


def save_sketches(sketches: Sketches, folder) -> str:
    """signatures.npy and friends plus ids.parquet (id, source) in `folder` (no pickle), via a staging folder."""
    folder = Path(folder)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with space_for(folder, lambda: sum(getattr(sketches, name).nbytes for name in SKETCH_ARRAYS),
                       REMOVED.replace("file was", "folder is")):
            staging.mkdir(parents=True)
            for name in SKETCH_ARRAYS:
                np.save(staging / f"{name}.npy", getattr(sketches, name), allow_pickle=False)
            sources = [s if s is None or isinstance(s, str) else str(s) for s in sketches.source_values().tolist()]
            pq.write_table(pa.table({"id": strings(sketches.ids.astype(str).tolist()).cast(pa.string()),
                                     "source": strings(sources).cast(pa.string())}),
                           staging / "ids.parquet")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
    return str(folder)


def load_sketches(folder, mmap: bool = False) -> Sketches:
    """Sketches saved by save_sketches (arrays memory-mapped with mmap); the error says what to do when the folder is not one."""
    folder = Path(folder)
    missing = [n for n in (*SKETCH_ARRAYS, "ids") if not (folder / (n + (".parquet" if n == "ids" else ".npy"))).is_file()]
    if missing:
        raise AdapterOpsError(f"{folder} holds no stored dedup signatures (missing {', '.join(missing)}); "
                              "pass the signatures folder of an earlier dedup run or corpus version, or run without one.")
    arrays = {n: np.load(folder / f"{n}.npy", allow_pickle=False, mmap_mode="r" if mmap else None) for n in SKETCH_ARRAYS}
    names = pq.read_table(folder / "ids.parquet")
    ids = object_array(as_text(names["id"]))
    sources = (object_array(names["source"])
               if "source" in names.column_names else None)   # folders written before sources were stored have none
    if arrays["sets"].dtype != np.uint32:   # stored before sets were 32-bit: fold them
        arrays["sets"] = fold_to_32(np.asarray(arrays["sets"]))
    return Sketches(ids=ids, sources=sources, **arrays)


def warm_up() -> None:
    """Deduplicate a few generated records every way the command and curation do (JSONL and Parquet, word and
    character shingles, a previous version, text columns as Python strings), so that numba compiles and caches
    each kernel's signatures now: `make install` runs it, and the first real run loads them instead of compiling."""
    base = "the customer reports that the invoice for the annual plan lists twelve seats instead of nine"
    texts = [base, base.upper() + "!", base + " thanks", "Überweisung für die Rechnung", "", "short"] * 3
    with tempfile.TemporaryDirectory(prefix="adapterops-warm-up-") as folder:
        folder = Path(folder)
        for name in ("old", "new"):
            (folder / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"{name}{k}", "text": t, "source": "s"}) + "\n"
                                                          for k, t in enumerate(texts)), encoding="utf-8")
        pq.write_table(jsonl_table(folder / "new.jsonl"), folder / "new.parquet")
        for path, shingle in ((folder / "old.jsonl", "char"), (folder / "new.parquet", "word"), (folder / "old.jsonl", "word")):
            params = DedupConfig(shingle=shingle)
            summary = finish_dedup(path, sketch_file(path, params, ("text",), workers=2), params,
                                   folder / f"{path.suffix[1:]}-{shingle}", text_columns=("text",))
        finish_dedup(folder / "new.jsonl", sketch_file(folder / "new.jsonl", params, ("text",)), params,
                     folder / "incremental", summary.signatures, ("text",), signatures=False)
        cluster_columns(load_sketches(summary.signatures, mmap=True), params)   # read-only arrays (sharded flow)
    import pandas as pd

    dedup_records(pd.DataFrame({"id": [str(k) for k in range(len(texts))], "prompt": texts, "completion": "ok"}),
                  DedupConfig(), workers=2)

