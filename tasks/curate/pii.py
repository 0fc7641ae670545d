"""The PII stage: a contract's policy for each detector (e-mail, phone, payment card, IBAN, US SSN, IP address;
the detectors are tasks/records/pii_detect.py) applied to the records.

The policy acts on the corpus records themselves: a redacted value is replaced in the record, so the corpus
version and everything exported from it downstream (labeling, training) never carries it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from adapterops.refs import PiiResult
from adapterops.storage import write_json, write_parquet
from tasks.records.contract import Contract
from tasks.records.conversation import conversation_of, stored_columns
from tasks.records.pii_detect import DETECTORS, PiiPolicy, find_pii, redact
from tasks.records.quarantine import QUARANTINE_FIELDS, quarantine_row


@dataclass
class PiiScan:
    records: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def report(self, policy: PiiPolicy) -> list[dict]:
        return [{"detector": kind, "action": getattr(policy, kind), **self.counts.get(kind, {"found": 0, "records": 0})}
                for kind in DETECTORS]


def apply_policy(records: list[dict], policy: PiiPolicy) -> PiiScan:
    """Quarantine, redact or allow each record's PII as the policy says; counts findings per detector.

    A conversation (a record with `messages`) is scanned message by message, tool-call arguments included
    (their JSON string values, so a redacted argument stays valid JSON); its prompt and completion are
    copies of its last user and assistant messages and follow the redacted messages.
    """
    out = PiiScan(counts={kind: {"found": 0, "records": 0} for kind in DETECTORS})
    redacting = {kind for kind in DETECTORS if getattr(policy, kind) == "redact"}
    for record in records:
        conversation = _messages(record)
        columns = [c for c in policy.columns if conversation is None or c not in TEXT_COPIES]
        findings = {column: find_pii(record.get(column)) if isinstance(record.get(column), str) else []
                    for column in columns}
        spans = _conversation_spans(conversation) if conversation is not None else []
        every = [f for fs in findings.values() for f in fs] + [f for *_, fs in spans for f in fs]
        kinds = sorted({f.kind for f in every})
        for kind in kinds:
            out.counts[kind]["records"] += 1
            out.counts[kind]["found"] += sum(f.kind == kind for f in every)
        blocking = [k for k in kinds if getattr(policy, k) == "quarantine"]
        if blocking:
            shown = [f"{c}: {redact(record[c], fs)}" for c, fs in findings.items() if record.get(c)]
            shown += [f"{where}: {redact(text, fs)}" for where, text, _, fs in spans if fs]
            out.quarantine.append(quarantine_row(record["id"], record.get("input_file"), record.get("input_line"),
                                                 "pii", "pii: " + ", ".join(blocking), " | ".join(shown)))
            continue
        clean = dict(record)
        for column, fs in findings.items():
            if fs and redacting & {f.kind for f in fs}:
                clean[column] = redact(record[column], fs, redacting)
        if conversation is not None and any(fs for *_, fs in spans) and redacting & {f.kind for f in every}:
            clean.update(_redacted_conversation(record, conversation, spans, redacting))
        out.records.append(clean)
    return out


TEXT_COPIES = ("prompt", "completion")   # a conversation's copies of its last user and assistant messages


def _messages(record: dict) -> list | None:
    stored = record.get("messages")
    return json.loads(stored) if isinstance(stored, str) and stored else None


def _strings(value, path=()):
    """(path, text) for every string inside a JSON value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def _conversation_spans(messages: list) -> list[tuple]:
    """(where, text, locator, findings) for each message's content and each string inside tool-call arguments."""
    spans = []
    for number, message in enumerate(messages):
        role = message.get("role")
        if isinstance(message.get("content"), str):
            spans.append((f"message {number + 1} ({role})", message["content"], (number, None, None),
                          find_pii(message["content"])))
        for call_number, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except ValueError:
                continue                       # ingest quarantines arguments that are not JSON
            for path, text in _strings(arguments):
                spans.append((f"message {number + 1} {function.get('name')} arguments", text,
                              (number, call_number, path), find_pii(text)))
    return spans


def _redacted_conversation(record: dict, messages: list, spans: list, redacting: set[str]) -> dict:
    """The record's messages, prompt and completion with the redacted kinds replaced."""
    messages = json.loads(json.dumps(messages))
    arguments: dict = {}
    for _, text, (number, call_number, path), fs in spans:
        if not fs:
            continue
        if call_number is None:
            messages[number]["content"] = redact(text, fs, redacting)
            continue
        key = (number, call_number)
        if key not in arguments:
            arguments[key] = json.loads(messages[number]["tool_calls"][call_number]["function"]["arguments"])
        holder = arguments[key]
        for step in path[:-1]:
            holder = holder[step]
        if path:
            holder[path[-1]] = redact(text, fs, redacting)
        else:
            arguments[key] = redact(text, fs, redacting)
    for (number, call_number), value in arguments.items():
        messages[number]["tool_calls"][call_number]["function"]["arguments"] = json.dumps(value, ensure_ascii=False)
    redacted = {**record, "messages": json.dumps(messages, ensure_ascii=False, sort_keys=True)}
    columns = stored_columns(conversation_of(redacted))
    return {"messages": columns["messages"], "prompt": columns["prompt"], "completion": columns["completion"]}


# --- wrapper: reads and writes the stage's files ---------------------------------------------------

def pii_file(records_path: str, contract: Contract, stage_dir) -> PiiResult:
    """pii_clean.parquet (redacted), pii_quarantine.parquet and pii.json (counts) under stage_dir; the
    per-detector rows come back as `detectors` for the flow to show."""
    import pandas as pd

    stage_dir = Path(stage_dir)
    frame = pd.read_parquet(records_path)
    result = apply_policy(frame.to_dict("records"), contract.pii)
    report = result.report(contract.pii)
    write_parquet(pd.DataFrame(result.records, columns=list(frame.columns)), stage_dir / "pii_clean.parquet")
    write_parquet(pd.DataFrame(result.quarantine, columns=list(QUARANTINE_FIELDS)), stage_dir / "pii_quarantine.parquet")
    write_json({"contract": contract.name, "contract_version": contract.version, "detectors": report},
               stage_dir / "pii.json")
    return PiiResult(records=str(stage_dir / "pii_clean.parquet"), quarantine=str(stage_dir / "pii_quarantine.parquet"),
                     report=str(stage_dir / "pii.json"), input=len(frame), kept=len(result.records),
                     quarantined=len(result.quarantine),
                     redacted=sum(r["records"] for r in report if r["action"] == "redact"),
                     detectors=report, contract=contract.name, contract_version=contract.version)
