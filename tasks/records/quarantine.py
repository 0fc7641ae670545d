"""Quarantine rows: where a record that left the corpus came from, why, and its raw text (escaped, PII masked)."""

from __future__ import annotations

from adapterops.escaping import md_cell, md_code
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


# --- reasons in front: what people read about a quarantine, grouped by reason ------------------------

# reason code -> (field when the reason names none, what was expected)
EXPECTED = {
    "missing_field": (None, "a value in this column"),
    "missing_required": (None, "a value (the contract's schema requires it)"),
    "eval_missing_field": (None, "a value (an eval record needs it to be scored)"),
    "duplicate_id": ("id", "an id no earlier row has"),
    "not_an_object": ("(row)", "a JSON object per line"),
    "malformed_json": ("(row)", "one valid JSON object per line"),
    "unparseable": ("(row)", "one valid JSON object per line"),
    "invalid_utf8": ("(row)", "UTF-8 text"),
    "nul_byte": ("(row)", "text without NUL bytes"),
    "line_too_long": ("(row)", "a shorter line"),
    "bom_inside_file": ("(row)", "no byte-order mark inside the file"),
    "csv_quoting": ("(row)", "balanced CSV quotes"),
    "csv_field_count": ("(row)", "as many fields as the header"),
    "pii": (None, "no PII of these kinds (the contract's PII policy quarantines it)"),
    "label_rejected": ("(record)", "accepted by the annotators"),
    "near_duplicate_of_heldout": ("prompt, completion", "no near-duplicate in the held-out or eval set"),
}


def describe_reason(reason: str, expected: dict[str, str] | None = None) -> list[dict]:
    """One quarantine reason as [{reason, field, expected}] (a contract reason may hold several checks);
    reason is the group key: the code and the field, without row-specific detail (byte offsets, messages)."""
    text = str(reason or "").strip()
    if text.startswith("contract:"):
        return [dict(part, reason="contract " + part["reason"]) for piece in text[len("contract:"):].split(";")
                if piece.strip() for part in describe_reason(piece.strip(), expected)]
    if expected and text in expected:          # a contract expectation, described by its own settings
        column = text[text.find("(") + 1:text.rfind(")")] if "(" in text else ""
        return [{"reason": text, "field": column or "(table)", "expected": expected[text]}]
    code, _, detail = text.partition(":")
    code, detail = code.strip(), detail.strip()
    if code.startswith("label_rejected"):
        code, detail = "label_rejected", ""
    field, wanted = EXPECTED.get(code, (None, ""))
    if code in ("missing_field", "missing_required", "eval_missing_field", "pii"):
        return [{"reason": text, "field": detail, "expected": wanted}]
    if code == "wrong_type":                    # "x is a list, expected text" or "x expected integer"
        column = detail.split(" ", 1)[0]
        return [{"reason": f"wrong_type: {column}", "field": column,
                 "expected": detail.rsplit("expected", 1)[-1].strip() or "another type"}]
    if code == "nul_byte" and detail and not detail.startswith("at byte"):
        field = detail
    if code == "line_too_long" and "limit" in detail:
        wanted = f"at most {detail.rsplit('limit', 1)[-1].strip()} bytes"
    if code == "csv_field_count" and "expected" in detail:
        wanted = detail.split(",", 1)[0].removeprefix("expected").strip()
    if text.startswith("expect_") and "(" in text:
        return [{"reason": text, "field": text[text.find("(") + 1:text.rfind(")")] or "(table)",
                 "expected": "to pass this expectation (see validation.json)"}]
    return [{"reason": code or "(no reason)", "field": field or "", "expected": wanted or detail}]


def example_of(row) -> str:
    """Where a quarantined row is: its id when it has one, else its line (row) number in its file."""
    line = row.get("input_line")
    where = f"line {int(line)}" if line is not None and line == line else ""
    name = str(row.get("input_file") or "").rsplit("/", 1)[-1]
    place = f"{where} of {name}" if where and name else where or name
    return f"id {row['id']} ({place})" if row.get("id") not in (None, "") and row.get("id") == row.get("id") \
        else place or "(unknown row)"


def reason_breakdown(frame, expected: dict[str, str] | None = None) -> list[dict]:
    """Rows quarantined per (stage, reason), most first, each with one example row, the field and what was expected.

    A row failing several contract checks counts under each; `rows` of the whole table is len(frame)."""
    groups: dict[tuple[str, str], dict] = {}
    for row in frame.to_dict("records"):
        for part in describe_reason(row.get("reason"), expected):
            key = (str(row.get("stage") or ""), part["reason"])
            if key not in groups:
                groups[key] = {"stage": key[0], "reason": part["reason"], "rows": 0, "example": example_of(row),
                               "field": part["field"], "expected": part["expected"]}
            groups[key]["rows"] += 1
    return sorted(groups.values(), key=lambda g: (-g["rows"], g["stage"], g["reason"]))


def breakdown_lines(breakdown: list[dict], table_path, limit: int = 12) -> list[str]:
    """The breakdown for a terminal (plain text; the caller escapes it): one line per reason, then the table's path."""
    if not breakdown:
        return []
    lines = ["Quarantined by reason:"]
    for g in breakdown[:limit]:
        lines.append(f"  {g['rows']:>6}  {g['stage']}: {g['reason']} (e.g. {g['example']}; field {g['field'] or '-'}, "
                     f"expected {g['expected'] or '-'})")
    if len(breakdown) > limit:
        lines.append(f"  ... and {len(breakdown) - limit} more reasons")
    return lines + [f"Every quarantined row with its raw text: {table_path}"]


def breakdown_markdown(breakdown: list[dict], table_path) -> list[str]:
    """The breakdown as a markdown table (record-derived text escaped) and the full table's path."""
    if not breakdown:
        return ["Nothing quarantined."]
    lines = ["| rows | stage | reason | example | field | expected |", "|---|---|---|---|---|---|"]
    lines += [f"| {g['rows']} | {md_cell(g['stage'])} | {md_cell(g['reason'])} | {md_cell(g['example'])} | "
              f"{md_cell(g['field'] or '-')} | {md_cell(g['expected'] or '-')} |" for g in breakdown]
    return lines + ["", f"Every quarantined row, with its reason and raw text: {md_code(str(table_path))}"]
