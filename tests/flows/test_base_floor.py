"""The base is the floor: an adapter clearly worse than the un-fine-tuned base on a declared score is held by the
default gate, with no production version to compare with; the owner's waiver, named in the config, lets it through
and shows in the release decision."""

import mlflow
import pytest

from adapterops.config import parse_config

pytestmark = pytest.mark.slow   # trains adapters through the whole flow: the slow lane

# The owner declares a score the base wins by construction: answers that do NOT open in the house style. The tiny
# random base never writes "Triage:", the trained adapter does; the loss still improves, as the default gate wants.
SCORERS = [{"kind": "regex_match", "name": "free_form", "pattern": r"^(?!Triage:)"}, {"kind": "loss"}]
# Short: the house-style opening is the first thing the adapter learns; 8 tokens show whether an answer opens with it.
COMMON = {"name": "floor", "approval": "auto", "demo_records": 200, "train": {"max_steps": 100, "batch_size": 8, "replay_share": 0.25},
          "evaluation": {"max_new_tokens": 8, "scorers": SCORERS, "slices": []},
          "release": {"model_name": "floor-adapter", "staging": False}}


@pytest.fixture(scope="module")
def worse_than_base(prefect_harness):
    from flows.retrain import retrain

    return retrain(parse_config(COMMON))


def test_a_score_worse_than_the_base_holds_the_release_without_production(worse_than_base):
    evaluation, release = worse_than_base["evaluation"], worse_than_base["release"]
    assert evaluation.production_version is None
    assert evaluation.summary["vs_base"]["free_form"]["high"] < 0       # clearly worse than the base
    assert evaluation.summary["vs_base"]["loss"]["low"] > 0             # while the loss improved
    assert not release.promoted
    failed = [c for c in release.checks if not c["passed"]]
    assert [(c["score"], c["against"], c["bound"]) for c in failed] == [("free_form", "base", "upper")]
    assert "free_form (overall) vs base: upper bound" in release.reason
    client = mlflow.MlflowClient()
    version = client.get_model_version("floor-adapter", worse_than_base["adapter"].version)
    assert version.tags["release.decision"] == "held" and "production" not in version.aliases


def test_the_owners_waiver_names_the_score_and_reason_and_shows_in_the_decision(worse_than_base):
    from flows.release import release

    waived = parse_config(COMMON | {"release": COMMON["release"] | {
        "waivers": [{"score": "free_form", "reason": "replies open in the house style on purpose"}]}})
    decision = release(waived, worse_than_base["adapter"], worse_than_base["evaluation"])
    assert decision.promoted, decision.reason
    assert "waived by the owner: free_form worse than the base" in decision.reason
    assert "replies open in the house style on purpose" in decision.reason
    (check,) = [c for c in decision.checks if c.get("waived")]
    assert check["score"] == "free_form" and check["waived"] == "replies open in the house style on purpose"
    history = mlflow.MlflowClient().get_model_version_by_alias("floor-adapter", "production")
    assert str(history.version) == worse_than_base["adapter"].version
