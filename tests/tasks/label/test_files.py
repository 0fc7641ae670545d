"""Annotated files in every shape a team saves them: read the same, or refused with the export to use."""

import json

import pandas as pd
import pytest

from adapterops.errors import AdapterOpsError
from tasks.label.files import read_label_file
from tasks.label.labeling import apply_decisions, export_tasks, read_decisions
from tests.refs import fake_corpus

CORPUS = fake_corpus(pipeline="tickets", version=3, digest="sha256:abc")


def records():
    return pd.DataFrame({"id": ["a", "b", "c"], "source": ["email"] * 3, "timestamp": ["2026-01-01T10:00"] * 3,
                         "prompt": ["reset my password", "refund please", "card declined"],
                         "completion": ["Triage: account", "Triage: billing", "Triage: payments"],
                         "input_file": ["x.jsonl"] * 3, "input_line": [1, 2, 3]})


def label_studio_export(verdicts):
    tasks = export_tasks(records(), CORPUS, "label-studio")
    for number, (task, verdict) in enumerate(zip(tasks, verdicts), start=11):
        task["id"] = number                                   # Label Studio's task id
        result = [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}}]
        task["annotations"] = [{"result": result if verdict else [], "completed_by": 4,
                                "updated_at": "2026-02-01T10:00:00Z", "was_cancelled": False}]
    return tasks


def test_a_pretty_printed_export_is_read_as_tasks_each_named_by_task_id_and_line(tmp_path):
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps(label_studio_export(["accept", None, "reject"]), indent=2))
    decisions, problems = read_decisions([str(path)])
    assert [d.verdict for d in decisions] == ["accept", "reject"]
    assert [(p["outcome"], p["record_id"]) for p in problems] == [("unlabeled", "b")]
    lines = path.read_text().splitlines()
    where = problems[0]["where"]
    assert where.startswith("task 12, line ") and lines[int(where.split()[-1]) - 1].strip() == "{"
    assert decisions[0].where.startswith("task 11, line 2")


def test_pretty_printed_json_saved_as_jsonl_is_one_document_not_a_line_per_problem(tmp_path):
    items = export_tasks(records(), CORPUS, "jsonl")
    items[0] |= {"verdict": "reject", "note": "spam", "annotator": "kim"}
    (tmp_path / "pretty.jsonl").write_text(json.dumps(items, indent=2))
    (tmp_path / "one.jsonl").write_text(json.dumps(items[0], indent=2))
    decisions, problems = read_decisions([str(tmp_path / "pretty.jsonl")])
    assert [d.verdict for d in decisions] == ["reject"] and [p["outcome"] for p in problems] == ["unlabeled"] * 2
    decisions, problems = read_decisions([str(tmp_path / "one.jsonl")])
    assert [(d.record_id, d.note) for d in decisions] == [("a", "spam")] and problems == []


def test_bom_and_crlf_files_read_like_plain_ones(tmp_path):
    items = export_tasks(records(), CORPUS, "jsonl")
    items[1] |= {"verdict": "correct", "corrected_completion": "Triage: refunds", "annotator": "kim"}
    text = "\r\n".join(map(json.dumps, items)) + "\r\n"
    (tmp_path / "plain.jsonl").write_text(text.replace("\r\n", "\n"))
    (tmp_path / "windows.jsonl").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (tmp_path / "windows.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(label_studio_export(["accept"]), indent=2)
                                            .replace("\n", "\r\n").encode())
    plain, windows = read_decisions([str(tmp_path / "plain.jsonl")]), read_decisions([str(tmp_path / "windows.jsonl")])
    assert [(d.record_id, d.completion) for d in windows[0]] == [(d.record_id, d.completion) for d in plain[0]] \
        == [("b", "Triage: refunds")]
    assert [p["where"] for p in windows[1]] == ["line 1", "line 3"]
    assert [d.verdict for d in read_decisions([str(tmp_path / "windows.json")])[0]] == ["accept"]


def test_verdicts_match_whatever_their_case_and_spaces(tmp_path):
    tasks = label_studio_export(["  Accept ", "REJECT", "cor rect"])
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    decisions, problems = read_decisions([str(tmp_path / "ls.json")])
    assert [d.verdict for d in decisions] == ["accept", "reject"]
    assert [p["outcome"] for p in problems] == ["unknown_verdict"]


def min_rows():
    """Rows as Label Studio 1.23's JSON-MIN converter writes them: one per annotation, the task's data flattened in;
    a task without annotations has empty annotation fields; a textarea with several lines is {"text": [...]}."""
    data = [{k: t["data"][k] for k in t["data"]} | {"id": n} for n, t in
            enumerate(export_tasks(records(), CORPUS, "label-studio"), start=11)]
    return [data[0] | {"verdict": "correct", "corrected_completion": "Triage: security", "annotator": "kim@example.com",
                       "annotation_id": 5, "created_at": "2026-02-01T10:00:00Z", "updated_at": "2026-02-01T10:00:00Z",
                       "lead_time": 3.0},
            data[0] | {"verdict": "reject", "note": {"text": ["spam", "twice"]}, "annotator": "lee@example.com",
                       "annotation_id": 6, "created_at": "2026-02-01T09:00:00Z", "updated_at": "2026-02-01T09:00:00Z",
                       "lead_time": 2.0},
            data[1] | {"annotator": None, "annotation_id": None, "updated_at": None, "lead_time": None}]


def test_json_min_export_rows_become_tasks_again_with_every_annotator(tmp_path):
    (tmp_path / "min.json").write_text(json.dumps(min_rows(), indent=2))
    third = [n for n, line in enumerate((tmp_path / "min.json").read_text().splitlines(), start=1) if line == "  {"][2]
    tasks, problems = read_label_file(tmp_path / "min.json")
    assert problems == [] and [t["origin"]["where"] for t in tasks] == ["task 11, line 2", f"task 12, line {third}"]
    assert [a["completed_by"] for a in tasks[0]["annotations"]] == ["kim@example.com", "lee@example.com"]
    assert tasks[1]["annotations"] == [] and tasks[0]["data"]["record_digest"].startswith("sha256:")
    decisions, problems = read_decisions([str(tmp_path / "min.json")])
    assert [(d.record_id, d.verdict, d.completion, d.annotator) for d in decisions] == [
        ("a", "correct", "Triage: security", "kim@example.com")]             # the latest of the two, as in JSON
    assert [(p["record_id"], p["outcome"], p["where"]) for p in problems] == [
        ("b", "unlabeled", f"task 12, line {third}"), ("a", "overruled", "task 11, line 2")]   # lee's, kept as a row


def test_csv_export_is_read_like_json_min_and_other_csv_is_refused_with_the_export_to_use(tmp_path):
    import csv

    rows = min_rows()
    columns = sorted({k for row in rows for k in row})
    with open(tmp_path / "export.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()} for row in rows)
    tasks, _ = read_label_file(tmp_path / "export.csv")
    notes = [r for r in tasks[0]["annotations"][1]["result"] if r["from_name"] == "note"]
    assert notes[0]["value"]["text"] == ["spam", "twice"] and tasks[1]["origin"]["where"] == "task 12, line 4"
    assert [(d.record_id, d.verdict) for d in read_decisions([str(tmp_path / "export.csv")])[0]] == [("a", "correct")]
    (tmp_path / "sheet.csv").write_text("record_id,verdict\na,accept\n")
    with pytest.raises(AdapterOpsError, match=r"not a Label Studio CSV export.*export the Label Studio project as JSON"):
        read_label_file(tmp_path / "sheet.csv")


def test_a_completion_edited_in_place_under_accept_is_named_not_dropped(tmp_path):
    items = export_tasks(records(), CORPUS, "jsonl")
    items[0] |= {"verdict": "accept", "completion": "Triage: security", "annotator": "kim"}   # edited, but accepted
    items[1] |= {"verdict": "accept", "annotator": "kim"}
    (tmp_path / "edited.jsonl").write_text("\n".join(map(json.dumps, items)))
    decisions, problems = read_decisions([str(tmp_path / "edited.jsonl")], records())
    assert [d.record_id for d in decisions] == ["b"]
    assert [(p["outcome"], p["record_id"], p["where"]) for p in problems] == [
        ("edited_in_place", "a", "line 1"), ("unlabeled", "c", "line 3")]
    assert "verdict correct with corrected_completion" in problems[0]["detail"]
    labeled, _, _ = apply_decisions(records(), decisions)
    assert labeled.set_index("id").loc["a", "completion"] == "Triage: account"


def test_malformed_lines_and_non_objects_are_named_by_line(tmp_path):
    items = export_tasks(records(), CORPUS, "jsonl")
    (tmp_path / "mixed.jsonl").write_text(json.dumps(items[0]) + "\n[1, 2]\n\n{broken\n")
    _, problems = read_decisions([str(tmp_path / "mixed.jsonl")])
    assert [(p["outcome"], p["where"]) for p in problems] == [
        ("unlabeled", "line 1"), ("not_an_object", "line 2"), ("malformed_json", "line 4")]


def test_the_prefilled_correction_box_counts_only_with_correct_and_only_when_edited(tmp_path):
    # Label Studio submits the pre-filled box's text with every annotation, also when it was hidden
    tasks = export_tasks(records(), CORPUS, "label-studio")
    for task, verdict, text in zip(tasks, ["accept", "correct", "correct"],
                                   [None, "Triage: refunds", "Triage: payments"]):
        result = [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}},
                  {"from_name": "corrected_completion", "to_name": "completion", "type": "textarea",
                   "value": {"text": [text or task["data"]["completion"]]}}]
        task["annotations"] = [{"result": result, "completed_by": 4, "updated_at": "2026-02-01T10:00:00Z"}]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    decisions, problems = read_decisions([str(tmp_path / "ls.json")])
    assert [(d.record_id, d.verdict, d.completion) for d in decisions] == [
        ("a", "accept", None), ("b", "correct", "Triage: refunds")]
    assert [(p["record_id"], p["outcome"]) for p in problems] == [("c", "correct_unchanged")]
