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


def test_training_key_follows_the_recipe_not_how_the_run_is_watched():
    from adapterops.config import parse_config
    from tasks.registry import training_key
    from tasks.train import recipe_settings

    def key(settings):
        return training_key("sha256:corpus", "rev1", recipe_settings(parse_config(settings)))

    assert key({}) == key({"train": {"log_every": 1, "checkpoint_every": 7, "work_pool": "gpu"}})
    assert key({}) != key({"train": {"seed": 1}})
    assert key({}) != key({"lora": {"r": 4}})
    assert training_key("sha256:a", "rev1", {}) != training_key("sha256:b", "rev1", {})
