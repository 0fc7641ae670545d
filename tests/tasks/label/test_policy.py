"""Several annotators per task: each policy settles or disputes, every annotation is kept, agreement is measured."""

import json

import pytest

from adapterops.errors import AdapterOpsError
from tasks.label.label_studio import new_tasks, parse_project, resolve_annotators, server, user_names
from tasks.label.labeling import Decision, annotations_from_label_studio, read_decisions
from tasks.label.policy import agreement, agreement_by_round, agreement_metrics, disputed_tasks, settle


def vote(record, verdict, who, when, text=None, file="round1.json", note=""):
    return Decision(record, f"sha256:{record}", "sha256:corpus", verdict, text, who, when, note, file, task=f"t-{record}")


TWO_AGREE_ONE_NOT = [vote("a", "accept", "ann@x", "1"), vote("a", "reject", "bob@x", "2", note="off topic"),
                     vote("a", "accept", "cy@x", "3")]
SPLIT = [vote("b", "accept", "ann@x", "1"), vote("b", "reject", "bob@x", "2")]


def outcomes(rows):
    return sorted((r["record_id"], r["annotator"], r["outcome"]) for r in rows)


def test_latest_applies_the_last_updated_annotation_and_keeps_the_others():
    settled, rows = settle(SPLIT, "latest")
    assert [(d.record_id, d.annotator) for d in settled] == [("b", "bob@x")]
    assert outcomes(rows) == [("b", "ann@x", "overruled")]


def test_majority_settles_on_more_than_half_and_disputes_a_tie():
    settled, rows = settle(TWO_AGREE_ONE_NOT + SPLIT, "majority")
    assert [(d.record_id, d.verdict, d.annotator) for d in settled] == [("a", "accept", "cy@x")]
    assert outcomes(rows) == [("a", "ann@x", "agreed"), ("a", "bob@x", "overruled"),
                              ("b", "ann@x", "disputed"), ("b", "bob@x", "disputed")]


def test_unanimous_disputes_any_disagreement_and_corrections_must_say_the_same():
    same = [vote("c", "correct", "ann@x", "1", text="Triage:  billing"), vote("c", "correct", "bob@x", "2", text="Triage: billing")]
    differ = [vote("d", "correct", "ann@x", "1", text="Triage: billing"), vote("d", "correct", "bob@x", "2", text="Triage: refunds")]
    settled, rows = settle(TWO_AGREE_ONE_NOT + same + differ, "unanimous")
    assert [d.record_id for d in settled] == ["c"]          # whitespace aside the corrections agree
    assert {r["record_id"] for r in rows if r["outcome"] == "disputed"} == {"a", "d"}


def test_owner_wins_the_reviewers_decision_settles_else_all_must_agree():
    settled, rows = settle(TWO_AGREE_ONE_NOT + SPLIT + [vote("e", "accept", "ann@x", "1")], "owner_wins", "BOB@x")
    assert [(d.record_id, d.verdict, d.annotator) for d in settled] == [("a", "reject", "bob@x"), ("b", "reject", "bob@x"),
                                                                     ("e", "accept", "ann@x")]
    settled, rows = settle(TWO_AGREE_ONE_NOT, "owner_wins", "dana@x")
    assert settled == [] and "waiting for reviewer dana@x" in rows[0]["detail"]


def test_a_single_annotation_settles_under_every_policy():
    for policy in ("latest", "majority", "owner_wins", "unanimous"):
        settled, rows = settle([vote("f", "reject", "ann@x", "1")], policy, "bob@x")
        assert [d.record_id for d in settled] == ["f"] and rows == []


def test_disputed_tasks_name_the_record_task_and_each_verdict():
    _, rows = settle(SPLIT, "unanimous")
    assert disputed_tasks(rows) == [{"record_id": "b", "task": "t-b", "file": "round1.json",
                                     "verdicts": ["accept by ann@x", "reject by bob@x"]}]


def test_agreement_of_two_annotators_is_cohens_kappa_with_counts_per_annotator():
    votes = []
    for i, (x, y) in enumerate([("accept", "accept"), ("reject", "reject"), ("accept", "reject"), ("correct", "correct")]):
        votes += [vote(f"r{i}", x, "ann@x", "1", text="t"), vote(f"r{i}", y, "bob@x", "2", text="t")]
    result = agreement(votes)
    assert result["annotators"] == {"ann@x": {"accept": 2, "reject": 1, "correct": 1},
                                    "bob@x": {"accept": 1, "reject": 2, "correct": 1}}
    assert result["overall"]["method"] == "cohen_kappa" and result["overall"]["agreement"] == 0.75
    assert result["overall"]["value"] == pytest.approx(0.6364, abs=1e-4)      # (0.75 - 0.3125) / (1 - 0.3125)
    assert result["pairwise"][0] | {"cohen_kappa": None} == {"annotators": ["ann@x", "bob@x"], "tasks": 4,
                                                              "agreement": 0.75, "cohen_kappa": None}


def test_agreement_of_three_annotators_is_krippendorffs_alpha_and_undefined_cases_are_none():
    result = agreement(TWO_AGREE_ONE_NOT + [vote("g", "reject", "ann@x", "1"), vote("g", "reject", "bob@x", "1"),
                                            vote("g", "reject", "cy@x", "1")])
    assert result["overall"]["method"] == "krippendorff_alpha"
    assert result["overall"]["value"] == pytest.approx(0.375)     # 1 - D_o / D_e = 1 - (2/6) / (16/30)
    assert len(result["pairwise"]) == 3
    same = agreement([vote("h", "accept", "ann@x", "1"), vote("h", "accept", "bob@x", "1")])
    assert same["overall"]["value"] is None and same["overall"]["agreement"] == 1.0
    alone = agreement([vote("h", "accept", "ann@x", "1")])
    assert alone["overall"] == {"method": None, "value": None, "tasks": 0, "agreement": None}


def test_agreement_is_per_round_and_becomes_mlflow_metrics():
    rounds = agreement_by_round(SPLIT + [vote("i", "accept", "ann@x", "1", file="round2.json")])
    assert [r["file"] for r in rounds] == ["round1.json", "round2.json"]
    metrics = agreement_metrics(rounds, disputed=1)
    assert metrics["labels.disputed_tasks"] == 1 and metrics["labels.round1.annotators"] == 2
    assert metrics["labels.round1.agreement"] == 0.0 and "labels.round2.agreement" not in metrics


def test_a_label_studio_export_keeps_every_annotation_with_its_annotator_and_unlabeled_tasks(tmp_path):
    data = {"record_id": "a", "record_digest": "sha256:a", "corpus_pipeline": "p", "corpus_version": 1,
            "corpus_digest": "sha256:c", "prompt": "p", "completion": "c"}

    def annotation(verdict, who, when, cancelled=False):
        return {"result": [{"from_name": "verdict", "value": {"choices": [verdict]}}], "completed_by": who,
                "updated_at": when, "was_cancelled": cancelled}

    tasks = [{"id": 5, "data": data, "annotations": [annotation("accept", 2, "1"), annotation("reject", 3, "2"),
                                                      annotation("reject", 2, "3", cancelled=True)]},
             {"id": 6, "data": data | {"record_id": "b", "record_digest": "sha256:b"}, "annotations": []}]
    tasks = resolve_annotators(tasks, user_names([{"id": 2, "email": "ann@x"}, {"id": 4, "username": "dee"}]))
    annotations, problems = annotations_from_label_studio(tasks, "pulled.json")
    assert [(a.annotator, a.verdict, a.task) for a in annotations] == [("ann@x", "accept", "5"), ("3", "reject", "5")]
    assert [(p["record_id"], p["outcome"]) for p in problems] == [("b", "unlabeled")]
    path = tmp_path / "pulled.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    settled, rows = read_decisions([str(path)], policy="unanimous")
    assert settled == [] and [r["outcome"] for r in rows] == ["unlabeled", "disputed", "disputed"]


def test_push_adds_only_records_the_project_does_not_hold():
    tasks = [{"data": {"record_digest": d}} for d in ("sha256:1", "sha256:2", "sha256:2", "sha256:3")]
    assert [t["data"]["record_digest"] for t in new_tasks(tasks, {"sha256:1"})] == ["sha256:2", "sha256:3"]


def test_project_references_and_the_token_from_the_environment_only():
    assert parse_project("12").id == 12
    ref = parse_project("http://ls.internal:8080/projects/7/data?tab=1")
    assert (ref.url, ref.id) == ("http://ls.internal:8080", 7)
    assert parse_project("tickets round 3").title == "tickets round 3"
    with pytest.raises(AdapterOpsError, match="LABEL_STUDIO_API_KEY"):
        server(parse_project("12"), "http://ls:8080", environ={})
    assert server(ref, None, environ={"LABEL_STUDIO_API_KEY": "k", "LABEL_STUDIO_URL": "http://other"}) == \
        ("http://ls.internal:8080", "k")
    with pytest.raises(AdapterOpsError, match="LABEL_STUDIO_URL"):
        server(parse_project("12"), None, environ={"LABEL_STUDIO_API_KEY": "k"})


def test_an_unreachable_server_is_one_line_that_names_it():
    from tasks.label.label_studio import connect, find_project

    url = "http://127.0.0.1:9"          # discard port: nothing listens
    with pytest.raises(AdapterOpsError, match="Label Studio at http://127.0.0.1:9 did not answer"):
        find_project(connect(url, "token"), url, parse_project("3"))
