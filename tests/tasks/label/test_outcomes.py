"""A correction the contract would quarantine is reported as rejected, with its task, annotator and decision."""

import json

import pandas as pd

from tasks.label.labeling import export_tasks, label_file
from tasks.records.contract import load_contract
from tests.refs import fake_corpus

CORPUS = fake_corpus(pipeline="tickets", version=1, digest="sha256:abc")
GOOD = "Triage: account | priority: high | team: identity\nReply: We have reset your password; check your inbox."


def records():
    return pd.DataFrame({"id": ["a", "b", "c"], "source": ["email", "chat", "web-form"],
                         "timestamp": ["2026-01-01T10:00:00Z"] * 3,
                         "prompt": ["I cannot log in to my account since this morning"] * 3,
                         "completion": [GOOD] * 3, "input_file": ["x.jsonl"] * 3, "input_line": [1, 2, 3]})


def test_a_correction_that_breaks_the_contract_is_correction_rejected_and_named(tmp_path):
    records().to_parquet(tmp_path / "records.parquet")
    items = export_tasks(records(), CORPUS, "jsonl")
    items[0] |= {"verdict": "correct", "corrected_completion": GOOD.replace("high", "urgent"), "annotator": "kim"}
    items[1] |= {"verdict": "Correct", "corrected_completion": "Triage: account", "annotator": "lee@example.com"}
    items[2] |= {"verdict": "accept", "annotator": "kim"}
    (tmp_path / "labels.jsonl").write_text("\n".join(map(json.dumps, items)))
    result = label_file(str(tmp_path / "records.parquet"), [str(tmp_path / "labels.jsonl")], tmp_path,
                        load_contract("support_tickets"))
    report = pd.read_parquet(result.report).set_index("record_id")
    assert report["outcome"].to_dict() == {"a": "applied", "b": "correction_rejected", "c": "applied"}
    assert "lee@example.com" in report.loc["b", "detail"] and "completion" in report.loc["b", "detail"]
    assert result.outcomes == {"applied": 2, "correction_rejected": 1}
    assert pd.read_parquet(result.records)["id"].tolist() == ["a", "c"]
    quarantine = pd.read_parquet(result.quarantine)
    assert quarantine["id"].tolist() == ["b"] and quarantine.loc[0, "stage"] == "label"
    reason = quarantine.loc[0, "reason"]
    assert reason.startswith("correction_rejected: contract: ")
    assert f"(line 2 of {tmp_path / 'labels.jsonl'}; decision correct by lee@example.com)" in reason
    assert result.input == result.kept + result.quarantined


def test_without_a_contract_corrections_are_applied_as_before(tmp_path):
    records().to_parquet(tmp_path / "records.parquet")
    items = export_tasks(records(), CORPUS, "jsonl")
    items[1] |= {"verdict": "correct", "corrected_completion": "Triage: account", "annotator": "lee"}
    (tmp_path / "labels.jsonl").write_text("\n".join(map(json.dumps, items)))
    result = label_file(str(tmp_path / "records.parquet"), [str(tmp_path / "labels.jsonl")], tmp_path)
    assert result.applied["correct"] == 1 and result.quarantined == 0
