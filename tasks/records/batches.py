"""A records file (Parquet, CSV, TSV or JSONL) read and filtered in bounded batches: the one reader
family of ingest, dedup and the dedup command.

Big inputs never sit in memory whole: Parquet is read a record batch at a time and CSV a chunk at a
time. JSONL is parsed by Arrow's multi-threaded JSON reader, a block of lines at a time, and held as
one Arrow table (its column types are only known after the whole file is seen), so the kept rows
are taken from it by position instead of reading the file again.
"""

from __future__ import annotations

import functools
import json
import mmap
import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from adapterops.errors import AdapterOpsError
from adapterops.storage import REMOVED, space_for, staging_path
from tasks.records.arrow_arrays import from_numpy

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# The formats of record files, by suffix (.json: JSON Lines too, as the dedup command has always read it).
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t"}
BATCH_ROWS = 50_000
JSONL_BLOCK_BYTES = 32 << 20


def file_format(path) -> str:
    """parquet, csv, tsv or jsonl by the file's suffix; the error names the formats that work."""
    path = Path(path)
    if not path.is_file():
        raise AdapterOpsError(f"{path} does not exist; pass a JSONL, Parquet or CSV file.")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise AdapterOpsError(f"{path}: unknown format {path.suffix!r}; use a .jsonl, .parquet, .csv or .tsv file.")
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
        if kind in SEPARATORS:
            import pandas as pd

            return list(pd.read_csv(path, dtype=str, nrows=0, sep=SEPARATORS[kind]).columns)
        return list(jsonl_table(path).column_names)
    except AdapterOpsError:
        raise
    except Exception as error:  # the readers raise many types for a malformed file
        raise _unreadable(path, error) from None


def parquet_reader(path):
    """A Parquet reader that streams column chunks (a buffer of 1 MiB), not whole row groups: a file
    written as one row group of a million rows would otherwise be decoded into memory whole."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path, buffer_size=1 << 20)


def jsonl_table(path) -> "pa.Table":
    """A JSONL file parsed once per version of it: columns, batches and the kept rows all come from this table."""
    stat = os.stat(path)
    return _parsed_jsonl(os.path.realpath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)
def _parsed_jsonl(path: str, mtime_ns: int, size: int) -> "pa.Table":
    return concat_blocks(list(jsonl_blocks(path))).combine_chunks()   # one chunk per column: take is 6x faster


def jsonl_blocks(path, block_bytes: int = JSONL_BLOCK_BYTES) -> Iterator["pa.Table"]:
    """The file's lines as Arrow tables, block_bytes of whole lines at a time (a longer line is one block).

    Each block goes through Arrow's multi-threaded JSON reader; a block it refuses (a malformed line,
    a column whose type changes between lines) is parsed line by line instead, which names the line.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    data = pa.py_buffer(mapped)
    block = None
    try:
        start = 0
        while start < len(mapped):
            stop = mapped.find(b"\n", min(start + block_bytes, len(mapped)) - 1) + 1 or len(mapped)
            block = data.slice(start, stop - start)
            try:
                table = pj.read_json(pa.BufferReader(block))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                table = _parsed_lines(block.to_pybytes(), path, mapped[:start].count(b"\n") + 1)
            yield table
            start = stop
    finally:
        del data, block    # the parsed tables own their memory: the mapping can close
        mapped.close()


def _parsed_lines(block: bytes, path, first_line: int) -> "pa.Table":
    """One block parsed with json.loads line by line; a column of mixed types becomes text (as str() writes it)."""
    import pyarrow as pa

    rows = []
    for number, line in enumerate(block.split(b"\n"), start=first_line):
        if not line.strip():
            continue
        try:
            row = json.loads(line.removeprefix(b"\xef\xbb\xbf") if number == 1 else line)
        except ValueError as error:    # JSONDecodeError and UnicodeDecodeError
            raise AdapterOpsError(f"{path}, line {number}: not valid JSON ({error}); fix or remove the line "
                                  "(a curation run's ingest step quarantines such lines instead).") from None
        if not isinstance(row, dict):
            raise AdapterOpsError(f"{path}, line {number}: a JSON {type(row).__name__}, not an object; each line must "
                                  "be one record ({\"id\": ..., \"text\": ...}).")
        rows.append(row)
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            columns[name] = pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())
    return pa.table(columns)


def concat_blocks(blocks: list) -> "pa.Table":
    """The blocks as one table: columns missing from a block are null there; a column typed differently
    in two blocks (numbers in one, text in another) becomes text."""
    import pyarrow as pa

    if not blocks:
        return pa.table({})
    try:
        return pa.concat_tables(blocks, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        types: dict[str, set] = {}
        for block in blocks:
            for field in block.schema:
                if not pa.types.is_null(field.type):
                    types.setdefault(field.name, set()).add(field.type)
        mixed = {name for name, found in types.items() if len(found) > 1}
        return pa.concat_tables([_with_text_columns(block, mixed) for block in blocks], promote_options="permissive")


def _with_text_columns(block, names: set) -> "pa.Table":
    import pyarrow as pa

    for name in names & set(block.column_names):
        column = block[name]
        try:
            text = column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = pa.array([v if v is None or isinstance(v, str) else str(v) for v in column.to_pylist()], pa.string())
        block = block.set_column(block.column_names.index(name), name, text)
    return block


def iter_frames(path, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of at most batch_rows rows, in file order (only `columns` if given)."""
    import pandas as pd

    kind = file_format(path)
    try:
        if kind == "parquet":
            for batch in parquet_reader(path).iter_batches(batch_size=batch_rows, columns=columns):
                yield batch.to_pandas()
            return
        if kind in SEPARATORS:
            with pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=batch_rows, usecols=columns,
                             sep=SEPARATORS[kind]) as chunks:
                yield from chunks
            return
        table = jsonl_table(path)
        table = table.select(columns) if columns is not None else table
        for start in range(0, table.num_rows, batch_rows):
            yield table.slice(start, batch_rows).to_pandas()
    except AdapterOpsError:
        raise
    except Exception as error:
        raise _unreadable(path, error) from None


def write_rows_with_ids(path, out_path, id_column: str, ids, batch_rows: int = BATCH_ROWS) -> int:
    """Write the rows of `path` whose id (as text) is in `ids` to Parquet at out_path, atomically; returns rows written."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(list(dict.fromkeys(map(str, ids))), type=pa.string())
    parts = (table.filter(pc.is_in(pc.cast(table[id_column], pa.string()), value_set=wanted))
             for table in arrow_batches(path, batch_rows=batch_rows))
    return _write_parts(path, parts, Path(out_path))


def write_rows(path, out_path, rows, batch_rows: int = BATCH_ROWS) -> int:
    """Write the rows of `path` at positions `rows` (ascending) to Parquet at out_path, atomically; returns rows written.

    A JSONL file's rows are taken from the table parsed for sketching; other formats are read again in batches.
    """
    return _write_parts(path, _taken(path, rows, None, batch_rows), Path(out_path))


def take_rows(path, rows, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS) -> "pa.Table":
    """The rows of `path` at positions `rows` (ascending), only `columns` if given, as one Arrow table."""
    import pyarrow as pa

    parts = list(_taken(path, rows, columns, batch_rows))
    return pa.concat_tables(parts) if parts else pa.table({})


def _taken(path, rows, columns, batch_rows: int):
    """Per batch of the file, the batch's rows at the wanted positions (all batches, so the schema comes along)."""
    import numpy as np

    rows = np.asarray(rows, dtype=np.int64)
    if file_format(path) == "jsonl":   # held in memory: one take
        table = jsonl_table(path)
        yield (table.select(columns) if columns is not None else table).take(from_numpy(rows))
        return
    start = 0
    for table in arrow_batches(path, columns, batch_rows):
        stop = start + table.num_rows
        lo, hi = np.searchsorted(rows, [start, stop])
        yield table.take(from_numpy(rows[lo:hi] - start))
        start = stop


def _write_parts(path, parts, out_path: Path) -> int:
    """Arrow tables of one schema written as one Parquet file, atomically (an empty file with the input's columns when none)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with space_for(out_path, Path(path).stat().st_size, REMOVED):   # a full disk: one line naming the file
        staging = staging_path(out_path)
        writer, written = None, 0
        try:
            try:
                for part in parts:
                    if writer is None:
                        writer = pq.ParquetWriter(staging, part.schema)
                    writer.write_table(part)
                    written += part.num_rows
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:   # no rows at all: an empty file with the input's columns
                pq.write_table(pa.table({name: pa.nulls(0, pa.string()) for name in column_names(path)}), staging)
            staging.replace(out_path)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise
    return written


def arrow_batches(path, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS) -> Iterator["pa.Table"]:
    """The file's rows as Arrow tables of at most batch_rows rows, in file order, all with one schema."""
    import pyarrow as pa

    kind = file_format(path)
    try:
        if kind == "parquet":
            for batch in parquet_reader(path).iter_batches(batch_size=batch_rows, columns=columns):
                yield pa.Table.from_batches([batch])
        elif kind in SEPARATORS:   # every column is text, so every chunk has the same schema
            for frame in iter_frames(path, columns, batch_rows=batch_rows):
                yield pa.Table.from_pandas(frame, preserve_index=False)
        else:
            table = jsonl_table(path)
            table = table.select(columns) if columns is not None else table
            for start in range(0, table.num_rows, batch_rows):
                yield table.slice(start, batch_rows)
    except AdapterOpsError:
        raise
    except Exception as error:
        raise _unreadable(path, error) from None
