"""A records file (Parquet, CSV or JSONL) read and filtered in bounded batches.

Big inputs never sit in memory whole: Parquet is read a record batch at a time and CSV a chunk at a
time. JSONL is read whole (its column types are only known after the whole file is seen).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterator

import pandas as pd

from adapterops.errors import AdapterOpsError

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
BATCH_ROWS = 50_000


def file_format(path) -> str:
    """parquet, csv or jsonl by the file's suffix; the error names the formats that work."""
    path = Path(path)
    if not path.is_file():
        raise AdapterOpsError(f"{path} does not exist; pass a JSONL, Parquet or CSV file.")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise AdapterOpsError(f"{path}: unknown format {path.suffix!r}; use a .jsonl, .parquet or .csv file.")
    return kind


def _unreadable(path, error: Exception) -> AdapterOpsError:
    detail = str(error).splitlines()[0] if str(error) else ""
    return AdapterOpsError(f"{path}: could not be read as {Path(path).suffix[1:]} ({error.__class__.__name__}: "
                           f"{detail}); check the file's format.")


def column_names(path) -> list[str]:
    """The file's columns, read from its header (Parquet schema, CSV first line) or, for JSONL, its records."""
    kind = file_format(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        if kind == "csv":
            return list(pd.read_csv(path, dtype=str, nrows=0).columns)
        return list(_read_jsonl(path).columns)
    except AdapterOpsError:
        raise
    except Exception as error:  # the readers raise many types for a malformed file
        raise _unreadable(path, error) from None


def _parquet(path):
    """A Parquet reader that streams column chunks (a buffer of 1 MiB), not whole row groups: a file
    written as one row group of a million rows would otherwise be decoded into memory whole."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, buffer_size=1 << 20)


def _read_jsonl(path) -> pd.DataFrame:
    """A JSONL file parsed once per version of it: columns, batches and the kept rows all read it whole."""
    stat = os.stat(path)
    return _parsed_jsonl(os.path.realpath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)
def _parsed_jsonl(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)   # pandas 3 copy-on-write: callers cannot change it


def iter_frames(path, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of at most batch_rows rows, in file order (only `columns` if given)."""
    kind = file_format(path)
    try:
        if kind == "parquet":
            for batch in _parquet(path).iter_batches(batch_size=batch_rows, columns=columns):
                yield batch.to_pandas()
            return
        if kind == "csv":
            with pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=batch_rows, usecols=columns) as chunks:
                yield from chunks
            return
        frame = _read_jsonl(path)
        frame = frame[columns] if columns is not None else frame
        for start in range(0, len(frame), batch_rows):
            yield frame.iloc[start:start + batch_rows]
    except AdapterOpsError:
        raise
    except Exception as error:
        raise _unreadable(path, error) from None


def write_rows_with_ids(path, out_path, id_column: str, ids, batch_rows: int = BATCH_ROWS) -> int:
    """Write the rows of `path` whose id (as text) is in `ids` to Parquet at out_path, atomically; returns rows written."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from adapterops.storage import _staging, space_for

    out_path = Path(out_path)
    wanted = pa.array(pd.Index(ids).astype(str).unique(), type=pa.string())
    writer, written = None, 0
    with space_for(out_path, Path(path).stat().st_size):   # a full disk: one line naming the file
        staging = _staging(out_path)
        try:
            try:
                for table in _arrow_batches(path, batch_rows):
                    mask = pc.is_in(pc.cast(table[id_column], pa.string()), value_set=wanted)
                    part = table.filter(mask)
                    if writer is None:
                        writer = pq.ParquetWriter(staging, table.schema)
                    writer.write_table(part)
                    written += part.num_rows
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:   # no rows at all: an empty file with the input's columns
                pd.DataFrame(columns=column_names(path)).to_parquet(staging, index=False)
            staging.replace(out_path)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
    return written


def _arrow_batches(path, batch_rows: int):
    """Arrow tables of whole rows, in file order, all with one schema."""
    import pyarrow as pa

    kind = file_format(path)
    if kind == "parquet":
        for batch in _parquet(path).iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch])
    elif kind == "csv":   # every column is text, so every chunk has the same schema
        for frame in iter_frames(path, batch_rows=batch_rows):
            yield pa.Table.from_pandas(frame, preserve_index=False)
    else:
        table = pa.Table.from_pandas(_read_jsonl(path), preserve_index=False)
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows)
