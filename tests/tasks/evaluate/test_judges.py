"""LLM judges over real HTTP: the official openai client against a FastAPI judge in a subprocess (tests/judge_server.py).

Verdicts flow into scores; malformed answers, timeouts and server errors leave the example unscored and counted;
the call budget holds, retries included; the key travels from the named variable as a Bearer header; a judge
earns its vote by its kappa with the owner's labels, and the gate ignores one that has not, saying why.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from adapterops.config import EvaluationConfig, GateRule, JudgeConfig, ScorerSpec, parse_config
from adapterops.errors import AdapterOpsError
from adapterops.storage import file_digest
from tasks.evaluate.agreement import Labelled, cohen_kappa, gate_standing, judge_agreement, owner_labels
from tasks.evaluate.judges import JudgeClient, judge_pairwise, judge_single, unscored_counts
from tasks.evaluate.run import example_table, summarise
from tasks.release.gate import decide
from tests.judge_server import running_judge

YES, NO = '{"result": "yes", "rationale": "follows them"}', '{"result": "no", "rationale": "does not"}'
POLITE = ScorerSpec(kind="llm_judge", name="polite", judge="guidelines", guidelines="Greets the customer.")
RULES = [{"when": ["Answer:\nGOOD"], "reply": YES}, {"when": ["Answer:\nBAD"], "reply": NO},
         {"when": ["Answer:\nPROSE"], "reply": "Yes, I think this answer is fine."},
         {"when": ["Answer:\nMAYBE"], "reply": '```json\n{"result": "maybe"}\n```'},
         {"when": ["Answer:\nSLOW"], "sleep": 3, "reply": YES}, {"when": ["Answer:\nDOWN"], "status": 500}]


@pytest.fixture(scope="module")
def judge():
    with running_judge() as server:
        yield server


@pytest.fixture
def client(judge, monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", "judge-secret-7")
    judge.script(RULES)

    def make(**settings) -> JudgeClient:
        return JudgeClient(JudgeConfig(base_url=judge.base_url, model="judge-model", api_key_env="JUDGE_TEST_KEY",
                                       **({"timeout_seconds": 0.5, "retries": 1} | settings)))
    return make


def test_verdicts_are_scores_and_the_key_is_sent_as_a_bearer_header(judge, client):
    verdicts = judge_single(client(), POLITE, ["Hi", "Hi", "Hi"], ["GOOD one", "BAD one", "GOOD two"], [None] * 3)
    assert [v.value for v in verdicts] == [1.0, 0.0, 1.0] and verdicts[1].why == "does not"
    calls = judge.calls()
    assert len(calls) == 3 and {c["authorization"] for c in calls} == {"Bearer judge-secret-7"}
    assert {c["model"] for c in calls} == {"judge-model"} and "Greets the customer." in calls[0]["user"]


def test_malformed_answers_timeouts_and_errors_are_unscored_and_counted_never_scored(judge, client):
    answers = ["GOOD", "PROSE", "MAYBE", "SLOW", "DOWN", "BAD"]
    verdicts = judge_single(client(), POLITE, ["q"] * 6, answers, [None] * 6)
    values = [v.value for v in verdicts]
    assert values[0] == 1.0 and values[5] == 0.0 and all(math.isnan(v) for v in values[1:5])
    assert unscored_counts(verdicts) == {"malformed": 2, "timeout": 1, "failed": 1}
    assert verdicts[1].why.startswith("malformed: ") and "Yes, I think" in verdicts[1].why
    # the timeout and the server error were retried once (retries: 1); the others were asked once
    users = [c["user"] for c in judge.calls()]
    assert sum("Answer:\nSLOW" in u for u in users) == 2 and sum("Answer:\nDOWN" in u for u in users) == 2
    assert len(users) == 8


def test_unscored_examples_count_for_neither_side_of_the_paired_interval():
    scores = {"base": {"polite": np.array([0.0, 0.0, np.nan, 0.0])},
              "candidate": {"polite": np.array([1.0, 1.0, 1.0, np.nan])}}
    summary = summarise(scores, {"polite": True}, {}, EvaluationConfig(resamples=1000))
    assert summary["means"]["candidate"]["polite"] == 1.0 and summary["means"]["base"]["polite"] == 0.0
    assert summary["vs_base"]["polite"] == {"mean": 1.0, "low": 1.0, "high": 1.0}    # the two scored pairs only
    nothing = summarise({"base": {"polite": np.full(3, np.nan)}, "candidate": {"polite": np.ones(3)}},
                        {"polite": True}, {}, EvaluationConfig(resamples=1000))
    assert math.isnan(nothing["vs_base"]["polite"]["low"])                              # no pair: no rule passes it


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_call_budget_is_honoured_retries_included(judge, client, concurrency):
    verdicts = judge_single(client(max_calls=3, concurrency=concurrency), POLITE, ["q"] * 5, ["GOOD"] * 5, [None] * 5)
    assert sorted(v.value for v in verdicts if v.reason is None) == [1.0] * 3
    assert unscored_counts(verdicts) == {"over_budget": 2} and len(judge.calls()) == 3
    judge.script(RULES)
    retried = judge_single(client(max_calls=3), POLITE, ["q"] * 2, ["DOWN", "GOOD"], [None] * 2)
    assert [v.reason for v in retried] == ["failed", None] and len(judge.calls()) == 3


def test_the_key_comes_from_the_named_variable_never_from_the_config(judge, monkeypatch):
    monkeypatch.delenv("JUDGE_UNSET_KEY", raising=False)
    with pytest.raises(AdapterOpsError, match="JUDGE_UNSET_KEY, which is not set"):
        JudgeClient(JudgeConfig(base_url=judge.base_url, model="m", api_key_env="JUDGE_UNSET_KEY"))
    with pytest.raises(AdapterOpsError, match="keys do not belong in files"):
        parse_config({"evaluation": {"judge": {"base_url": judge.base_url, "model": "m", "api_key": "sk-live-1"}}})
    with pytest.raises(AdapterOpsError, match="evaluation.judge.api_key_env.*looks like a key"):
        parse_config({"evaluation": {"judge": {"base_url": judge.base_url, "model": "m", "api_key_env": "sk-proj-9f8e7d"}}})
    with pytest.raises(AdapterOpsError, match="evaluation.judge_model is replaced by evaluation.judge"):
        parse_config({"evaluation": {"judge_model": "openai:/gpt-4o-mini"}})


def test_a_refused_key_stops_with_one_line_not_a_column_of_unscored(judge, client):
    judge.script([{"when": ["Answer:"], "status": 401}])
    with pytest.raises(AdapterOpsError, match="refused the key in JUDGE_TEST_KEY \\(HTTP 401\\)"):
        judge_single(client(), POLITE, ["q"], ["GOOD"], [None])


def test_pairwise_scores_the_candidate_whichever_side_it_is_shown_on(judge, client):
    judge.script([{"when": ["Answer A:"], "better_if": "HOUSE"}])
    spec = ScorerSpec(kind="llm_judge", name="better", judge="pairwise")
    ids = [f"t{i}" for i in range(8)]
    candidate = ["HOUSE style"] * 4 + ["plain"] * 4
    verdicts = judge_pairwise(client(), spec, ids, ["q"] * 8, candidate, ["plain"] * 4 + ["HOUSE style"] * 4)
    assert [v.value for v in verdicts] == [1.0] * 4 + [0.0] * 4
    shown_first = [c["user"].split("Answer A:\n")[1].startswith("HOUSE") for c in judge.calls()]
    assert 0 < sum(shown_first) < 8        # both sides were used


def labelled(n_accept: int, n_reject: int) -> list[Labelled]:
    accepted = [Labelled(f"a{i}", "q", f"GOOD {i}", "accept", None) for i in range(n_accept)]
    return accepted + [Labelled(f"r{i}", "q", f"BAD {i}", "reject", None) for i in range(n_reject)]


def test_kappa_is_measured_on_the_owners_labels(judge, client):
    agreeing = judge_agreement(client(), POLITE, labelled(12, 10))
    assert agreeing["kappa"] == pytest.approx(1.0) and agreeing["scored_labels"] == 22
    judge.script([{"when": ["Answer:"], "reply": YES}])             # says yes to everything
    lenient = judge_agreement(client(), POLITE, labelled(12, 10))
    assert lenient["kappa"] == pytest.approx(cohen_kappa(["yes"] * 12 + ["no"] * 10, ["yes"] * 22)) == 0.0
    settings = JudgeConfig(min_kappa=0.6, min_labels=20)
    assert gate_standing(agreeing, settings)["gates"] and not gate_standing(lenient, settings)["gates"]
    assert gate_standing(lenient, settings)["reason"] == "kappa 0.00 < evaluation.judge.min_kappa 0.60 on 22 labelled examples"
    few = gate_standing(judge_agreement(client(), POLITE, labelled(3, 3)), settings)
    assert not few["gates"] and "6 of 6 labelled examples scored, evaluation.judge.min_labels is 20" in few["reason"]


def test_a_pairwise_judge_is_measured_on_the_owners_corrections(judge, client):
    judge.script([{"when": ["Answer A:"], "better_if": "FIXED"}])
    corrections = [Labelled(f"c{i}", "q", f"wrong {i}", "correct", f"FIXED {i}") for i in range(10)]
    figures = judge_agreement(client(), ScorerSpec(kind="llm_judge", name="better", judge="pairwise"), corrections)
    assert figures["labelled"] == 10 and figures["agreed"] == 10 and figures["kappa"] == pytest.approx(1.0)


def summary_with(judges: dict) -> dict:
    rng = np.random.default_rng(1)
    # the candidate wins on format; the judge finds it much less polite than the base
    scores = {"base": {"format": np.zeros(40), "polite": np.ones(40)},
              "candidate": {"format": np.ones(40), "polite": (rng.random(40) < 0.2).astype(float)}}
    summary = summarise(scores, {"format": True, "polite": True}, {}, EvaluationConfig(resamples=1000))
    return summary | {"judges": judges}


def judge_entry(gates: bool, reason: str, share: float = 1.0) -> dict:
    return {"polite": {"judge": "guidelines", "against": None, "gates": gates, "reason": reason, "kappa": 0.1,
                       "labelled": 30, "scored_labels": 30, "scored_share": share, "min_scored": 0.9, "unscored": {}}}


RULES_GATE = [GateRule(score="*", must_beat_base=0.0)]


def test_the_gate_ignores_a_judge_below_the_agreement_and_says_why():
    decision = decide(RULES_GATE, summary_with(judge_entry(False, "kappa 0.10 < evaluation.judge.min_kappa 0.60")))
    assert decision.promote and {c.score for c in decision.checks} == {"format"}    # the judge would have held it
    assert "judge polite ignored by the gate: kappa 0.10 < evaluation.judge.min_kappa 0.60" in decision.reason()
    assert decision.as_dict()["ignored"] == ["judge polite ignored by the gate: kappa 0.10 < evaluation.judge.min_kappa 0.60"]


def test_a_judge_that_earned_its_vote_gates_and_must_have_scored_enough():
    decision = decide(RULES_GATE, summary_with(judge_entry(True, "kappa 0.90 >= 0.60")))
    assert not decision.promote and {c.score for c in decision.failed} == {"polite"}    # the judge holds it
    assert "polite (overall) vs base" in decision.reason() and "ignored" not in decision.reason()
    few = decide([GateRule(score="format", must_beat_base=0.0), GateRule(score="polite", must_beat_base=-1.0)],
                 summary_with(judge_entry(True, "kappa 0.90 >= 0.60", share=0.5)))
    assert not few.promote and "polite: 50% of examples scored by the judge, needs >= 90%" in few.reason()


def test_owner_labels_come_from_the_version_with_the_texts_judged_and_digests_checked(tmp_path):
    rows = [{"record_id": f"r{i}", "record_digest": f"sha256:{i}", "corpus_pipeline": "p", "corpus_version": 1,
             "corpus_digest": "sha256:c", "prompt": f"ticket {i}", "completion": f"reply {i}",
             "verdict": v, "corrected_completion": "better" if v == "correct" else None, "note": None, "annotator": "lee"}
            for i, v in enumerate(["accept", "reject", "correct"])]
    labels = tmp_path / "review.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = pd.DataFrame([{"record_id": r["record_id"], "record_digest": r["record_digest"], "verdict": r["verdict"],
                            "outcome": o, "completion": r["corrected_completion"]}
                           for r, o in zip(rows, ["applied", "applied", "correction_rejected"])]
                          + [{"record_id": "r9", "record_digest": "x", "verdict": "accept", "outcome": "stale"}])
    report.to_parquet(tmp_path / "labels.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"labels": [{"path": str(labels), "digest": file_digest(labels)}]}))
    found, missing = owner_labels(tmp_path)
    assert missing == "" and [(x.record_id, x.verdict, x.answer, x.correction) for x in found] == [
        ("r0", "accept", "reply 0", None), ("r1", "reject", "reply 1", None), ("r2", "correct", "reply 2", "better")]
    labels.write_text(labels.read_text() + "\n")                      # changed since curation: not used
    assert owner_labels(tmp_path) == ([], f"label file {labels} changed since curation")


def test_the_example_table_carries_judge_scores_and_reasons_in_flat_columns():
    records = pd.DataFrame({"id": ["t0", "t1"], "prompt": ["p0", "p1"], "completion": ["r0", "r1"], "source": ["a", "b"]})
    scores = {"base": {"polite": np.array([0.0, np.nan])}, "candidate": {"polite": np.array([1.0, np.nan])}}
    notes = {"polite": {"base": ["does not", "timeout"], "candidate": ["follows them", "over_budget"]}}
    table = example_table(records, {"base": ["x", "y"], "candidate": ["u", "v"]}, scores, notes)
    assert list(table.columns) == ["id", "base_polite", "candidate_polite", "prompt", "reference", "base_answer",
                                   "candidate_answer", "base_polite_why", "candidate_polite_why", "source"]
    assert table["candidate_polite"].tolist()[0] == 1.0 and math.isnan(table["candidate_polite"].tolist()[1])
    assert table["candidate_polite_why"].tolist() == ["follows them", "over_budget"]


def test_an_empty_interval_fails_its_rule_even_once_stored_as_null():
    summary = summary_with(judge_entry(True, "kappa 0.90 >= 0.60"))
    summary["vs_base"]["polite"] = {"mean": None, "low": None, "high": None}     # a NaN interval after a JSON round trip
    decision = decide([GateRule(score="polite", must_beat_base=-1.0)], summary)
    assert not decision.promote and [c.score for c in decision.failed] == ["polite"]


def test_a_pairwise_judge_compares_the_candidate_with_production_and_only_production_rules_read_it(judge, client):
    from tasks.evaluate.judges import judge_answers

    judge.script([{"when": ["Answer A:"], "better_if": "HOUSE"}])
    spec = ScorerSpec(kind="llm_judge", name="better", judge="pairwise")
    n = 30
    records = pd.DataFrame({"id": [f"t{i}" for i in range(n)], "prompt": ["q"] * n, "completion": ["r"] * n})
    answers = {"base": ["x"] * n, "candidate": ["HOUSE"] * 20 + ["plain"] * 10, "production": ["plain"] * 20 + ["HOUSE"] * 10}
    scores = {who: {"format": np.ones(n)} for who in answers}
    counts, notes = judge_answers(client(), [spec], records, answers, scores)
    assert scores["candidate"]["better"].tolist() == [1.0] * 20 + [0.0] * 10
    assert scores["production"]["better"].tolist() == [0.0] * 20 + [1.0] * 10 and np.isnan(scores["base"]["better"]).all()
    assert counts["better"]["against"] == "production" and counts["better"]["scored_share"] == 1.0
    assert set(notes["better"]) == {"candidate"} and len(judge.calls()) == n        # one call per example
    summary = summarise(scores, {"format": True, "better": True}, {}, EvaluationConfig(resamples=1000))
    summary["judges"] = {"better": gate_standing({"labelled": 25, "scored_labels": 25, "kappa": 0.9}, JudgeConfig())
                         | counts["better"] | {"min_scored": 0.9}}
    decision = decide([GateRule(score="*", max_regression=0.05, max_regression_vs_base=0.0)], summary)
    checked = {(c.score, c.against) for c in decision.checks}
    assert ("better", "production") in checked and ("better", "base") not in checked     # no base comparison was made
    assert decision.promote, decision.reason()             # net win rate +0.33 against production
