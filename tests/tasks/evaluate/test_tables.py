"""What the MLflow UI shows of an evaluation: flat column names (a dot hides a column's values in the artifact
viewer), the order id, scores, prompt, reference, answers; per-slice figures in a table, not in metric keys."""

import numpy as np
import pandas as pd

from adapterops.config import EvaluationConfig
from tasks.evaluate.run import example_table, slice_table, summarise, summary_metrics

RECORDS = pd.DataFrame({"id": [f"t{i}" for i in range(12)], "source": ["email", "chat"] * 6,
                        "prompt": [f"p{i}" for i in range(12)], "completion": [f"r{i}" for i in range(12)]})


def scores():
    rng = np.random.default_rng(0)
    return {who: {"field.triage": rng.random(12), "loss": rng.random(12)} for who in ("base", "candidate")}


def test_the_example_table_is_flat_and_reads_id_scores_prompt_reference_answers():
    table = example_table(RECORDS, {"base": ["a"] * 12, "candidate": ["b"] * 12}, scores())
    assert list(table.columns) == ["id", "base_field_triage", "candidate_field_triage", "base_loss", "candidate_loss",
                                   "prompt", "reference", "base_answer", "candidate_answer", "source"]
    assert table["candidate_loss"].dtype == float and table["id"].tolist()[:2] == ["t0", "t1"]


def test_slices_go_to_a_table_and_the_metrics_stay_few():
    summary = summarise(scores(), {"field.triage": True, "loss": False}, {"source": RECORDS["source"].tolist()},
                        EvaluationConfig(min_slice_size=5, resamples=1000))
    metrics = summary_metrics(summary)
    assert not any(k.startswith("slice") for k in metrics)
    assert {"eval.candidate.field.triage", "eval.vs_base.loss.low"} <= set(metrics)
    table = slice_table(summary)
    assert set(table["slice"]) == {"source=email", "source=chat"} and set(table["score"]) == {"field.triage", "loss"}
    assert not any("." in c for c in table.columns)
    row = table[(table["slice"] == "source=email") & (table["score"] == "loss")].iloc[0]
    assert row["size"] == 6 and row["vs_base_low"] <= row["vs_base_mean"] <= row["vs_base_high"]
