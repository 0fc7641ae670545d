"""Read source rows into records; every row ends as a record or a quarantine row with a reason and its raw bytes.

Each file's shape (its record format: OpenAI chat, ShareGPT, Alpaca or prompt/completion; ids from a column or
content hashes) is decided from its rows' keys before any row is processed. Row-level problems (malformed JSON,
invalid UTF-8, NUL bytes, over-long lines, wrong types, missing or repeated ids, CSV quoting errors, a malformed
conversation: tasks/records/formats.py names the kinds) are quarantined; file-level problems (missing, empty,
unreadable, UTF-16, unrecognised format, an id column no row has) stop the run with one error that names the
file and the fix. Invariant: rows read = records + quarantined, per file.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import decimal
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from adapterops.config import Columns, InputsConfig
from adapterops.errors import AdapterOpsError
from tasks.records.conversation import CONVERSATION_FIELDS, one_turn, stored_columns
from tasks.records.formats import (Malformed, content_digest, conversation_from, describe, is_conversational_prompt,
                                   row_format)
from tasks.records.quarantine import quarantine_row

RECORD_FIELDS = ("id", "source", "timestamp", "prompt", "completion")
STORED_FIELDS = (*RECORD_FIELDS, *CONVERSATION_FIELDS)   # the columns of records.parquet, before its provenance
MAX_LINE_BYTES = 8 << 20          # a longer line is quarantined unparsed (it is no training example)
NUL = b"\x00"


@dataclass
class Ingested:
    records: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    lines: int = 0                # rows read: every one becomes a record or a quarantine row
    notes: list[str] = field(default_factory=list)
    record_format: str = ""       # the format the file's rows were read as (tasks.records.formats.describe)

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


@dataclass(frozen=True)
class FileShape:
    """What a whole file is, decided before any row is processed: its record format and how ids are found."""
    format: str = "prompt_completion"
    hash_ids: bool = False


def _row_keys(row) -> dict:
    return row if isinstance(row, dict) else {}


def file_shape(rows: Iterable, input_file: str, columns: Columns, inputs: InputsConfig | None = None,
               notes: list[str] | None = None) -> FileShape:
    """The file's format and id mode from its rows' keys (a CSV header or a Parquet schema is one row).

    Whole-file problems are one AdapterOpsError naming the fix: no recognised format, a chat file read as
    prompt/completion, an id column that no row has. A file mixing formats is said once in `notes`;
    its rows of the minority formats are quarantined as mixed_format.
    """
    inputs = inputs or InputsConfig()
    found: Counter = Counter()
    keys: Counter = Counter()
    has_id = False
    for row in rows:
        row = _row_keys(row)
        keys.update(row.keys())
        found[row_format(row, columns.prompt)] += 1
        has_id = has_id or (row.get(columns.id) is not None)
    recognised = {fmt: n for fmt, n in found.items() if fmt is not None}
    if inputs.format == "auto":
        if not recognised and keys:
            raise AdapterOpsError(
                f"{input_file}: unrecognised record format (its rows have {sorted(keys)[:10]}); use OpenAI chat "
                f"(`messages`), ShareGPT (`conversations`), Alpaca (`instruction`/`output`) or prompt/completion, or "
                f"map your columns in the config's `columns.prompt` and `columns.completion`.")
        fmt = max(sorted(recognised), key=recognised.get) if recognised else "prompt_completion"
        if len(recognised) > 1 and notes is not None:
            others = ", ".join(f"{n} {describe(f)}" for f, n in sorted(recognised.items()) if f != fmt)
            notes.append(f"mixes formats: {recognised[fmt]} rows are {describe(fmt)}, {others}; those are quarantined "
                         f"as mixed_format (split the file by format)")
    else:
        fmt = inputs.format
        if recognised and fmt not in recognised:
            seen = max(sorted(recognised), key=recognised.get)
            raise AdapterOpsError(
                f"{input_file}: read as {describe(fmt)} (inputs.format: {fmt}) but its rows are {describe(seen)}; "
                f"set `inputs.format: auto` (or {seen}) in the config.")
    if columns.id == "hash":
        return FileShape(fmt, hash_ids=True)
    if not has_id and keys:
        if columns.id != "id":
            raise AdapterOpsError(f"{input_file}: no row has the id column {columns.id!r} (columns.id); name the "
                                  f"column that holds ids, or set `columns.id: hash` to derive them from the content.")
        if notes is not None:
            notes.append("no row has an `id` column: ids are content hashes (columns.id: hash); name your id column "
                         "in `columns.id` to use it")
        return FileShape(fmt, hash_ids=True)
    return FileShape(fmt)


def _record_id(obj: dict, conversation, columns: Columns, shape: FileShape, seen: set[str]):
    """(id, problem): the row's id column, or its content hash (a repeated hash is an exact copy: -2, -3, ...)."""
    if shape.hash_ids:
        base = content_digest(conversation)
        record_id, n = base, 1
        while record_id in seen:
            n += 1
            record_id = f"{base}-{n}"
        return record_id, None
    id_column = columns.id
    record_id = obj.get(id_column)
    if isinstance(record_id, float) and record_id.is_integer():
        record_id = int(record_id)
    if record_id is None or (isinstance(record_id, float) and math.isnan(record_id)) or \
            (isinstance(record_id, str) and not record_id.strip()):
        return None, f"missing_field: {id_column}"
    if not isinstance(record_id, (str, int)) or isinstance(record_id, bool):
        return None, f"wrong_type: {id_column} is {type(record_id).__name__}, expected a string or integer"
    record_id = str(record_id)
    if "\x00" in record_id:
        return None, f"nul_byte: {id_column}"
    return record_id, None


def normalise_row(obj, number: int, input_file: str, columns: Columns, seen: set[str], raw, out: Ingested,
                  shape: FileShape | None = None) -> None:
    """Append `obj` to out.records as a record, or to out.quarantine with the reason it cannot be one."""
    shape = shape or FileShape()

    def reject(reason, record_id=None):
        out.quarantine.append(quarantine_row(record_id, input_file, number, "ingest", reason, raw))

    if not isinstance(obj, dict):
        return reject("not_an_object")
    row_fmt = row_format(obj, columns.prompt)
    if row_fmt is not None and row_fmt != shape.format:
        return reject(f"mixed_format: this row is {describe(row_fmt)}, the file is {describe(shape.format)}")
    record_id = None
    if not shape.hash_ids:
        record_id, problem = _record_id(obj, None, columns, shape, seen)
        if problem:
            return reject(problem)
    record = {}
    for name in ("source", "timestamp"):
        column = getattr(columns, name)
        record[name], problem = _text(obj.get(column), column)
        if problem:
            return reject(problem, record_id)
    if shape.format != "prompt_completion" or is_conversational_prompt(obj, columns.prompt):
        try:
            conversation = conversation_from(obj, shape.format, columns.prompt, columns.completion)
        except Malformed as problem:
            return reject(str(problem), record_id)
        record.update(stored_columns(conversation))
    else:
        for name in ("prompt", "completion"):
            column = getattr(columns, name)
            record[name], problem = _text(obj.get(column), column)
            if problem:
                return reject(problem, record_id)
        record.update(messages=None, tools=None)
        if shape.hash_ids and record["prompt"] is None:
            return reject(f"missing_field: {columns.prompt}")
        conversation = one_turn(record["prompt"] or "", record["completion"])
    if shape.hash_ids:
        record_id, _ = _record_id(obj, conversation, columns, shape, seen)
    if record_id in seen:
        return reject("duplicate_id", record_id)
    seen.add(record_id)
    out.records.append({"id": record_id, **{k: record[k] for k in STORED_FIELDS[1:]},
                        "input_file": input_file, "input_line": number})


def _refuse_utf16(head: bytes, input_file: str) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise AdapterOpsError(f"{input_file} is UTF-16 encoded; convert it to UTF-8 "
                              f"(iconv -f UTF-16 -t UTF-8 IN > OUT) and run again.")


def jsonl_objects(lines: Iterable[bytes]) -> Iterable:
    """The JSON value of every line that parses (the pre-scan that decides a file's shape; bad lines are skipped)."""
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\n").rstrip(b"\r")
        if number == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if not line.strip() or len(line) > MAX_LINE_BYTES or NUL in line:
            continue
        try:
            yield json.loads(line.decode("utf-8"))
        except Exception:   # quarantined with its reason by the real pass
            continue


def parse_jsonl_lines(lines: Iterable[bytes], input_file: str, columns: Columns, seen_ids: set[str] | None = None,
                      max_line_bytes: int = MAX_LINE_BYTES, shape: FileShape | None = None,
                      inputs: InputsConfig | None = None) -> Ingested:
    """Parse JSONL lines (bytes, newline optional); blank lines are skipped, every other line is one row.

    shape: the file's format and id mode, when already decided by a pre-scan (else the lines are scanned first).
    """
    seen = seen_ids if seen_ids is not None else set()
    out = Ingested()
    if shape is None:
        lines = list(lines)
        shape = file_shape(jsonl_objects(lines), input_file, columns, inputs, out.notes)
    out.record_format = describe(shape.format)
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
            normalise_row(obj, number, input_file, columns, seen, line, out, shape)
    return out


def parse_jsonl(data: bytes, input_file: str, columns: Columns, seen_ids: set[str] | None = None,
                max_line_bytes: int = MAX_LINE_BYTES, inputs: InputsConfig | None = None) -> Ingested:
    """Parse JSONL bytes; see parse_jsonl_lines. Lines split on \\n only, so line numbers match editors."""
    return parse_jsonl_lines(data.split(b"\n"), input_file, columns, seen_ids, max_line_bytes, inputs=inputs)


def parse_csv(data: bytes, input_file: str, columns: Columns, seen_ids: set[str] | None = None,
              delimiter: str = ",", inputs: InputsConfig | None = None) -> Ingested:
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
    header, shape, position = None, None, 0     # position: physical lines consumed so far
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
                    header = _csv_header(row, input_file)
                    # A JSON `messages` (or `conversations`) column makes it a chat file: decided by the header.
                    shape = file_shape([dict.fromkeys(header, "x")], input_file, columns, inputs, out.notes)
                    out.record_format = describe(shape.format)
                    continue
                _csv_row(row, header, start + 1, input_file, columns, seen, raw, out, shape)
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


def _csv_header(row: list[str], input_file: str) -> list[str]:
    header = [name.strip() for name in row]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise AdapterOpsError(f"{input_file}: the header repeats column(s) {repeated}; give every column its own name.")
    return header


def _csv_row(row, header, number, input_file, columns, seen, raw: str, out: Ingested, shape: FileShape) -> None:
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
    normalise_row(obj, number, input_file, columns, seen, raw_bytes, out, shape)


def parse_rows(rows: Iterable[dict], input_file: str, columns: Columns, seen_ids: set[str] | None = None,
               shape: FileShape | None = None, inputs: InputsConfig | None = None) -> Ingested:
    """Typed rows (Parquet, Hugging Face datasets); row numbers count from 1. shape: decided from the schema,
    else from the rows (then held in memory)."""
    seen = seen_ids if seen_ids is not None else set()
    out = Ingested()
    if shape is None:
        rows = list(rows)
        shape = file_shape(rows, input_file, columns, inputs, out.notes)
    out.record_format = describe(shape.format)
    for number, row in enumerate(rows, start=1):
        out.lines += 1
        normalise_row(row, number, input_file, columns, seen, json.dumps(row, ensure_ascii=False, default=str), out, shape)
    return out

