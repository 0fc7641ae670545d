from adapterops.config import Columns
from tasks.ingest import parse_jsonl


def test_good_lines_become_records_and_bad_lines_are_quarantined_with_reasons():
    data = (b'{"id": "a", "prompt": "p", "completion": "c", "source": "email", "timestamp": "t"}\n'
            b'{"id": "b", "prompt": "unterminated\n'
            b'\n'
            b'[1, 2]\n'
            b'{"prompt": "no id"}\n'
            b'{"id": "a", "prompt": "again"}\n'
            b'{"id": 7, "prompt": {"nested": true}, "completion": "c"}\n'
            b'{"id": "x", "prompt": "\xff\xfe"}\n')
    result = parse_jsonl(data, "in.jsonl", Columns())
    assert [r["id"] for r in result.records] == ["a", "7"]
    assert result.records[1]["prompt"] == '{"nested": true}'
    reasons = [(q["input_line"], q["reason"].split(":")[0]) for q in result.quarantine]
    assert reasons == [(2, "malformed_json"), (4, "not_an_object"), (5, "missing_field"), (6, "duplicate_id"),
                       (8, "invalid_utf8")]
    assert result.lines == len(result.records) + len(result.quarantine)


def test_column_mapping_renames_input_fields():
    data = b'{"ticket_id": "t1", "body": "hello", "answer": "hi", "channel": "chat", "ts": "2026"}\n'
    columns = Columns(id="ticket_id", prompt="body", completion="answer", source="channel", timestamp="ts")
    record = parse_jsonl(data, "x", columns).records[0]
    assert (record["id"], record["prompt"], record["completion"], record["source"]) == ("t1", "hello", "hi", "chat")
