"""Argilla datasets on disk, in the layout of the argilla SDK 2.8 (`Dataset.to_disk` / `Dataset.from_disk`).

A folder holds `.argilla/dataset.json` (the dataset model), `.argilla/settings.json` (fields, questions,
metadata properties) and `records.json` (one record per task: fields, metadata with the digests, and,
once annotated, each annotator's responses). Written as plain JSON so exporting needs no SDK and no
server; `rg.Dataset.from_disk(folder)` loads it into an Argilla server. Reading turns each record's
responses, one annotation per annotator, into the Label Studio task shape the rest of labeling reads.
"""

from __future__ import annotations

import json

SETTINGS_PATH = ".argilla/settings.json"
DATASET_PATH = ".argilla/dataset.json"
RECORDS_PATH = "records.json"
QUESTIONS = ("verdict", "corrected_completion", "note")
TEXT_METADATA = ("record_id", "record_digest", "corpus_pipeline", "corpus_digest")


def _property(kind: str, name: str, title: str, description: str | None = None, **settings) -> dict:
    return {"id": None, "inserted_at": None, "updated_at": None, "name": name, "title": title,
            "description": description, "dataset_id": None, "type": kind, "settings": {"type": kind, **settings}}


def argilla_settings(format_hint: str | None, guidelines: str) -> dict:
    """Fields prompt and completion; questions verdict (required), corrected_completion, note; the digests as metadata."""
    hint = f" Required format: {format_hint}" if format_hint else ""
    fields = [dict(_property("text", name, title, use_markdown=False), required=True)
              for name, title in (("prompt", "Prompt"), ("completion", "Completion"))]
    labels = [{"text": text, "value": value} for value, text in (
        ("accept", "accept: the completion is right"), ("correct", "correct: fix it below"),
        ("reject", "reject: the record does not belong (say why in the note)"))]
    questions = [
        dict(_property("label_selection", "verdict", "Verdict", "Is the completion right for the prompt?",
                       options=labels, visible_options=3), required=True),
        dict(_property("text", "corrected_completion", "Corrected completion",
                       "With verdict correct: the whole right completion (pre-filled with the current one)." + hint,
                       use_markdown=False), required=False),
        dict(_property("text", "note", "Note", "Why (required with verdict reject).", use_markdown=False),
             required=False)]
    metadata = [{"id": None, "inserted_at": None, "updated_at": None, "name": name, "title": name,
                 "visible_for_annotators": False, "dataset_id": None,
                 "settings": {"visible_for_annotators": False, "type": "terms", "values": None}}
                for name in TEXT_METADATA]
    metadata.append({"id": None, "inserted_at": None, "updated_at": None, "name": "corpus_version",
                     "title": "corpus_version", "visible_for_annotators": False, "dataset_id": None,
                     "settings": {"visible_for_annotators": False, "min": None, "max": None, "type": "integer"}})
    return {"guidelines": guidelines, "questions": questions, "fields": fields, "vectors": [], "metadata": metadata,
            "allow_extra_metadata": False, "distribution": {"strategy": "overlap", "min_submitted": 1},
            "mapping": None}


def argilla_dataset_model(name: str, guidelines: str) -> dict:
    """The dataset model; `from_disk` sets the workspace it is loaded into."""
    return {"id": None, "inserted_at": None, "updated_at": None, "name": name, "status": "draft",
            "guidelines": guidelines, "allow_extra_metadata": False, "distribution": None, "workspace_id": None,
            "last_activity_at": None}


def argilla_records(items: list[dict]) -> list[dict]:
    """One record per JSONL-shaped task (provenance + prompt + completion), the completion suggested as correction."""
    records = []
    for item in items:
        metadata = {name: str(item[name]) for name in TEXT_METADATA} | {"corpus_version": int(item["corpus_version"])}
        records.append({"id": str(item["record_id"]),
                        "fields": {"prompt": item.get("prompt") or "", "completion": item.get("completion") or ""},
                        "metadata": metadata,
                        "suggestions": {"corrected_completion": {"value": item.get("completion") or "", "score": None,
                                                                 "agent": "adapterops: the current completion"}},
                        "responses": {}, "vectors": {}, "status": "pending", "_server_id": None})
    return records


def argilla_files(items: list[dict], name: str, format_hint: str | None) -> dict[str, str]:
    """The folder's files (relative path → text) for these tasks."""
    guidelines = ("For each record choose a verdict: accept (the completion is right), correct (write the whole "
                  "right completion) or reject (the record does not belong; say why in the note).")
    return {DATASET_PATH: json.dumps(argilla_dataset_model(name, guidelines)),
            SETTINGS_PATH: json.dumps(argilla_settings(format_hint, guidelines)),
            RECORDS_PATH: json.dumps(argilla_records(items), ensure_ascii=False)}


# --- reading responses back ---------------------------------------------------------------------------

def is_argilla_records(items: list) -> bool:
    first = next((item for item in items if isinstance(item, dict)), None)
    return first is not None and (("fields" in first and ("responses" in first or "metadata" in first))
                                  or any(str(key).endswith(".responses") for key in first))


def tasks_from_argilla(records: list, file: str, lines: list[int]) -> list[dict]:
    """Label Studio-shaped tasks: data from the fields and metadata, one annotation per annotator.

    A response with status draft is not a decision yet and is left out; discarded counts as cancelled.
    The nested export (`records.json`, `dataset.records.to_json`) gives responses per question with the
    annotator's user id; the flattened one (`to_list(flatten=True)`) gives `verdict.responses` and
    `verdict.responses.users` lists.
    """
    tasks = []
    for record, line in zip(records, lines):
        record = record if isinstance(record, dict) else {}
        if "fields" in record:
            metadata, fields = record.get("metadata") or {}, record.get("fields") or {}
        else:                                               # flattened: fields and metadata at the top level
            metadata = fields = {k: v for k, v in record.items() if "." not in str(k)}
        by_user: dict[str, dict] = {}
        for question, response in _responses(record):
            if response.get("status") not in (None, "submitted", "discarded"):
                continue
            annotation = by_user.setdefault(str(response.get("user_id")), {
                "result": [], "was_cancelled": False, "completed_by": str(response.get("user_id")),
                "updated_at": response.get("updated_at")})
            annotation["was_cancelled"] |= response.get("status") == "discarded"
            value = response.get("value")
            if value in (None, "", []):
                continue
            if question == "verdict":
                annotation["result"].append({"from_name": "verdict", "to_name": "completion", "type": "choices",
                                             "value": {"choices": value if isinstance(value, list) else [value]}})
            else:
                annotation["result"].append({"from_name": question, "to_name": "completion", "type": "textarea",
                                             "value": {"text": [str(value)]}})
        where = f"record {record.get('id')}, line {line}" if record.get("id") is not None else f"line {line}"
        tasks.append({"data": dict(metadata) | {k: fields.get(k) for k in ("prompt", "completion")},
                      "annotations": list(by_user.values()),
                      "origin": {"file": file, "where": where, "format": "argilla"}})
    return tasks


def _responses(record: dict):
    """(question, response dict) pairs from the nested or the flattened export."""
    nested = record.get("responses")
    if isinstance(nested, dict):
        for question, responses in nested.items():
            for response in responses or []:
                if isinstance(response, dict) and question in QUESTIONS:
                    yield question, response
    for question in QUESTIONS:
        values = record.get(f"{question}.responses")
        if isinstance(values, list):
            users = record.get(f"{question}.responses.users") or [None] * len(values)
            statuses = record.get(f"{question}.responses.status") or [None] * len(values)
            for value, user, status in zip(values, users, statuses):
                yield question, {"value": value, "user_id": user, "status": status}
