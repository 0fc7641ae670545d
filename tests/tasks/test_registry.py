from adapterops.config import ReleaseConfig
from tasks.registry import decide_promotion

GATE = ReleaseConfig(min_improvement=0.05, max_regression=0.0)


def test_candidate_must_beat_base_by_the_margin():
    assert decide_promotion(0.90, 1.0, None, GATE).promote
    held = decide_promotion(0.97, 1.0, None, GATE)
    assert not held.promote and "does not beat the base" in held.reason


def test_candidate_must_not_regress_production():
    assert decide_promotion(0.80, 1.0, 0.85, GATE).promote
    held = decide_promotion(0.90, 1.0, 0.85, GATE)
    assert not held.promote and "worse than production" in held.reason
