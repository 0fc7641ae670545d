"""Annotated label files, every accepted format read into one shape: Label Studio's JSON-export tasks.

Each task is `{"data": {...}, "annotations": [...], "origin": {"file", "where", "format"}}`, where
`where` names the task in its file (its Label Studio task id and the line it starts on, or the JSONL
line), so a problem can be named. Accepted: Label Studio's JSON export (compact or pretty-printed),
Label Studio's JSON-MIN and CSV exports (one row per annotation, the task's data flattened into it:
rows of one task id become one task again), our JSONL (or the same items as a JSON list), JSONL of
Label Studio tasks, an Argilla dataset folder or its records.json. Anything else is refused with one
line that says which export to use. BOM and CRLF (a Windows editor's save) read like any other file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from adapterops.errors import AdapterOpsError
from tasks.label.argilla import is_argilla_records, tasks_from_argilla

DECISION_FIELDS = ("verdict", "corrected_completion", "note")
JSONL_ONLY = ("annotator", "time") + DECISION_FIELDS
JSON_EXPORT = "export the Label Studio project as JSON (Export → JSON, with all tasks)"
MIN_EXPORT_KEYS = {"annotation_id", "lead_time"}
MIN_ANNOTATION_KEYS = {"annotator", "annotation_id", "created_at", "updated_at", "lead_time", "id"}


def read_label_files(paths: list[str]) -> tuple[list[dict], list[dict]]:
    """Tasks from every file, in order, and one problem row per item that is not a task."""
    tasks, problems = [], []
    for path in map(Path, paths):
        found, bad = read_label_file(path)
        tasks += found
        problems += bad
    return tasks, problems


def read_label_file(path: Path) -> tuple[list[dict], list[dict]]:
    if path.is_dir():
        if (path / "records.json").is_file():
            path = path / "records.json"
        else:
            raise AdapterOpsError(f"labels {path} is a folder without records.json; pass a Label Studio JSON export, "
                                  f"a JSONL file, or an Argilla dataset folder written by `dataset.to_disk`.")
    if not path.is_file():
        raise AdapterOpsError(f"labels file {path} does not exist; pass an annotated export of `adapterops label export`.")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")       # a BOM is not content
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(text, str(path))
    if suffix == ".jsonl":
        return _read_jsonl(text, str(path))
    if suffix == ".json":
        return _read_json(text, str(path))
    raise AdapterOpsError(f"labels file {path}: use a Label Studio JSON export (.json) or JSONL (.jsonl).")


def _read_csv(text: str, file: str) -> tuple[list[dict], list[dict]]:
    """Label Studio's CSV export: the JSON-MIN rows as CSV (lists and objects JSON-encoded in a cell)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not MIN_EXPORT_KEYS <= set(reader.fieldnames or []):
        raise AdapterOpsError(f"labels file {file} is not a Label Studio CSV export: use a Label Studio JSON export "
                              f"(.json) or JSONL (.jsonl); {JSON_EXPORT}.")
    rows, lines, start = [], [], 2
    for row in reader:
        rows.append({k: _cell(v) for k, v in row.items()})
        lines.append(start)
        start = reader.line_num + 1
    return _from_min_rows(rows, lines, file, "label-studio-csv"), []


def _cell(value):
    if value in (None, ""):
        return None
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _read_json(text: str, file: str) -> tuple[list[dict], list[dict]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise AdapterOpsError(f"{file} is not JSON ({error.msg} at line {error.lineno}); "
                              f"{JSON_EXPORT}.") from None
    if isinstance(document, dict):
        document, lines = [document], [1]
    elif isinstance(document, list):
        lines = item_lines(text)
    else:
        raise AdapterOpsError(f"{file}: a Label Studio export is a JSON list of tasks; {JSON_EXPORT}.")
    return _items(document, lines, file, "json")


def _read_jsonl(text: str, file: str) -> tuple[list[dict], list[dict]]:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first.strip() in ("[", "{") or (first.strip().startswith("[") and len(lines) == 1):
        try:                          # a pretty-printed JSON document saved as .jsonl: read it whole
            return _read_json(text, file)
        except AdapterOpsError:
            pass
    items, numbers, problems = [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
            numbers.append(number)
        except json.JSONDecodeError as error:
            problems.append(problem(file, f"line {number}", f"malformed_json: {error.msg}"))
    tasks, more = _items(items, numbers, file, "jsonl")
    return tasks, problems + more


def _items(items: list, lines: list[int], file: str, kind: str) -> tuple[list[dict], list[dict]]:
    """Each item as a task; which kind of export the file is, is decided by its first object."""
    first = next((item for item in items if isinstance(item, dict)), {})
    if is_argilla_records(items):
        return tasks_from_argilla(items, file, lines), []
    if "data" not in first and MIN_EXPORT_KEYS & set(first):
        return _from_min_rows(items, lines, file, "label-studio-min"), []
    tasks, problems = [], []
    for item, line in zip(items, lines):
        if not isinstance(item, dict):
            problems.append(problem(file, f"line {line}", "not_an_object: each task is a JSON object"))
            continue
        if "data" in item:
            where = f"task {item['id']}, line {line}" if item.get("id") is not None else f"line {line}"
            tasks.append(dict(item, origin={"file": file, "where": where, "format": "label-studio"}))
        else:
            tasks.append(task_from_jsonl(item, file, f"line {line}"))
    return tasks, problems


def _from_min_rows(rows: list, lines: list[int], file: str, kind: str) -> list[dict]:
    """JSON-MIN / CSV rows (one per annotation; a task without one has an empty annotation_id) as tasks."""
    tasks: dict = {}
    for row, line in zip(rows, lines):
        if not isinstance(row, dict):
            continue
        key = row.get("id") if row.get("id") is not None else row.get("record_id", f"line {line}")
        data = {k: v for k, v in row.items() if k not in MIN_ANNOTATION_KEYS and k not in DECISION_FIELDS}
        task = tasks.setdefault(str(key), {"data": data, "annotations": [], "origin": {
            "file": file, "where": f"task {key}, line {line}" if row.get("id") is not None else f"line {line}",
            "format": kind}})
        if row.get("annotation_id") is not None:
            result = []
            for name in DECISION_FIELDS:
                values = _min_values(row.get(name))
                if values:
                    kind_of = "choices" if name == "verdict" else "text"
                    result.append({"from_name": name, "to_name": "completion",
                                   "type": "choices" if name == "verdict" else "textarea", "value": {kind_of: values}})
            task["annotations"].append({"id": row["annotation_id"], "result": result, "was_cancelled": False,
                                        "completed_by": row.get("annotator"),
                                        "updated_at": row.get("updated_at") or row.get("created_at")})
    return list(tasks.values())


def _min_values(value) -> list[str]:
    """A control's value in a JSON-MIN row: a string, a list, or {"choices": [...]} / {"text": [...]}."""
    if isinstance(value, dict):
        value = value.get("choices") or value.get("text") or []
    if value in (None, ""):
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def task_from_jsonl(item: dict, file: str, where: str) -> dict:
    """One of our JSONL items (provenance, texts and the decision fields at the top level) as a task."""
    result = []
    if item.get("verdict") not in (None, ""):
        result.append({"from_name": "verdict", "to_name": "completion", "type": "choices",
                       "value": {"choices": [str(item["verdict"])]}})
    for name in ("corrected_completion", "note"):
        if item.get(name) not in (None, ""):
            result.append({"from_name": name, "to_name": "completion", "type": "textarea",
                           "value": {"text": [str(item[name])]}})
    annotations = [{"result": result, "was_cancelled": False, "completed_by": item.get("annotator"),
                    "updated_at": item.get("time")}] if result else []
    data = {k: v for k, v in item.items() if k not in JSONL_ONLY}
    return {"data": data, "annotations": annotations, "origin": {"file": file, "where": where, "format": "jsonl"}}


def item_lines(text: str) -> list[int]:
    """The line each top-level item of a JSON list starts on (1 for a one-line file)."""
    decoder, lines = json.JSONDecoder(), []
    at = text.index("[") + 1
    while True:
        while at < len(text) and text[at] in " \t\r\n,":
            at += 1
        if at >= len(text) or text[at] == "]":
            return lines
        lines.append(text.count("\n", 0, at) + 1)
        _, at = decoder.raw_decode(text, at)


def problem(file: str, where: str, detail: str, record_id: str = "") -> dict:
    return {"record_id": record_id, "file": file, "where": where, "outcome": detail.split(":")[0], "detail": detail}


def normal_verdict(value) -> str:
    """A verdict matched case- and whitespace-insensitively: '  Accept ' is accept."""
    return " ".join(str(value).split()).lower()


def verdict_of(annotation: dict) -> str | None:
    for region in annotation.get("result") or []:
        choices = (region.get("value") or {}).get("choices")
        if region.get("from_name") == "verdict" and choices:
            return normal_verdict(choices[0])
    return None


def edited_in_place(tasks: list[dict], frame: pd.DataFrame, digest_of) -> tuple[list[dict], list[dict]]:
    """Tasks whose prompt or completion was edited in the file under verdict accept, taken out and named.

    Accept keeps the stored record as it is, so an edit there would be lost without a word; the annotator
    meant a correction. Only a record unchanged since its export is compared (a changed one is stale).
    """
    by_id = {str(r["id"]): r for r in frame.to_dict("records")}
    kept, problems = [], []
    for task in tasks:
        data, origin = task.get("data") or {}, task.get("origin") or {}
        record = by_id.get(str(data.get("record_id")))
        verdicts = {verdict_of(a) for a in task.get("annotations") or [] if not a.get("was_cancelled")}
        if (origin.get("format") == "jsonl" and record is not None and "accept" in verdicts
                and data.get("record_digest") == digest_of(record)):
            edited = [k for k in ("prompt", "completion") if k in data and data[k] != (record.get(k) or "")]
            if edited:
                problems.append(problem(origin.get("file", ""), origin.get("where", ""),
                                        f"edited_in_place: {' and '.join(edited)} changed under verdict accept, "
                                        "which keeps the record as it is; to change the completion use verdict "
                                        "correct with corrected_completion", str(data.get("record_id"))))
                continue
        kept.append(task)
    return kept, problems
