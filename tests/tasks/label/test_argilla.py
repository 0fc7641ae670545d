"""Argilla datasets on disk, checked with the argilla SDK's own classes (no server: a client that never connects)."""

import json
import uuid

import pandas as pd
import pytest

from tasks.label.files import read_label_file
from tasks.label.labeling import export_file, read_decisions
from tests.refs import fake_corpus

rg = pytest.importorskip("argilla", reason="the argilla SDK is not installed (pip install -e '.[labeling]')")
from argilla.datasets import Dataset  # noqa: E402  (after importorskip)
from argilla.records._io import GenericIO, JsonIO  # noqa: E402

CORPUS = fake_corpus(pipeline="tickets", version=2, digest="sha256:abc")
KIM, LEE = uuid.UUID(int=1), uuid.UUID(int=2)


@pytest.fixture
def offline_client():
    """The SDK's client without its connection check: building settings, records and datasets needs one."""
    class Offline(rg.Argilla):
        def _validate_connection(self):
            pass

    previous = rg.Argilla._default_client
    rg.Argilla._default_client = client = Offline(api_url="http://127.0.0.1:9", api_key="never-used")
    yield client
    rg.Argilla._default_client = previous


def exported(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pd.DataFrame({"id": ["a", "b", "c"], "source": ["email"] * 3, "timestamp": ["2026-01-01"] * 3,
                  "prompt": ["reset my password", "refund please", "card declined"],
                  "completion": ["Triage: account", "Triage: billing", "Triage: payments"]}
                 ).to_parquet(corpus / "train.parquet")
    out = tmp_path / "argilla"
    export_file(str(corpus), CORPUS, "argilla", out, hint="Triage: <queue> | priority: <level>")
    return out


def test_the_export_is_the_sdk_layout_its_classes_load(tmp_path, offline_client):
    folder = exported(tmp_path)
    settings = rg.Settings.from_json(folder / ".argilla/settings.json")
    assert [f.name for f in settings.fields] == ["prompt", "completion"]
    assert [q.name for q in settings.questions] == ["verdict", "corrected_completion", "note"]
    assert settings.questions["verdict"].labels == ["accept", "correct", "reject"] and settings.questions["verdict"].required
    assert "Triage: <queue> | priority: <level>" in settings.questions["corrected_completion"].description
    assert {"record_digest", "corpus_digest", "corpus_version"} <= {m.name for m in settings.metadata}
    settings.to_json(tmp_path / "again.json")                       # what the SDK writes back is what we wrote
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((folder / ".argilla/settings.json").read_text())
    model = Dataset._load_dataset_model(folder / ".argilla/dataset.json")
    assert model.name == "tickets-v2"
    dataset = Dataset(name=model.name, settings=settings, client=offline_client,
                      workspace=rg.Workspace(name="team", id=uuid.UUID(int=7), client=offline_client))
    (tmp_path / "sdk").mkdir()
    dataset.to_disk(str(tmp_path / "sdk"), with_records=False)     # the SDK's own layout of the same dataset
    ours, sdk = folder / ".argilla", tmp_path / "sdk/.argilla"
    assert json.loads((sdk / "settings.json").read_text()) == json.loads((ours / "settings.json").read_text())
    assert json.loads((sdk / "dataset.json").read_text()).keys() == json.loads((ours / "dataset.json").read_text()).keys()
    records = [rg.Record.from_dict(r) for r in json.loads((folder / "records.json").read_text())]
    assert [r.id for r in records] == ["a", "b", "c"]
    assert records[1].metadata["record_digest"].startswith("sha256:") and records[1].metadata["corpus_version"] == 2
    assert records[1].suggestions["corrected_completion"].value == "Triage: billing"    # the box starts filled


def annotate(folder):
    records = [rg.Record.from_dict(r) for r in json.loads((folder / "records.json").read_text())]
    records[0].responses.add(rg.Response("verdict", "accept", user_id=KIM, status="submitted"))
    records[1].responses.add(rg.Response("verdict", "correct", user_id=KIM, status="submitted"))
    records[1].responses.add(rg.Response("corrected_completion", "Triage: refunds", user_id=KIM, status="submitted"))
    records[2].responses.add(rg.Response("verdict", "reject", user_id=LEE, status="submitted"))
    records[2].responses.add(rg.Response("note", "test ticket", user_id=LEE, status="submitted"))
    return records


def test_responses_exported_by_the_sdk_come_back_as_decisions(tmp_path, offline_client):
    folder = exported(tmp_path)
    records = annotate(folder)
    answered = tmp_path / "answered"
    answered.mkdir()
    JsonIO.to_json(records, answered / "records.json")     # what dataset.records.to_json and Dataset.to_disk write
    for path in (answered, answered / "records.json"):
        decisions, problems = read_decisions([str(path)])
        assert problems == []
        assert [(d.record_id, d.verdict, d.completion, d.annotator, d.note) for d in decisions] == [
            ("a", "accept", None, str(KIM), ""), ("b", "correct", "Triage: refunds", str(KIM), ""),
            ("c", "reject", None, str(LEE), "test ticket")]
        assert decisions[1].where == "record b, line 1" and decisions[1].corpus_digest == "sha256:abc"


def test_flattened_export_and_drafts(tmp_path, offline_client):
    folder = exported(tmp_path)
    records = annotate(folder)
    records[0].responses.add(rg.Response("verdict", "reject", user_id=LEE, status="draft"))   # not a decision yet
    (tmp_path / "flat.json").write_text(json.dumps(GenericIO.to_list(records, flatten=True), default=str))
    decisions, problems = read_decisions([str(tmp_path / "flat.json")])
    assert problems == [] and [(d.record_id, d.verdict, d.completion) for d in decisions] == [
        ("a", "accept", None), ("b", "correct", "Triage: refunds"), ("c", "reject", None)]
    tasks, _ = read_label_file(tmp_path / "flat.json")
    assert [a["completed_by"] for a in tasks[0]["annotations"]] == [str(KIM)]
    assert tasks[1]["data"]["record_digest"].startswith("sha256:") and tasks[1]["origin"]["format"] == "argilla"


def test_an_unanswered_dataset_is_every_task_unlabeled(tmp_path):
    folder = exported(tmp_path)
    decisions, problems = read_decisions([str(folder)])
    assert decisions == [] and [(p["record_id"], p["outcome"]) for p in problems] == [
        ("a", "unlabeled"), ("b", "unlabeled"), ("c", "unlabeled")]
