"""Read source rows into records; every row ends as a record or a quarantine row with a reason and its raw bytes.

Row-level problems (malformed JSON, invalid UTF-8, NUL bytes, over-long lines, wrong types, missing or repeated
ids, CSV quoting errors) are quarantined; file-level problems (missing, empty, unreadable, UTF-16, no id column)
stop the run with an error that names the file. Invariant: rows read = records + quarantined, per file.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import decimal
import json
import math
from dataclasses import dataclass, field
from typing import Iterable

from adapterops.config import Columns
from adapterops.errors import AdapterOpsError
from tasks.records.quarantine import quarantine_row

RECORD_FIELDS = ("id", "source", "timestamp", "prompt", "completion")
MAX_LINE_BYTES = 8 << 20          # a longer line is quarantined unparsed (it is no training example)
NUL = b"\x00"


@dataclass
class Ingested:
    records: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    lines: int = 0                # rows read: every one becomes a record or a quarantine row
    notes: list[str] = field(default_factory=list)

    def check(self, input_file: str) -> None:
        if self.lines != len(self.records) + len(self.quarantine):
            raise AdapterOpsError(f"{input_file}: {self.lines} rows read but {len(self.records)} records + "
                                  f"{len(self.quarantine)} quarantined; nothing was written. Please report this.")


def _text(value, column: str) -> tuple[str | None, str | None]:
    """(text, problem): strings pass, numbers become text, missing is None; objects, lists, booleans are wrong."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, None
    if isinstance(value, str):
        return (None, f"nul_byte: {column}") if "\x00" in value else (value, None)
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return str(value), None
    if isinstance(value, (datetime.date, datetime.time)):      # typed Parquet / Arrow timestamps
        return value.isoformat(), None
    kind = {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), type(value).__name__)
    return None, f"wrong_type: {column} is {kind}, expected text"


def normalise_row(obj, number: int, input_file: str, columns: Columns, seen: set[str], raw, out: Ingested) -> None:
    """Append `obj` to out.records as a record, or to out.quarantine with the reason it cannot be one."""
    def reject(reason, record_id=None):
        out.quarantine.append(quarantine_row(record_id, input_file, number, "ingest", reason, raw))

    if not isinstance(obj, dict):
        return reject("not_an_object")
    id_column = columns.id
    record_id = obj.get(id_column)
    if isinstance(record_id, float) and record_id.is_integer():
        record_id = int(record_id)
    if record_id is None or (isinstance(record_id, str) and not record_id.strip()):
        return reject(f"missing_field: {id_column}")
    if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
        return reject(f"wrong_type: {id_column} is {type(record_id).__name__}, expected a string or integer")
    record_id = str(record_id)
    if "\x00" in record_id:
        return reject(f"nul_byte: {id_column}")
    record = {"id": record_id}
    for name in RECORD_FIELDS[1:]:
        column = getattr(columns, name)
        record[name], problem = _text(obj.get(column), column)
        if problem:
            return reject(problem, record_id)
    if record_id in seen:
        return reject("duplicate_id", record_id)
    seen.add(record_id)
    record.update(input_file=input_file, input_line=number)
    out.records.append(record)


def _refuse_utf16(head: bytes, input_file: str) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AdapterOpsError(f"{input_file} is UTF-16 encoded; convert it to UTF-8 "
                              f"(iconv -f UTF-16 -t UTF-8 IN > OUT) and run again.")


def parse_jsonl_lines(lines: Iterable[bytes], input_file: str, columns: Columns, seen_ids: set[str] | None = None,
                      max_line_bytes: int = MAX_LINE_BYTES) -> Ingested:
    """Parse JSONL lines (bytes, newline optional); blank lines are skipped, every other line is one row."""
    seen = seen_ids if seen_ids is not None else set()
    out = Ingested()
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\n").rstrip(b"\r")
        if number == 1:
            _refuse_utf16(line, input_file)
            if line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
                out.notes.append("UTF-8 byte-order mark at the start removed")
        if not line.strip():
            continue
        out.lines += 1

        def reject(reason):
            out.quarantine.append(quarantine_row(None, input_file, number, "ingest", reason, line))

        if len(line) > max_line_bytes:
            reject(f"line_too_long: {len(line)} bytes, limit {max_line_bytes}")
        elif b"\x00" in line:
            reject(f"nul_byte: at byte {line.index(NUL)}")
        elif line.startswith(codecs.BOM_UTF8):
            reject("bom_inside_file: a byte-order mark starts this line (files concatenated?)")
        else:
            try:
                obj = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as error:
                reject(f"invalid_utf8: at byte {error.start}")
                continue
            except json.JSONDecodeError as error:
                reject(f"malformed_json: {error.msg} at column {error.colno}")
                continue
            except RecursionError:
                reject("malformed_json: nested too deeply to parse")
                continue
            except Exception as error:   # any other parser failure (an integer of 5,000 digits, no memory) is this row's
                reject(f"unparseable: {type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}")
                continue
            normalise_row(obj, number, input_file, columns, seen, line, out)
    return out


def parse_jsonl(data: bytes, input_file: str, columns: Columns, seen_ids: set[str] | None = None,
                max_line_bytes: int = MAX_LINE_BYTES) -> Ingested:
    """Parse JSONL bytes; see parse_jsonl_lines. Lines split on \\n only, so line numbers match editors."""
    return parse_jsonl_lines(data.split(b"\n"), input_file, columns, seen_ids, max_line_bytes)


def parse_csv(data: bytes, input_file: str, columns: Columns, seen_ids: set[str] | None = None,
              delimiter: str = ",") -> Ingested:
    """Parse CSV bytes with a header row; quoting errors, field-count mismatches and bad bytes are quarantined."""
    seen = seen_ids if seen_ids is not None else set()
    out = Ingested()
    _refuse_utf16(data, input_file)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        out.notes.append("UTF-8 byte-order mark at the start removed")
    text = data.decode("utf-8", errors="surrogateescape")
    physical = [part + "\n" for part in text.split("\n")]
    physical[-1] = physical[-1][:-1]
    if not physical[-1]:
        physical.pop()
    header, position = None, 0                  # position: physical lines consumed so far
    while position < len(physical):
        lines = (physical[i] for i in range(position, len(physical)))   # no copy: restarts stay cheap
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        base, start = position, position
        try:
            for row in reader:
                start, position = position, base + reader.line_num
                raw = "".join(physical[start:position])
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue                    # a blank line
                if header is None:
                    header = _csv_header(row, input_file, columns)
                    continue
                _csv_row(row, header, start + 1, input_file, columns, seen, raw, out)
        except csv.Error as error:
            if header is None:
                raise AdapterOpsError(f"{input_file}: the header (line {position + 1}) cannot be parsed as CSV "
                                      f"({error}); fix its quoting.") from None
            # Quarantine only the row's first line and resume after it: a stray quote costs one line, not the file.
            out.lines += 1
            reason = "line_too_long" if "field larger" in str(error) else "csv_quoting"
            out.quarantine.append(quarantine_row(None, input_file, position + 1, "ingest", f"{reason}: {error}",
                                                 physical[position].encode("utf-8", "surrogateescape")))
            position += 1
            continue
        break
    return out


def _csv_header(row: list[str], input_file: str, columns: Columns) -> list[str]:
    header = [name.strip() for name in row]
    if columns.id not in header:
        raise AdapterOpsError(f"{input_file}: the header has no id column {columns.id!r} (it has {header[:8]}); "
                              f"name the id column in the config's `columns.id`.")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise AdapterOpsError(f"{input_file}: the header repeats column(s) {repeated}; give every column its own name.")
    return header


def _csv_row(row, header, number, input_file, columns, seen, raw: str, out: Ingested) -> None:
    out.lines += 1
    raw_bytes = raw.encode("utf-8", "surrogateescape")
    if len(row) != len(header):
        out.quarantine.append(quarantine_row(None, input_file, number, "ingest",
                                             f"csv_field_count: expected {len(header)} fields, got {len(row)}", raw_bytes))
        return
    if any("\udc80" <= c <= "\udcff" for value in row for c in value):
        out.quarantine.append(quarantine_row(None, input_file, number, "ingest", "invalid_utf8", raw_bytes))
        return
    obj = {name: (value if value != "" else None) for name, value in zip(header, row)}
    normalise_row(obj, number, input_file, columns, seen, raw_bytes, out)


def parse_rows(rows: Iterable[dict], input_file: str, columns: Columns, seen_ids: set[str] | None = None) -> Ingested:
    """Typed rows (Parquet, Hugging Face datasets); row numbers count from 1."""
    seen = seen_ids if seen_ids is not None else set()
    out = Ingested()
    for number, row in enumerate(rows, start=1):
        out.lines += 1
        normalise_row(row, number, input_file, columns, seen, json.dumps(row, ensure_ascii=False, default=str), out)
    return out

