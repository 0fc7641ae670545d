"""Reasons in front: `adapterops validate` prints the quarantine counts by reason, one example row each (where,
the field, what was expected) and the full table's path; validation.md and validation.json carry the same."""

import csv
import io
import json

import pandas as pd
from typer.testing import CliRunner

from adapterops.errors import AdapterOpsError
from tasks.records.quarantine import describe_reason, reason_breakdown

SOURCES = ["email", "chat", "web-form"]


def helpdesk_csv(path):
    """A helpdesk export as another tool writes it (replies span two lines, so row numbers are physical lines):
    some rows lack an id, one two fields, one has a 'phone' channel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "source", "timestamp", "prompt", "completion"])
    for i in range(70):
        ticket = "" if i in (5, 6, 7) else f"HD-{i}"
        source = "phone" if i == 9 else SOURCES[i % 3]
        completion = "Triage: billing | priority: normal | team: payments\nReply: " + "we refunded you " * 4
        writer.writerow([ticket, source, "2026-03-01T10:00", f"Ticket {i}: I was charged twice this month", completion])
    text = buffer.getvalue().replace("\r\n", "\n") + "HD-x,email,2026-03-01T10:00\n"   # two fields short
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_prints_the_reasons_with_an_example_each_and_the_files_carry_them(tmp_path):
    from cli.main import app

    source = helpdesk_csv(tmp_path / "helpdesk.csv")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["validate", str(source), "--contract", "support_tickets", "--out", str(out)])
    assert result.exception is None, result.output
    text = " ".join(result.output.split())
    assert "71 rows in: 66 pass, 5 quarantined (ingest 4, pii 0, contract 1)" in text
    assert "Quarantined by reason:" in text
    assert "3 ingest: missing_field: id (e.g. line 12 of helpdesk.csv; field id, expected a value in this column)" in text
    assert ("1 ingest: csv_field_count (e.g. line 142 of helpdesk.csv; field (row), expected 5 fields)") in text
    assert ("1 contract: contract expect_column_values_to_be_in_set(source) (e.g. id HD-9 (line 20 of helpdesk.csv); "
            "field source, expected values to be in set (value_set=['email', 'chat', 'web-form']))") in text
    assert f"Every quarantined row with its raw text: {out / 'quarantine.parquet'}" in text

    markdown = (out / "validation.md").read_text(encoding="utf-8")
    assert "### Quarantined by reason" in markdown
    assert "| 3 | ingest | missing\\_field\\: id | line 12 of helpdesk\\.csv | id | a value in this column |" in markdown
    assert "| 1 | contract | contract expect\\_column\\_values\\_to\\_be\\_in\\_set\\(source\\) |" in markdown
    stored = json.loads((out / "validation.json").read_text(encoding="utf-8"))
    assert [(g["stage"], g["reason"], g["rows"]) for g in stored["quarantine_by_reason"]] == [
        ("ingest", "missing_field: id", 3), ("contract", "contract expect_column_values_to_be_in_set(source)", 1),
        ("ingest", "csv_field_count", 1)]
    assert len(pd.read_parquet(out / "quarantine.parquet")) == 5


def test_a_rejecting_contract_names_the_commonest_reasons_in_its_error(tmp_path):
    from cli.main import app

    rows = [{"id": f"t{i}", "source": "fax", "timestamp": "2026-01-01T10:00", "prompt": "My order is late " * 3,
             "completion": "Triage: shipping | priority: normal | " + "x" * 60} for i in range(60)]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "in.jsonl"), "--contract", "support_tickets",
                                      "--out", str(tmp_path / "out")])
    assert isinstance(result.exception, AdapterOpsError)
    message = str(result.exception)
    assert "0 rows pass the contract, fewer than min_rows=50" in message
    assert "Quarantined most for: contract: contract expect_column_values_to_be_in_set(source) x60 (e.g. id t0" in message
    assert "60 contract: contract expect_column_values_to_be_in_set(source)" in " ".join(result.output.split())


def test_each_reason_kind_names_its_field_and_what_was_expected():
    assert describe_reason("wrong_type: prompt is a list, expected text") == [
        {"reason": "wrong_type: prompt", "field": "prompt", "expected": "text"}]
    assert describe_reason("line_too_long: 9000000 bytes, limit 8388608")[0]["expected"] == "at most 8388608 bytes"
    assert describe_reason("malformed_json: Expecting value at column 3")[0]["reason"] == "malformed_json"
    both = describe_reason("contract: missing_required: source; wrong_type: priority expected integer")
    assert [(p["reason"], p["field"], p["expected"]) for p in both] == [
        ("contract missing_required: source", "source", "a value (the contract's schema requires it)"),
        ("contract wrong_type: priority", "priority", "integer")]
    frame = pd.DataFrame([{"id": None, "input_file": "/x/a.jsonl", "input_line": n, "stage": "ingest",
                           "reason": f"malformed_json: Expecting value at column {n}"} for n in (4, 2)])
    (group,) = reason_breakdown(frame)
    assert group["rows"] == 2 and group["example"] == "line 4 of a.jsonl"
