"""Ingest: every bad-input kind ends as a quarantine row with a reason or one clear error; nothing is lost."""

import codecs
import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapterops.config import Columns
from adapterops.errors import AdapterOpsError
from tasks.curate.ingest import parse_csv, parse_jsonl, parse_rows
from tasks.curate.inputs import expand_inputs, ingest_files
from tasks.records.quarantine import escape_raw

GOOD = {"id": "a", "prompt": "p", "completion": "c", "source": "email", "timestamp": "t"}


def line(**fields) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


def reasons(result):
    return [(q["input_line"], q["reason"].split(":")[0]) for q in result.quarantine]


# Each bad JSONL line kind, with the reason code it must be quarantined under.
BAD_LINES = {
    "malformed_json": b'{"id": "b", "prompt": "unterminated',
    "invalid_utf8": b'{"id": "b", "prompt": "\xff\xfe"}',
    "nul_byte": b'{"id": "b", "prompt": "a\x00b"}',
    "not_an_object": b"[1, 2]",
    "missing_field": b'{"prompt": "no id"}',
    "wrong_type": line(id="b", prompt={"nested": True}),
    "bom_inside_file": codecs.BOM_UTF8 + line(id="b"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_each_bad_jsonl_line_is_quarantined_with_its_line_number_and_escaped_raw_bytes(kind):
    result = parse_jsonl(line() + b"\n" + BAD_LINES[kind] + b"\n" + line(id="c") + b"\n", "in.jsonl", Columns())
    assert [r["id"] for r in result.records] == ["a", "c"]
    assert reasons(result) == [(2, kind)]
    raw = result.quarantine[0]["raw"]
    assert raw.isprintable() and "\x00" not in raw
    assert result.lines == len(result.records) + len(result.quarantine) == 3


def test_raw_bytes_are_escaped_not_replaced():
    result = parse_jsonl(BAD_LINES["invalid_utf8"] + b"\n" + BAD_LINES["nul_byte"], "in.jsonl", Columns())
    assert "\\xff\\xfe" in result.quarantine[0]["raw"] and "a\\x00b" in result.quarantine[1]["raw"]


def test_duplicate_ids_are_quarantined_within_and_across_files():
    seen = set()
    first = parse_jsonl(line() + b"\n" + line(prompt="again") + b"\n", "one.jsonl", Columns(), seen)
    second = parse_jsonl(line(), "two.jsonl", Columns(), seen)
    assert reasons(first) == [(2, "duplicate_id")] and reasons(second) == [(1, "duplicate_id")]
    assert second.quarantine[0]["id"] == "a"


def test_a_50_mb_line_is_quarantined_without_being_parsed():
    huge = b'{"id": "big", "prompt": "' + b"x" * (50 << 20) + b'"}'
    result = parse_jsonl(line() + b"\n" + huge + b"\n", "in.jsonl", Columns())
    assert reasons(result) == [(2, "line_too_long")]
    assert len(result.quarantine[0]["raw"]) < 2100 and "bytes in all" in result.quarantine[0]["raw"]


def test_a_leading_bom_is_removed_and_noted_and_utf16_is_one_clear_error():
    result = parse_jsonl(codecs.BOM_UTF8 + line(), "in.jsonl", Columns())
    assert [r["id"] for r in result.records] == ["a"] and "byte-order mark" in result.notes[0]
    with pytest.raises(AdapterOpsError, match="in.jsonl is UTF-16.*iconv"):
        parse_jsonl(line().decode().encode("utf-16"), "in.jsonl", Columns())


def test_numbers_become_text_and_crlf_line_endings_are_accepted():
    result = parse_jsonl(line(id=7, timestamp=1767225600) + b"\r\n" + line(id=8.0) + b"\r\n", "x", Columns())
    assert [(r["id"], r["timestamp"]) for r in result.records] == [("7", "1767225600"), ("8", "t")]
    assert reasons(parse_jsonl(line(id=True) + b"\n" + line(id="b", source=["x"]), "x", Columns())) == \
        [(1, "wrong_type"), (2, "wrong_type")]


def test_column_mapping_renames_input_fields():
    data = b'{"ticket_id": "t1", "body": "hello", "answer": "hi", "channel": "chat", "ts": "2026"}\n'
    columns = Columns(id="ticket_id", prompt="body", completion="answer", source="channel", timestamp="ts")
    record = parse_jsonl(data, "x", columns).records[0]
    assert (record["id"], record["prompt"], record["completion"], record["source"]) == ("t1", "hello", "hi", "chat")
    assert reasons(parse_jsonl(b'{"ticket_id": "t1", "body": "a"}\n{"body": "b"}', "x", columns)) == [(2, "missing_field")]
    with pytest.raises(AdapterOpsError, match="unrecognised record format.*columns.prompt"):   # a whole-file problem
        parse_jsonl(b'{"id": "x"}', "x", columns)


CSV_HEADER = b"id,source,timestamp,prompt,completion\n"


def test_csv_quoting_errors_and_field_counts_cost_one_line_each():
    data = (CSV_HEADER + b'a,email,t,"quoted, with comma",c\n'
            b'b,email,t,"bad "quote" here,c\n'
            b'c,email,t,p,c,extra\n'
            b'd,email,t,"multi\nline",c\n'
            b'e,email,t,\xff,c\n'
            b'f,email,t,"never closed,c\n'
            b'g,email,t,p,c\n')
    result = parse_csv(data, "in.csv", Columns())
    assert [r["id"] for r in result.records] == ["a", "d", "g"]
    assert result.records[1]["prompt"] == "multi\nline"
    assert reasons(result) == [(3, "csv_quoting"), (4, "csv_field_count"), (7, "invalid_utf8"), (8, "csv_quoting")]
    assert result.lines == len(result.records) + len(result.quarantine)


def test_csv_header_problems_are_one_clear_error():
    with pytest.raises(AdapterOpsError, match="no row has the id column 'ticket'.*columns.id.*hash"):
        parse_csv(b"key,prompt\n1,p\n", "in.csv", Columns(id="ticket"))
    with pytest.raises(AdapterOpsError, match="repeats column"):
        parse_csv(b"id,prompt,prompt\n1,p,q\n", "in.csv", Columns())


def test_csv_empty_fields_are_missing_and_a_bom_is_removed():
    result = parse_csv(codecs.BOM_UTF8 + CSV_HEADER + b"a,email,t,,c\n", "in.csv", Columns())
    assert result.records[0]["prompt"] is None and result.notes


def test_typed_rows_check_types_and_treat_nan_as_missing():
    from datetime import datetime, timezone

    rows = [{**GOOD, "id": 1, "timestamp": datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc)},
            {**GOOD, "id": 2, "prompt": float("nan")}, {**GOOD, "id": 3, "prompt": [1]}]
    result = parse_rows(rows, "in.parquet", Columns())
    assert [r["id"] for r in result.records] == ["1", "2"] and result.records[1]["prompt"] is None
    assert result.records[0]["timestamp"] == "2026-01-02T03:04:00+00:00"
    assert reasons(result) == [(3, "wrong_type")]


def test_escape_raw_truncates_and_shows_control_bytes():
    assert escape_raw(b"a\tb\x00\xff") == "a\\tb\\x00\\xff"
    assert escape_raw("x" * 5000).endswith("[5000 bytes in all]")


# --- files, formats and file-level errors ---------------------------------------------------------

def test_every_format_is_read_with_ids_unique_across_files(tmp_path):
    from datasets import Dataset, DatasetDict

    (tmp_path / "a.jsonl").write_bytes(line(id="j1") + b"\nnot json\n")
    (tmp_path / "b.csv").write_bytes(CSV_HEADER + b"c1,chat,t,p,c\nj1,chat,t,p,c\n")
    pd.DataFrame([{**GOOD, "id": "p1", "timestamp": 1}, {**GOOD, "id": "p2", "timestamp": 2}]).to_parquet(tmp_path / "c.parquet")
    DatasetDict({"train": Dataset.from_list([{**GOOD, "id": "h1"}]),
                 "test": Dataset.from_list([{**GOOD, "id": "h2"}])}).save_to_disk(str(tmp_path / "hf"))
    out = ingest_files([str(tmp_path / "*.jsonl"), str(tmp_path / "b.csv"), str(tmp_path / "c.parquet"),
                        str(tmp_path / "hf")], Columns(), tmp_path / "stage")
    records, quarantine = pd.read_parquet(out.records), pd.read_parquet(out.quarantine)
    assert sorted(records["id"]) == ["c1", "h1", "h2", "j1", "p1", "p2"]
    assert records.set_index("id").loc["p2", "timestamp"] == "2"
    assert sorted(quarantine["reason"].str.split(":").str[0]) == ["duplicate_id", "malformed_json"]
    assert out.input == len(records) + len(quarantine) == 8
    assert [f["format"] for f in out.files] == ["jsonl", "csv", "parquet", "hf"]
    assert all(f["digest"].startswith("sha256:") for f in out.files)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("empty", "empty"), ("blank", "empty"), ("header_only", "no rows after the header"),
    ("no_data_folder", "folder with no data"), ("unsupported", "unsupported format"), ("bad_parquet", "cannot be read as Parquet"),
])
def test_file_level_problems_are_one_error_that_names_the_file(tmp_path, case, message):
    target = tmp_path / {"missing": "nope.jsonl", "empty": "e.jsonl", "blank": "b.jsonl", "header_only": "h.csv",
                         "no_data_folder": "folder", "unsupported": "x.txt", "bad_parquet": "x.parquet"}[case]
    if case == "empty":
        target.write_bytes(b"")
    elif case == "blank":
        target.write_bytes(b"\n  \n")
    elif case == "header_only":
        target.write_bytes(CSV_HEADER)
    elif case == "no_data_folder":
        target.mkdir()
        (target / "notes.md").write_text("nothing here")
    elif case in ("unsupported", "bad_parquet"):
        target.write_bytes(b"PAR1 not really")
    with pytest.raises(AdapterOpsError, match=message) as error:
        ingest_files([str(target)], Columns(), tmp_path / "stage")
    assert str(target) in str(error.value) and "\n" not in str(error.value)


def test_a_folder_of_files_is_expanded_in_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "2.jsonl").write_bytes(line())
    (tmp_path / "1.csv").write_bytes(CSV_HEADER)
    assert [fmt for _, fmt in expand_inputs([str(tmp_path)])] == ["csv", "jsonl"]


# --- fuzzing: the accounting invariant holds for any bytes ---------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
jsonl_lines = st.lists(st.one_of(
    st.builds(lambda i, p: line(id=i, prompt=p), st.sampled_from("abcde"), st.text(max_size=20)),
    st.binary(max_size=40), st.sampled_from([b"", b"{", b"[]", b"null", b'{"id": null}', b'{"id": {}}'])), max_size=20)


@FUZZ
@given(jsonl_lines)
def test_fuzz_jsonl_every_nonblank_line_is_a_record_or_quarantined(lines):
    data = b"\n".join(lines)
    try:
        result = parse_jsonl(data, "fuzz.jsonl", Columns())
    except AdapterOpsError as error:    # a whole-file problem: objects, but none in a format the reader knows
        assert "unrecognised record format" in str(error)
        assert not any(b'"prompt"' in part for part in lines)
        return
    body = data.removeprefix(b"\xef\xbb\xbf")   # a leading byte-order mark marks the encoding, not a line
    nonblank = sum(1 for part in body.split(b"\n") if part.rstrip(b"\r").strip())
    assert result.lines == nonblank == len(result.records) + len(result.quarantine)
    assert len({r["id"] for r in result.records}) == len(result.records)


csv_cells = st.text(alphabet='ab,"\n\r \x00é', max_size=8)


@FUZZ
@given(st.lists(st.lists(csv_cells, min_size=1, max_size=6), max_size=12), st.binary(max_size=30))
def test_fuzz_csv_accounting_holds_and_no_row_is_lost(rows, noise):
    body = "\n".join(",".join(cells) for cells in rows).encode("utf-8") + noise
    result = parse_csv(CSV_HEADER + body, "fuzz.csv", Columns())
    assert result.lines == len(result.records) + len(result.quarantine)
    covered = {r["input_line"] for r in result.records} | {q["input_line"] for q in result.quarantine}
    assert len(covered) == result.lines                       # one place per row, each at its own line


def test_an_unparseable_csv_header_is_one_clear_error():
    with pytest.raises(AdapterOpsError, match=r"in.csv: the header \(line 1\) cannot be parsed"):
        parse_csv(b'id,"prompt\n', "in.csv", Columns())
