"""What production sees, recorded: sampled requests and answers (and callers' feedback) PII-redacted by the
project's detectors and written by a background thread to append-only Parquet files under the traffic store.

A request only hands its pieces to a bounded queue (no redaction, no I/O on its path); when the queue is full,
the disk is full or the store is gone, records are dropped, counted in /metrics and said once in the log.
Layout: FOLDER/records/date=YYYY-MM-DD/HHMMSS-PID-SEQ.parquet and FOLDER/feedback/date=.../...; every write is
a new file (written aside, then renamed), so a file is never changed once it exists; days older than
serve.record.retention_days are deleted.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from adapterops.config import RecordConfig
from adapterops.faults import write_fault
from tasks.records.conversation import Conversation, Message, ToolCall, stored_columns
from tasks.records.pii_detect import find_pii, redact

log = logging.getLogger("adapterops.serve.recording")

RECORDS, FEEDBACK = "records", "feedback"
WRITE_POINT = "traffic-write"       # adapterops/faults.py: ADAPTEROPS_WRITE_FAILS_AT=traffic-write
RECORD_COLUMNS = ("id", "choice", "time", "endpoint", "model", "model_name", "version", "alias", "key", "messages",
                  "tools", "prompt", "completion", "tool_calls", "finish_reason", "latency_seconds", "prompt_tokens",
                  "completion_tokens", "stream", "redacted", "pii_leak")
FEEDBACK_COLUMNS = ("id", "response_id", "time", "key", "verdict", "corrected_answer", "note", "redacted")
_STOP = object()


def traffic_folder(settings: RecordConfig) -> Path:
    """The traffic store: serve.record.folder, or ADAPTEROPS_HOME/traffic."""
    if settings.folder:
        return Path(settings.folder)
    from adapterops.workspace import resolve_workspace

    return resolve_workspace().traffic_dir


class Sampler:
    """Systematic sampling: request k is recorded when floor(k * rate) moves, so the share is exact, not random."""

    def __init__(self, rate: float):
        self.rate, self.seen, self._lock = rate, 0, threading.Lock()

    def take(self) -> bool:
        with self._lock:
            before, self.seen = self.seen, self.seen + 1
            return int(self.seen * self.rate) > int(before * self.rate)


def _masked(text: str | None) -> tuple[str | None, int]:
    if not text:
        return text, 0
    findings = find_pii(text)
    return (redact(text, findings) if findings else text), len(findings)


def redacted_conversation(messages: list[dict], answer: str, calls: list[dict], tools: list[dict] | None
                          ) -> tuple[dict, int]:
    """The stored columns (tasks/records/conversation.py, as the corpus stores them) of the request's messages and
    the answer as the last assistant turn, every message and tool argument PII-redacted; with the spans replaced."""
    count = 0

    def clean(text):
        nonlocal count
        masked, found = _masked(text)
        count += found
        return masked

    rows = []
    for m in messages:
        role = "system" if m["role"] == "developer" else m["role"]
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        rows.append(Message(role=role, content=clean(content),
                            tool_calls=tuple(ToolCall(id=c["id"], name=c["function"]["name"],
                                                      arguments=clean(c["function"]["arguments"]))
                                             for c in m.get("tool_calls") or ()),
                            tool_call_id=m.get("tool_call_id")))
    rows.append(Message(role="assistant", content=clean(answer),
                        tool_calls=tuple(ToolCall(id=c["id"], name=c["function"]["name"],
                                                  arguments=clean(c["function"]["arguments"])) for c in calls)))
    conversation = Conversation(messages=tuple(rows), tools=tuple(tools or ()))
    return stored_columns(conversation), count


def leaked(messages: list[dict], answer: str, calls: list[dict]) -> bool:
    """PII in the answer (or its tool arguments) that the request did not hold: the pii_leak scorer's rule
    (tasks/evaluate/scorers.py), judged before redaction, which would hide it."""
    given = json.dumps(messages, ensure_ascii=False)
    said = {given[f.start:f.end].casefold() for f in find_pii(given)}
    text = " ".join([answer or ""] + [c["function"]["arguments"] for c in calls])
    return any(text[f.start:f.end].casefold() not in said for f in find_pii(text))


def record_rows(pending: dict) -> list[dict]:
    """The stored rows (RECORD_COLUMNS) of one answered request, redacted: one per choice."""
    rows = []
    for choice in pending["choices"]:
        messages = pending["messages"] if pending["endpoint"] == "chat" else \
            [{"role": "user", "content": pending["prompts"][choice["prompt"]]}]
        leak = leaked(messages, choice["content"], choice["calls"])
        columns, count = redacted_conversation(messages, choice["content"], choice["calls"], pending.get("tools"))
        calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in choice["calls"]]
        masked_calls, found = _masked(json.dumps(calls, ensure_ascii=False)) if calls else (None, 0)
        rows.append({"id": pending["id"], "choice": choice["index"], "time": pending["time"],
                     "endpoint": pending["endpoint"], "model": pending["model"], "model_name": pending["model_name"],
                     "version": pending["version"], "alias": pending["alias"], "key": pending["key"],
                     "messages": columns["messages"], "tools": columns["tools"], "prompt": columns["prompt"],
                     "completion": columns["completion"], "tool_calls": masked_calls,
                     "finish_reason": choice["finish_reason"], "latency_seconds": pending["latency_seconds"],
                     "prompt_tokens": pending["prompt_tokens"], "completion_tokens": pending["completion_tokens"],
                     "stream": pending["stream"], "redacted": count + found, "pii_leak": leak})
    return rows


def feedback_row(pending: dict) -> dict:
    corrected, a = _masked(pending.get("corrected_answer"))
    note, b = _masked(pending.get("note"))
    return {"id": pending["id"], "response_id": pending["response_id"], "time": pending["time"], "key": pending["key"],
            "verdict": pending["verdict"], "corrected_answer": corrected, "note": note, "redacted": a + b}


def write_part(rows: list[dict], folder: Path, columns: tuple[str, ...], sequence: int) -> Path:
    """A new Parquet file of rows under folder/date=DAY/ (written aside, then renamed: readers never see half)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    now = datetime.now(timezone.utc)
    day = folder / f"date={now:%Y-%m-%d}"
    day.mkdir(parents=True, exist_ok=True)
    path = day / f"{now:%H%M%S}-{os.getpid()}-{sequence:06d}.parquet"
    staging = path.with_name("." + path.name + ".partial")
    write_fault(WRITE_POINT)
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    try:
        pq.write_table(table, staging)
        staging.replace(path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return path


def expire(folder: Path, retention_days: float, now: datetime | None = None) -> int:
    """Delete the day folders (records and feedback) older than retention_days; how many were deleted."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=retention_days)
    removed = 0
    for kind in (RECORDS, FEEDBACK):
        for day in sorted((folder / kind).glob("date=*")):
            try:
                when = datetime.strptime(day.name[5:], "%Y-%m-%d").replace(tzinfo=timezone.utc) + timedelta(days=1)
            except ValueError:
                continue
            if when < cutoff:      # the day's last moment is past the cutoff
                shutil.rmtree(day, ignore_errors=True)
                removed += 1
    return removed


class Recorder:
    """The background writer: offer() never blocks; records and feedback are written in batches by one thread."""

    def __init__(self, settings: RecordConfig, registry=None, folder: Path | None = None):
        from prometheus_client import Counter

        self.settings, self.folder = settings, Path(folder or traffic_folder(settings))
        self.sampler = Sampler(settings.sample_rate)
        self.queue: queue.Queue = queue.Queue(maxsize=settings.queue_size)
        kwargs = {"registry": registry} if registry is not None else {}
        self.written = Counter("adapterops_records_written", "Recorded requests and feedback written to the traffic "
                               "store.", ["kind"], **kwargs)
        self.dropped = Counter("adapterops_records_dropped", "Records dropped instead of slowing or failing a request "
                               "(queue_full: the writer fell behind; store_error: the disk is full or the store is "
                               "gone).", ["kind", "reason"], **kwargs)
        for kind in (RECORDS, FEEDBACK):
            self.written.labels(kind)
            for reason in ("queue_full", "store_error"):
                self.dropped.labels(kind, reason)
        self._said: set[str] = set()
        self._sequence = 0
        self._last_expiry = 0.0
        self.thread = threading.Thread(target=self._run, name="traffic-recorder", daemon=True)
        self.thread.start()

    # --- the request's side: never blocks, never raises ---------------------------------------------------
    def offer(self, kind: str, pending: dict) -> bool:
        """Queue one record (RECORDS, sampled) or one feedback (FEEDBACK, always); False when it was not taken."""
        if kind == RECORDS and not self.sampler.take():
            return False
        try:
            self.queue.put_nowait((kind, pending))
            return True
        except queue.Full:
            self._drop(kind, "queue_full", 1, "the writer fell behind (serve.record.queue_size)")
            return False

    def close(self, timeout: float = 10) -> None:
        """Write what is waiting and stop the thread."""
        if self.thread.is_alive():
            try:
                self.queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            self.thread.join(timeout)

    # --- the writer thread ---------------------------------------------------------------------------------
    def _drop(self, kind: str, reason: str, count: int, why: str) -> None:
        self.dropped.labels(kind, reason).inc(count)
        if reason not in self._said:      # said once per reason: a dead store must not flood the log
            self._said.add(reason)
            log.warning("recording dropped %d %s (%s): %s; requests are answered as usual, drops are counted in "
                        "adapterops_records_dropped_total", count, kind, reason, why)

    def _run(self) -> None:
        batches: dict[str, list] = {RECORDS: [], FEEDBACK: []}
        started = time.monotonic()
        self._expire()
        stopping = False
        while not stopping:
            timeout = max(0.05, self.settings.flush_seconds - (time.monotonic() - started))
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                stopping = True
            elif item is not None:
                batches[item[0]].append(item[1])
            full = any(len(b) >= self.settings.flush_records for b in batches.values())
            if stopping or full or time.monotonic() - started >= self.settings.flush_seconds:
                for kind, pending in batches.items():
                    if pending:
                        self._write(kind, pending)
                        batches[kind] = []
                started = time.monotonic()
                if time.monotonic() - self._last_expiry > 3600:
                    self._expire()

    def _write(self, kind: str, pending: list[dict]) -> None:
        try:
            rows = [row for p in pending for row in record_rows(p)] if kind == RECORDS else \
                [feedback_row(p) for p in pending]
            self._sequence += 1
            write_part(rows, self.folder / kind, RECORD_COLUMNS if kind == RECORDS else FEEDBACK_COLUMNS,
                       self._sequence)
            self.written.labels(kind).inc(len(pending))
        except Exception as error:      # a full disk, a vanished folder, a bad row: drop, count, say once
            self._drop(kind, "store_error", len(pending), f"{type(error).__name__}: {error} (store {self.folder})")

    def _expire(self) -> None:
        self._last_expiry = time.monotonic()
        try:
            expire(self.folder, self.settings.retention_days)
        except OSError as error:
            log.warning("could not expire old traffic files under %s: %s", self.folder, error)
