"""Quarantine rows: where a record that left the corpus came from, why, and its raw text (escaped, PII masked)."""

from __future__ import annotations

from tasks.records.pii_detect import mask_all

QUARANTINE_FIELDS = ("id", "input_file", "input_line", "stage", "reason", "raw")
MAX_RAW_CHARS = 2000


def escape_raw(raw: bytes | str, limit: int = MAX_RAW_CHARS) -> str:
    """Printable form of a raw row: invalid UTF-8 and control bytes as escapes (\\xff, \\x00), cut at `limit` chars."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    text = data[:limit * 4 + 4].decode("utf-8", errors="backslashreplace")   # cut first: lines can be 50 MB
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[:limit + 1])
    return text[:limit] + f"… [{len(data)} bytes in all]" if len(text) > limit else text


def quarantine_row(record_id, input_file: str, line: int, stage: str, reason: str, raw: bytes | str) -> dict:
    """One quarantine row; PII in the raw text is masked, since the quarantine leaves the corpus too."""
    return {"id": None if record_id is None else str(record_id), "input_file": input_file,
            "input_line": line, "stage": stage, "reason": reason, "raw": mask_all(escape_raw(raw))}
