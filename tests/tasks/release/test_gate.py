import numpy as np
import pytest

from adapterops.config import EvaluationConfig, GateRule, parse_config
from adapterops.errors import AdapterOpsError
from tasks.evaluate.run import summarise
from tasks.evaluate.statistics import compare, resample_indices
from tasks.release.gate import decide

CFG = EvaluationConfig(resamples=2000, min_slice_size=5)
DIRECTIONS = {"field.triage": True, "loss": False}


def scores(triage, loss):
    return {"field.triage": np.asarray(triage, dtype=float), "loss": np.asarray(loss, dtype=float)}


def test_bootstrap_is_seeded_vectorised_and_paired():
    assert resample_indices(10, 1000, 3).shape == (1000, 10)
    assert np.array_equal(resample_indices(10, 1000, 3), resample_indices(10, 1000, 3))
    same = scores([1, 0, 1, 1], [2.0, 2.0, 2.0, 2.0])
    out = compare(same, same, DIRECTIONS, np.arange(4), 1000, 0, 0.95)
    assert out["field.triage"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    better = compare(scores([1] * 40, [1.0] * 40), scores([0] * 40, [2.0] * 40), DIRECTIONS, np.arange(40), 1000, 0, 0.95)
    assert better["loss"]["low"] == pytest.approx(1.0)   # lower loss is an improvement: the sign is flipped


def test_a_loss_improvement_never_outvotes_a_failing_task_score():
    n = 60
    rng = np.random.default_rng(1)
    production = scores(rng.random(n) < 0.9, np.full(n, 3.0))
    candidate = scores(rng.random(n) < 0.3, np.full(n, 2.0))      # lower loss, worse decisions
    base = scores(np.zeros(n), np.full(n, 5.0))
    summary = summarise({"base": base, "candidate": candidate, "production": production}, DIRECTIONS,
                        {"source": ["email", "chat"] * (n // 2)}, CFG)
    rules = [GateRule(score="field.*", must_beat_base=0.1, max_regression=0.03, slice_max_regression=0.1),
             GateRule(score="loss", must_beat_base=0.0, max_regression=0.0)]
    decision = decide(rules, summary)
    assert not decision.promote
    failed = {(c.score, c.scope, c.against) for c in decision.failed}
    assert ("field.triage", "overall", "production") in failed and ("field.triage", "slice source=email", "production") in failed
    assert all(c.passed for c in decision.checks if c.score == "loss")
    assert "field.triage (overall) vs production" in decision.reason()


def test_without_production_only_base_rules_apply_and_small_slices_are_not_judged():
    n = 30
    summary = summarise({"base": scores(np.zeros(n), np.full(n, 5.0)), "candidate": scores(np.ones(n), np.full(n, 2.0))},
                        DIRECTIONS, {"source": ["email"] * 27 + ["fax"] * 3}, CFG)
    assert summary["slices"]["source=fax"]["judged"] is False and "vs_base" not in summary["slices"]["source=fax"]
    decision = decide(parse_config({}).release.gate, summary)
    assert decision.promote and {c.against for c in decision.checks} == {"base"}
    assert "no production version yet" in decision.notes[0]


def test_a_rule_naming_a_missing_score_is_an_error():
    summary = summarise({"base": scores([0] * 10, [1.0] * 10), "candidate": scores([1] * 10, [1.0] * 10)}, DIRECTIONS, {}, CFG)
    with pytest.raises(AdapterOpsError, match="names score 'field.team'"):
        decide([GateRule(score="field.team", must_beat_base=0.0)], summary)


def _worse_length(n=60):
    """The candidate beats the base on triage and loss but its length_ratio is clearly worse (no production)."""
    rng = np.random.default_rng(2)
    directions = DIRECTIONS | {"length_ratio": True}
    base = scores(np.zeros(n), np.full(n, 5.0)) | {"length_ratio": rng.normal(0.9, 0.05, n)}
    candidate = scores(np.ones(n), np.full(n, 2.0)) | {"length_ratio": rng.normal(0.8, 0.05, n)}
    return summarise({"base": base, "candidate": candidate}, directions, {}, CFG)


def test_the_default_gate_holds_a_score_worse_than_the_base_without_production():
    summary = _worse_length()
    assert summary["vs_base"]["length_ratio"]["high"] < 0
    decision = decide(parse_config({}).release.gate, summary)
    assert not decision.promote
    (failed,) = decision.failed
    assert (failed.score, failed.against, failed.bound) == ("length_ratio", "base", "upper")
    assert "length_ratio (overall) vs base: upper bound" in decision.reason()
    # every declared score gets one floor check from the * rule, the others pass it
    floors = [c for c in decision.checks if c.bound == "upper"]
    assert sorted(c.score for c in floors) == ["field.triage", "length_ratio", "loss"]


def test_a_waiver_names_the_score_and_reason_and_shows_in_the_decision():
    release = parse_config({"release": {"waivers": [{"score": "length_ratio", "reason": "shorter replies wanted"}]}}).release
    decision = decide(release.gate, _worse_length(), release.waivers)
    assert decision.promote
    (waived,) = [c for c in decision.checks if c.waived]
    assert waived.score == "length_ratio" and waived.waived == "shorter replies wanted"
    assert "waived by the owner: length_ratio worse than the base" in decision.reason()
    assert "shorter replies wanted" in decision.as_dict()["checks"][decision.checks.index(waived)]["line"]


def test_a_waiver_naming_no_score_is_an_error():
    release = parse_config({"release": {"waivers": [{"score": "lenght_ratio", "reason": "typo"}]}}).release
    with pytest.raises(AdapterOpsError, match="lenght_ratio"):
        decide(release.gate, _worse_length(), release.waivers)
