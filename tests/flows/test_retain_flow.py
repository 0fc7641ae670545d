"""What the adapter must not lose, through the whole flow on the demo's defaults: the demo adapter (a quarter of each
batch replays the base's general corpus) is promoted with its retain scores inside the default budget; the same
training without replay passes every workload check yet is held by the retain rules, which the decision names."""

import mlflow
import pytest

from adapterops.config import RETAIN_PREFIX, parse_config
from cli.commands.run import DEMO_SETTINGS

pytestmark = pytest.mark.slow   # two 200-step adapters on the demo's conversations: the slow lane


def demo_config(model_name: str, **train):
    """The built-in demo's settings under another pipeline name, staging off, training settings overridden."""
    return parse_config(DEMO_SETTINGS | {"name": "retain", "release": {"model_name": model_name, "staging": False},
                                         "train": DEMO_SETTINGS["train"] | train})


@pytest.fixture(scope="module")
def with_and_without_replay(prefect_harness):
    from flows.retrain import retrain

    replayed = retrain(demo_config("retain-demo"))         # staging has its own tests
    forgetful = retrain(demo_config("retain-forgetful", replay_share=0.0))
    return replayed, forgetful


def failed_checks(release) -> set[str]:
    return {c["score"] for c in release.checks if not c["passed"]}


def test_the_demo_adapter_keeps_what_the_base_could_do_and_is_promoted(with_and_without_replay):
    replayed, _ = with_and_without_replay
    summary, release = replayed["evaluation"].summary, replayed["release"]
    assert DEMO_SETTINGS["train"]["replay_share"] > 0
    assert release.promoted, release.reason
    retain_checks = [c for c in release.checks if c["score"].startswith(RETAIN_PREFIX)]
    assert {c["score"] for c in retain_checks} >= {"retain.kl", "retain.agreement", "retain.chrf"}
    assert all(c["passed"] for c in retain_checks)
    assert summary["retain"]["means"]["candidate"]["retain.kl"] <= 0.5 and summary["retain"]["means"]["base"]["retain.kl"] == 0
    assert summary["means"]["candidate"]["format"] > 0.8          # and it still learned the house format


def test_the_same_training_without_replay_is_held_by_the_retain_rules_alone(with_and_without_replay):
    replayed, forgetful = with_and_without_replay
    summary, release = forgetful["evaluation"].summary, forgetful["release"]
    assert forgetful["corpus"].digest == replayed["corpus"].digest          # the same approved corpus version
    assert forgetful["evaluation"].production_version is None
    assert not release.promoted
    failed = failed_checks(release)
    assert failed and all(score.startswith(RETAIN_PREFIX) for score in failed), failed
    assert "retain.kl" in failed and "retain.kl" in release.reason
    assert summary["retain"]["means"]["candidate"]["retain.kl"] > 0.5
    assert summary["means"]["candidate"]["format"] > 0.8                  # the workload was learned all the same
    client = mlflow.MlflowClient()
    version = client.get_model_version("retain-forgetful", forgetful["adapter"].version)
    assert version.tags["release.decision"] == "held" and "production" not in version.aliases


def test_the_eval_run_holds_both_models_retain_answers(with_and_without_replay):
    _, forgetful = with_and_without_replay
    run = mlflow.get_run(forgetful["evaluation"].run_id)
    assert run.data.tags["eval.retain.digest"].startswith("sha256:380f69fd")
    assert run.data.metrics["eval.candidate.retain.kl"] > 0.5
    client = mlflow.MlflowClient()
    table = client.load_table(run.info.experiment_id, "evaluation/retain.json", run_ids=[run.info.run_id])
    assert {"id", "base_answer", "candidate_answer", "base_chrf", "candidate_chrf"} <= set(table.columns)
    assert len(table) == 120 and (table["base_answer"] != table["candidate_answer"]).mean() > 0.5
