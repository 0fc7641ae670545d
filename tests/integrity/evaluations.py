"""Evaluation results in the shape the release reads (tasks.evaluate.run.summarise), for release tests that
need a candidate the gate promotes: lower loss than the base and than production on every example."""

import numpy as np

from adapterops.config import EvaluationConfig, GateRule, ReleaseConfig
from adapterops.refs import EvaluationResult
from tests.refs import fake_evaluation


def loss_release(name: str) -> ReleaseConfig:
    """A gate on loss alone, without staging: these tests are about the registry, not the smoke suite."""
    return ReleaseConfig(model_name=name, staging=False,
                         gate=[GateRule(score="loss", must_beat_base=0.0, max_regression=0.0)])


def better_evaluation(run_id: str, production: str | None) -> EvaluationResult:
    """Candidate loss 4.0 against base 5.0 and (if any) production 4.5, evaluated against `production`."""
    from tasks.evaluate.run import summarise

    n = 20
    scores = {"base": {"loss": np.full(n, 5.0)}, "candidate": {"loss": np.full(n, 4.0)}}
    if production is not None:
        scores["production"] = {"loss": np.full(n, 4.5)}
    summary = summarise(scores, {"loss": False}, {}, EvaluationConfig())
    return fake_evaluation(run_id=run_id, summary=summary, production_version=production)
