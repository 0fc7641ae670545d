"""The traffic store's pure parts: exact systematic sampling, redaction of every message and tool argument,
leaks judged before redaction, whole files only, and expiry by age."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pandas as pd

from tasks.serve.recording import RECORD_COLUMNS, Sampler, expire, record_rows, write_part


def test_sampling_takes_exactly_the_configured_share():
    for rate, expected in ((1.0, 100), (0.25, 25), (0.1, 10), (0.0, 0)):
        sampler = Sampler(rate)
        assert sum(sampler.take() for _ in range(100)) == expected


def pending(answer: str, calls: list | None = None) -> dict:
    return {"id": "chatcmpl-1", "time": "2026-12-01T10:00:00+00:00", "endpoint": "chat", "model": "m",
            "model_name": "m", "version": "1", "alias": "production", "key": "app", "stream": False,
            "latency_seconds": 0.1, "prompt_tokens": 3, "completion_tokens": 2, "tools": None,
            "messages": [{"role": "user", "content": "Mail me at ana@example.com about order 7"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "c1", "type": "function",
                              "function": {"name": "lookup", "arguments": json.dumps({"email": "ana@example.com"})}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "owner: bo@example.org"}],
            "choices": [{"index": 0, "prompt": 0, "content": answer, "calls": calls or [], "finish_reason": "stop"}]}


def test_every_message_and_tool_argument_is_redacted_and_a_leak_is_judged_first():
    row = record_rows(pending("Sent to ana@example.com"))[0]
    stored = json.dumps(row)
    assert "ana@example.com" not in stored and "bo@example.org" not in stored and row["redacted"] == 4
    assert row["pii_leak"] is False               # the address was in the request
    leaked = record_rows(pending("Try carl@example.net instead"))[0]
    assert leaked["pii_leak"] is True and "carl@" not in json.dumps(leaked)


def test_parts_are_whole_files_and_old_days_expire(tmp_path):
    path = write_part(record_rows(pending("ok")), tmp_path / "records", RECORD_COLUMNS, 1)
    assert list(pd.read_parquet(path).columns) == list(RECORD_COLUMNS)
    assert not list(tmp_path.rglob("*.partial"))
    old = tmp_path / "records" / "date=2026-10-01"
    old.mkdir()
    (old / "x.parquet").write_bytes(path.read_bytes())
    now = datetime.now(timezone.utc)
    assert expire(tmp_path, 30, now) == 1 and not old.exists() and path.exists()
    assert expire(tmp_path, 30, now + timedelta(days=40)) == 1 and not path.exists()
