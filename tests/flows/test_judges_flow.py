"""LLM judges end to end: the owner labels a corpus version, the next one trains an adapter, and two judges behind
a real OpenAI-compatible HTTP server score it. The judge that agrees with the owner's labels (kappa 1) gates and
holds the release; the one that does not (kappa 0) is ignored by the gate, which says so; its scores, its unscored
examples and both kappas are in the MLflow eval run."""

import json
import os

import mlflow
import pytest
from typer.testing import CliRunner

from adapterops.config import parse_config
from cli.main import app
from tests.judge_server import running_judge

pytestmark = pytest.mark.slow

KEY_ENV, KEY = "ADAPTEROPS_TEST_JUDGE_KEY", "judge-key-4711"
YES, NO = '{"result": "yes", "rationale": "fine"}', '{"result": "no", "rationale": "not fine"}'
SCORERS = [{"kind": "regex_match", "name": "format", "pattern": "^Triage:"}, {"kind": "loss"},
           {"kind": "llm_judge", "name": "agrees", "judge": "guidelines", "guidelines": "AGREES-JUDGE: urgent tickets only."},
           {"kind": "llm_judge", "name": "contrary", "judge": "guidelines", "guidelines": "CONTRARY-JUDGE: anything."}]
# agrees: judges as the owner labels (accept only high-priority replies), and prefers the base's free text on the
# eval set; contrary: says no to every house-style reply and answers the base's in prose (malformed)
RULES = [{"when": ["AGREES-JUDGE"], "answer_has": ["| priority: high"], "reply": YES},
         {"when": ["AGREES-JUDGE"], "answer_has": ["Triage:"], "reply": NO},
         {"when": ["AGREES-JUDGE"], "reply": YES},
         {"when": ["CONTRARY-JUDGE"], "answer_has": ["Triage:"], "reply": NO},
         {"when": ["CONTRARY-JUDGE"], "reply": "I cannot say."}]
COMMON = {"name": "judged", "approval": "auto", "demo_records": 200, "train": {"max_steps": 100, "batch_size": 8, "replay_share": 0.25},
          "release": {"model_name": "judged-adapter", "staging": False}}


@pytest.fixture(scope="module")
def judged(prefect_harness, tmp_path_factory):
    from flows.curate import curate
    from flows.retrain import retrain

    folder = tmp_path_factory.mktemp("labels")
    curate(parse_config(COMMON))
    exported = CliRunner().invoke(app, ["label", "export", "1", "--name", "judged", "--out", str(folder / "tasks.json"),
                                        "--limit", "40"])
    assert exported.exit_code == 0, exported.output
    tasks = json.loads((folder / "tasks.json").read_text())
    for task in tasks:        # the owner accepts high-priority replies and rejects the rest
        verdict = "accept" if "| priority: high" in task["data"]["completion"] else "reject"
        result = [{"from_name": "verdict", "to_name": "completion", "type": "choices", "value": {"choices": [verdict]}}]
        if verdict == "reject":
            result.append({"from_name": "note", "to_name": "completion", "type": "textarea", "value": {"text": ["no"]}})
        task["annotations"] = [{"result": result, "was_cancelled": False, "completed_by": {"email": "owner@example.com"},
                                "updated_at": "2026-12-01T12:00:00Z"}]
    (folder / "annotated.json").write_text(json.dumps(tasks))
    accepted = sum(t["annotations"][0]["result"][0]["value"]["choices"] == ["accept"] for t in tasks)
    assert 3 <= accepted <= 37, accepted          # both verdicts occur, or kappa is undefined
    with running_judge() as server:
        server.script(RULES)
        os.environ[KEY_ENV] = KEY
        try:
            config = parse_config(COMMON | {"labels": [str(folder / "annotated.json")], "evaluation": {
                "max_new_tokens": 8, "scorers": SCORERS, "slices": [],
                "judge": {"base_url": server.base_url, "model": "test-judge", "api_key_env": KEY_ENV, "min_labels": 10}}})
            outcome = retrain(config)
        finally:
            del os.environ[KEY_ENV]
        return outcome, server.calls(), len(tasks)


def test_the_judge_that_agrees_with_the_owner_gates_and_the_other_is_ignored_saying_why(judged):
    outcome, _, labelled = judged
    judges = outcome["evaluation"].summary["judges"]
    assert judges["agrees"]["kappa"] == pytest.approx(1.0) and judges["agrees"]["gates"]
    assert judges["contrary"]["kappa"] == pytest.approx(0.0) and not judges["contrary"]["gates"]
    assert judges["agrees"]["labelled"] == labelled
    release = outcome["release"]
    assert not release.promoted
    failed = {c["score"] for c in release.checks if not c["passed"]}
    assert failed == {"agrees"}, release.reason       # the judge with the vote holds it; contrary has no check at all
    assert "contrary" not in {c["score"] for c in release.checks}
    why = f"judge contrary ignored by the gate: kappa 0.00 < evaluation.judge.min_kappa 0.60 on {labelled} labelled examples"
    assert why in release.reason and why in release.notes


def test_scores_unscored_counts_and_kappa_are_in_the_eval_run_and_the_key_only_in_the_header(judged):
    outcome, calls, labelled = judged
    evaluation = outcome["evaluation"]
    run = mlflow.get_run(evaluation.run_id)
    assert run.data.metrics["eval.judge.agrees.kappa"] == pytest.approx(1.0)
    assert run.data.metrics["eval.judge.contrary.kappa"] == pytest.approx(0.0)
    assert run.data.metrics["eval.judge.contrary.unscored"] == evaluation.examples     # every base answer: malformed
    assert run.data.metrics["eval.judge.agrees.unscored"] == 0
    assert run.data.metrics["eval.judge.calls"] == len(calls) == 2 * labelled + 2 * 2 * evaluation.examples
    assert run.data.params["eval.judge.model"] == "test-judge"
    assert {c["authorization"] for c in calls} == {f"Bearer {KEY}"}
    assert KEY not in json.dumps([run.data.params, run.data.tags, evaluation.summary])
    client = mlflow.MlflowClient()
    table = client.load_table(run.info.experiment_id, "evaluation/examples.json", run_ids=[run.info.run_id])
    assert {"base_agrees", "candidate_agrees", "candidate_agrees_why", "base_contrary", "base_contrary_why"} <= set(table.columns)
    assert not any("." in c for c in table.columns)
    assert set(table["base_agrees"]) == {1.0} and table["base_contrary"].isna().all()
    assert set(table["base_contrary_why"]) == {"malformed: 'I cannot say.'"}
    assert evaluation.summary["judges"]["contrary"]["unscored"]["base"] == {"malformed": evaluation.examples}
