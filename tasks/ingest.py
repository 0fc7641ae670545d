"""Read source records into one table; every line ends as a record or a quarantine row with a reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from adapterops.config import Columns

RECORD_FIELDS = ("id", "source", "timestamp", "prompt", "completion")
QUARANTINE_FIELDS = ("id", "input_file", "input_line", "stage", "reason", "raw")


@dataclass
class Ingested:
    records: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    lines: int = 0


def quarantine_row(record_id, input_file: str, line: int, stage: str, reason: str, raw: str) -> dict:
    return {"id": None if record_id is None else str(record_id), "input_file": input_file,
            "input_line": line, "stage": stage, "reason": reason, "raw": raw[:2000]}


def parse_jsonl(data: bytes, input_file: str, columns: Columns, seen_ids: set[str] | None = None) -> Ingested:
    """Parse JSONL bytes; malformed lines, non-objects, missing or repeated ids are quarantined."""
    seen = seen_ids if seen_ids is not None else set()
    out = Ingested()
    mapping = {name: getattr(columns, name) for name in RECORD_FIELDS}
    for number, raw_line in enumerate(data.splitlines(), start=1):
        raw = raw_line.decode("utf-8", errors="backslashreplace")
        if not raw.strip():
            continue
        out.lines += 1
        try:
            obj = json.loads(raw_line.decode("utf-8"))
        except UnicodeDecodeError:
            out.quarantine.append(quarantine_row(None, input_file, number, "ingest", "invalid_utf8", raw))
            continue
        except json.JSONDecodeError as error:
            out.quarantine.append(quarantine_row(None, input_file, number, "ingest", f"malformed_json: {error.msg}", raw))
            continue
        if not isinstance(obj, dict):
            out.quarantine.append(quarantine_row(None, input_file, number, "ingest", "not_an_object", raw))
            continue
        record_id = obj.get(mapping["id"])
        if record_id is None or str(record_id).strip() == "":
            out.quarantine.append(quarantine_row(None, input_file, number, "ingest", f"missing_field: {mapping['id']}", raw))
            continue
        record_id = str(record_id)
        if record_id in seen:
            out.quarantine.append(quarantine_row(record_id, input_file, number, "ingest", "duplicate_id", raw))
            continue
        seen.add(record_id)
        record = {name: _as_text(obj.get(column)) for name, column in mapping.items()}
        record.update(id=record_id, input_file=input_file, input_line=number)
        out.records.append(record)
    return out


def _as_text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


# --- Prefect wrapper: reads the files, writes Parquet, reports -----------------------------------

def ingest_files(paths: list, columns: Columns, stage_dir) -> dict:
    """Parse every file into records.parquet and quarantine.parquet under stage_dir."""
    from pathlib import Path

    import pandas as pd

    from adapterops.storage import file_digest, write_parquet

    seen: set[str] = set()
    records, quarantine, files, lines = [], [], [], 0
    for path in map(Path, paths):
        result = parse_jsonl(path.read_bytes(), str(path), columns, seen)
        records += result.records
        quarantine += result.quarantine
        lines += result.lines
        files.append({"path": str(path), "digest": file_digest(path), "lines": result.lines,
                      "records": len(result.records), "quarantined": len(result.quarantine)})
    stage_dir = Path(stage_dir)
    write_parquet(pd.DataFrame(records, columns=[*RECORD_FIELDS, "input_file", "input_line"]), stage_dir / "records.parquet")
    write_parquet(pd.DataFrame(quarantine, columns=list(QUARANTINE_FIELDS)), stage_dir / "quarantine.parquet")
    return {"records": str(stage_dir / "records.parquet"), "quarantine": str(stage_dir / "quarantine.parquet"),
            "input": lines, "kept": len(records), "quarantined": len(quarantine), "files": files}
