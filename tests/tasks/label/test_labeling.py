"""Labeling round trips: provenance out and back, each verdict, and every task accounted for."""

import json

import pandas as pd
import pytest

from adapterops.errors import AdapterOpsError
from tasks.label.labeling import (
    apply_decisions,
    decisions_from_label_studio,
    export_tasks,
    read_decisions,
    record_digest,
)
from tests.refs import fake_corpus

CORPUS = fake_corpus(pipeline="tickets", version=3, digest="sha256:abc")


def records():
    return pd.DataFrame({"id": ["a", "b", "c", "d"], "source": ["mail"] * 4, "timestamp": ["2026-01-01"] * 4,
                         "prompt": ["reset my password", "refund please", "hello from kim@example.com", "card declined"],
                         "completion": ["Triage: account", "Triage: billing", "Triage: other", "Triage: billing"],
                         "input_file": ["x.jsonl"] * 4, "input_line": [1, 2, 3, 4]})


def annotated(task, verdict=None, text=None, note=None, cancelled=False, when="2026-02-01T10:00:00Z", by=7):
    result = []
    if verdict:
        result.append({"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}})
    if text:
        result.append({"from_name": "corrected_completion", "to_name": "completion", "type": "textarea",
                       "value": {"text": [text]}})
    if note:
        result.append({"from_name": "note", "to_name": "completion", "type": "textarea", "value": {"text": [note]}})
    task.setdefault("annotations", []).append({"result": result, "was_cancelled": cancelled, "completed_by": by,
                                               "updated_at": when})
    return task


def test_label_studio_round_trip_applies_each_verdict_with_its_provenance():
    tasks = export_tasks(records(), CORPUS, "label-studio")
    assert tasks[0]["data"]["corpus_digest"] == "sha256:abc" and tasks[0]["data"]["record_digest"].startswith("sha256:")
    annotated(tasks[0], "accept")
    annotated(tasks[1], "correct", text="Triage: refunds")
    annotated(tasks[2], "reject", note="greeting only")
    annotated(tasks[3], "reject", when="2026-02-01T09:00:00Z")
    annotated(tasks[3], "accept", when="2026-02-02T09:00:00Z")          # the latest annotation wins
    decisions, problems = decisions_from_label_studio(json.loads(json.dumps(tasks)), "ls.json")
    assert [d.verdict for d in decisions] == ["accept", "correct", "reject", "accept"]
    assert [(p["record_id"], p["outcome"], p["verdict"]) for p in problems] == [("d", "overruled", "reject")]
    labeled, quarantine, report = apply_decisions(records(), decisions)
    assert labeled["id"].tolist() == ["a", "b", "d"]
    assert labeled.set_index("id").loc["b", "completion"] == "Triage: refunds"
    assert labeled.set_index("id").loc["a", "completion"] == "Triage: account"
    assert [(q["id"], q["stage"], q["input_line"]) for q in quarantine] == [("c", "label", 3)]
    assert quarantine[0]["reason"] == "label_rejected by 7: greeting only"
    assert "kim@example.com" not in quarantine[0]["raw"]        # quarantine rows leave the corpus: PII masked
    assert [r["outcome"] for r in report] == ["applied"] * 4


def test_a_decision_on_a_changed_or_missing_record_is_reported_not_applied():
    tasks = export_tasks(records(), CORPUS, "label-studio")
    annotated(tasks[0], "reject")
    annotated(tasks[1], "correct", text="Triage: refunds")
    decisions, _ = decisions_from_label_studio(tasks, "ls.json")
    changed = records().assign(prompt=lambda f: f["prompt"].where(f["id"] != "a", "reset my password now"))
    labeled, quarantine, report = apply_decisions(changed[changed["id"] != "b"], decisions)
    assert quarantine == [] and labeled["id"].tolist() == ["a", "c", "d"]
    assert {r["record_id"]: r["outcome"] for r in report} == {"a": "stale", "b": "not_in_input"}


def test_tasks_without_a_usable_decision_are_each_named():
    tasks = export_tasks(records(), CORPUS, "label-studio")
    annotated(tasks[0], "accept", cancelled=True)
    annotated(tasks[1], "correct")                                     # no corrected text
    annotated(tasks[2], "maybe")
    tasks.append({"data": {"prompt": "pasted by hand"}, "annotations": tasks[0]["annotations"]})
    decisions, problems = decisions_from_label_studio(tasks, "ls.json")
    assert decisions == []
    assert [p["outcome"] for p in problems] == ["unlabeled", "correct_without_text", "unknown_verdict", "unlabeled",
                                                "missing_provenance"]


def test_jsonl_export_round_trip_and_a_later_file_supersedes_an_earlier_one(tmp_path):
    lines = [json.loads(line) for line in map(json.dumps, export_tasks(records(), CORPUS, "jsonl"))]
    first = [dict(lines[0], verdict="reject", annotator="ann", note="off topic"), lines[1]]
    second = [dict(lines[0], verdict="correct", corrected_completion="Triage: security", annotator="lead")]
    (tmp_path / "one.jsonl").write_text("\n".join(map(json.dumps, first)) + "\n{broken\n")
    (tmp_path / "two.jsonl").write_text("\n".join(map(json.dumps, second)))
    decisions, problems = read_decisions([str(tmp_path / "one.jsonl"), str(tmp_path / "two.jsonl")])
    assert [p["outcome"] for p in problems] == ["unlabeled", "malformed_json"]
    labeled, quarantine, report = apply_decisions(records(), decisions)
    assert quarantine == [] and labeled.set_index("id").loc["a", "completion"] == "Triage: security"
    assert [(r["outcome"], r["annotator"]) for r in report] == [("superseded", "ann"), ("applied", "lead")]


def test_record_digest_covers_content_and_treats_missing_alike():
    record = records().to_dict("records")[0]
    assert record_digest(record) == record_digest(dict(record, input_line=99))          # not content
    assert record_digest(record) != record_digest(dict(record, completion="Triage: billing"))
    assert record_digest(dict(record, source=None)) == record_digest(dict(record, source=float("nan")))


def test_unreadable_label_files_say_what_to_export(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(AdapterOpsError, match="export the Label Studio project as JSON"):
        read_decisions([str(tmp_path / "x.json")])
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(AdapterOpsError, match=r"\.json\) or JSONL"):
        read_decisions([str(tmp_path / "x.csv")])
    with pytest.raises(AdapterOpsError, match="does not exist"):
        read_decisions([str(tmp_path / "missing.json")])
    with pytest.raises(AdapterOpsError, match="label format"):
        export_tasks(records(), CORPUS, "argilla")
