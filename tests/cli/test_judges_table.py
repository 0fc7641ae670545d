"""The terminal shows each LLM judge's agreement with the owner, whether it gates and why not, and its unscored examples."""

import math

from rich.console import Console

from adapterops.refs import EvaluationResult
from cli.commands.evaluate import judges_table, scores_table

JUDGE = {"judge": "guidelines", "kappa": 0.12, "labelled": 30, "scored_labels": 28, "gates": False,
         "reason": "kappa 0.12 < evaluation.judge.min_kappa 0.60 on 28 labelled examples", "scored_share": 0.5,
         "unscored": {"base": {"timeout": 2}, "candidate": {}}}


def result(judges: dict) -> EvaluationResult:
    summary = {"examples": 4, "directions": {"polite": True}, "means": {"base": {"polite": math.nan},
                                                                      "candidate": {"polite": 0.5}},
               "vs_base": {"polite": {"mean": math.nan, "low": math.nan, "high": math.nan}}, "vs_production": None,
               "slices": {}, "judges": judges, "judge_calls": {"used": 70, "budget": 2000}}
    return EvaluationResult(model_name="m", version="1", production_version=None, eval_digest="sha256:0", examples=4,
                            summary=summary, failures={}, generated_tokens=0, seconds=0.0, run_id="r")


def test_the_judges_table_says_why_a_judge_does_not_gate_and_what_it_left_unscored():
    console = Console(record=True, width=220)
    console.print(judges_table(result({"polite": JUDGE})))
    console.print(scores_table(result({"polite": JUDGE}), "scores"))
    text = console.export_text()
    assert "70 of 2000 calls" in text and "28 of 30" in text and "base: timeout 2" in text
    assert "no: kappa 0.12 < evaluation.judge.min_kappa 0.60 on 28 labelled examples" in text
    assert "nan" not in text                                  # an unscored mean or interval reads as "-"
    assert judges_table(result({})) is None
