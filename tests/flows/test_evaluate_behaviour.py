"""The gate judges behaviour: an adapter trained on shuffled triage decisions lowers held-out loss
against the base, yet is held against the clean production adapter, naming the failing field score.

On one-turn tickets (prompt → completion exports): the tiny model learns the triage decision from them in 200
steps, where on the demo's conversations it learns the format first and the decision only later (README)."""

import json
import random

import mlflow
import pytest

from adapterops.config import parse_config
from adapterops.demo_data import generate_records

pytestmark = pytest.mark.slow   # trains adapters through the whole flow: the slow lane

STEPS = {"max_steps": 200, "batch_size": 16, "log_every": 20, "replay_share": 0.25}   # as the demo
COMMON = {"approval": "auto", "train": STEPS, "evaluation": {"max_new_tokens": 24},
          "release": {"model_name": "behaviour-adapter", "staging": False}}   # staging has its own tests


def write_tickets(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return str(path)


def shuffled_decisions(records):
    """Each ticket's triage line swapped with another's: same style, wrong decisions."""
    heads = [r["completion"].split("\n", 1)[0] for r in records]
    random.Random(5).shuffle(heads)
    return [r | {"completion": head + "\n" + r["completion"].split("\n", 1)[1]} for r, head in zip(records, heads)]


@pytest.fixture(scope="module")
def clean_then_corrupted(prefect_harness, tmp_path_factory):
    from flows.retrain import retrain

    folder = tmp_path_factory.mktemp("tickets")
    tickets = generate_records(600, 2026)
    held_out = write_tickets(folder / "eval.jsonl", generate_records(150, 9026, id_prefix="E"))
    clean_source = write_tickets(folder / "clean.jsonl", tickets)
    corrupted_source = write_tickets(folder / "corrupted.jsonl", shuffled_decisions(tickets))
    clean = retrain(parse_config(COMMON | {"name": "clean", "sources": [clean_source], "eval_source": held_out}))
    corrupted = retrain(parse_config(COMMON | {"name": "corrupt", "sources": [corrupted_source], "eval_source": held_out}))
    return clean, corrupted


def test_the_clean_adapter_learns_the_triage_decision(clean_then_corrupted):
    clean, _ = clean_then_corrupted
    summary = clean["evaluation"].summary
    assert clean["release"].promoted, clean["release"].reason
    assert summary["vs_base"]["field.triage"]["low"] > 0.3
    assert summary["means"]["candidate"]["format"] > 0.8


def test_corrupted_decisions_beat_the_base_on_loss_but_are_held_naming_the_field(clean_then_corrupted):
    clean, corrupted = clean_then_corrupted
    evaluation, release = corrupted["evaluation"], corrupted["release"]
    assert evaluation.production_version == clean["adapter"].version
    assert evaluation.summary["vs_base"]["loss"]["low"] > 0           # lower held-out loss than the base model
    assert not release.promoted
    failed = {(c["score"], c["against"]) for c in release.checks if not c["passed"]}
    assert ("field.triage", "production") in failed and "field.triage" in release.reason
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("behaviour-adapter", "production").version) == clean["adapter"].version
    assert client.get_model_version("behaviour-adapter", corrupted["adapter"].version).tags["release.decision"] == "held"


def test_the_eval_run_holds_the_per_example_table_and_slice_metrics(clean_then_corrupted):
    _, corrupted = clean_then_corrupted
    run = mlflow.get_run(corrupted["evaluation"].run_id)
    assert run.data.params["eval.decoding"] == "greedy" and "field_match" in run.data.params["eval.scorers"]
    assert not any(k.startswith("slice.") for k in run.data.metrics) and len(run.data.metrics) < 100
    assert run.data.tags["eval.digest"].startswith("sha256:") and run.inputs.dataset_inputs
    client = mlflow.MlflowClient()
    table = client.load_table(run.info.experiment_id, "evaluation/examples.json", run_ids=[run.info.run_id])
    assert {"prompt", "reference", "base_answer", "candidate_answer", "production_answer",
            "candidate_field_triage"} <= set(table.columns)
    assert not any("." in c for c in table.columns) and table.columns[0] == "id"
    assert len(table) == corrupted["evaluation"].examples
    slices = client.load_table(run.info.experiment_id, "evaluation/slices.json", run_ids=[run.info.run_id])
    assert {"slice", "score", "size", "candidate_mean", "vs_base_low"} <= set(slices.columns)
    assert any(s.startswith("triage=") for s in slices["slice"])
