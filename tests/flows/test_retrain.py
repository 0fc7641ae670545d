"""End to end on the tiny model in the session's temporary workspace, through Prefect and MLflow."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from adapterops.config import parse_config
from adapterops.errors import AdapterOpsError
from tests.refs import fake_staging

pytestmark = pytest.mark.slow   # whole retrain flows, several trainings: the slow lane

SMALL = {"approval": "auto", "demo_records": 300, "train": {"max_steps": 12, "batch_size": 4, "log_every": 2},
         "release": {"model_name": "e2e-adapter", "gate": [{"score": "loss", "must_beat_base": 0.0}]},
         "evaluation": {"max_new_tokens": 16},
         "serve": {"smoke_prompts": 4, "smoke_format_min": 0.0}}   # 12 steps learn no format; staging still runs


@pytest.fixture(scope="module")
def first_run(prefect_harness, workspace):
    from flows.retrain import retrain

    config = parse_config(SMALL | {"name": "e2e"})
    return config, retrain(config)


def test_every_input_record_lands_in_exactly_one_place(first_run):
    _, result = first_run
    counts = result["corpus"].counts
    assert counts["input"] == counts["kept"] + counts["duplicates"] + counts["quarantined"]
    assert counts["exact_duplicates"] > 0 and counts["near_duplicates"] > 0 and counts["quarantined"] >= 4
    folder = Path(result["corpus"].path)
    duplicates = pd.read_parquet(folder / "duplicates.parquet")
    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    assert (~duplicates["kept"]).sum() == counts["duplicates"] and len(quarantine) == counts["quarantined"]
    assert set(quarantine["reason"].str.split(":").str[0]) >= {"malformed_json"}


def test_corpus_version_is_logged_with_its_digest_and_approval(first_run):
    _, result = first_run
    run = mlflow.get_run(result["corpus"].run_id)
    assert run.data.tags["corpus.digest"] == result["corpus"].digest
    assert run.data.tags["approval.approver"] == "policy:auto"
    assert run.data.metrics["records.kept"] == result["corpus"].counts["kept"]
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"e2e-train", "e2e-heldout", "e2e-eval"}


def test_adapter_is_registered_adapter_only_and_promoted_over_the_base(first_run):
    _, result = first_run
    adapter, evaluation, release = result["adapter"], result["evaluation"], result["release"]
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("e2e-adapter", "production")
    assert str(version.version) == adapter.version and release.promoted
    assert version.tags["corpus.digest"] == result["corpus"].digest
    assert result["staging"].passed and result["staging"].requests == 4 and result["staging"].differ == 0
    assert version.tags["base_model.revision"].startswith("sha256:")
    from tasks.release.registry import production_history
    assert [(e["action"], e["version"], e["by"]) for e in production_history("e2e-adapter")][0] == \
        ("promote", adapter.version, "release gate")
    files = list(Path(mlflow.artifacts.download_artifacts("models:/e2e-adapter@production")).rglob("*"))
    names = {f.name for f in files}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names
    base_bytes = (Path(adapter.base_path) / "model.safetensors").stat().st_size
    assert sum(f.stat().st_size for f in files if f.is_file()) < base_bytes / 4
    means = evaluation.summary["means"]
    assert means["candidate"]["loss"] < means["base"]["loss"] and evaluation.summary["vs_base"]["loss"]["low"] > 0
    train_run = mlflow.get_run(adapter.run_id)
    assert len(client.get_metric_history(adapter.run_id, "train.loss")) >= 6
    assert "eval.base.loss" in train_run.data.metrics and "eval.candidate.loss" in train_run.data.metrics


def test_the_run_summary_shows_the_corpus_adapter_staging_and_release(first_run, capsys):
    from cli.commands.run import _print_summary

    _, result = first_run
    _print_summary(result, 12.0)
    shown = " ".join(capsys.readouterr().out.split())
    assert f"e2e-adapter v{result['adapter'].version}" in shown and result["corpus"].digest[:23] in shown
    assert "promoted to production" in shown and "4 eval prompts over HTTP" in shown and "Release gate" in shown


def test_rerun_with_identical_inputs_trains_nothing_and_a_new_recipe_gates_against_production(first_run):
    from flows.retrain import retrain

    config, first = first_run
    again = retrain(config)
    assert again["corpus"].digest == first["corpus"].digest and not again["corpus"].new
    assert again["reused"].version == first["adapter"].version and "adapter" not in again
    assert again["reused"].aliases == ["candidate", "production", "staging"]
    changed = parse_config(SMALL | {"name": "e2e", "train": SMALL["train"] | {"seed": 7, "log_every": 5}})
    second = retrain(changed)
    assert second["corpus"].version == first["corpus"].version
    assert second["adapter"].version != first["adapter"].version
    assert second["evaluation"].production_version == first["adapter"].version
    assert second["release"].previous_production == first["adapter"].version


def test_owner_approval_stops_the_run_before_training(prefect_harness, monkeypatch):
    import flows.approve
    from flows.retrain import retrain

    monkeypatch.setattr(flows.approve, "_served", lambda: False)
    config = parse_config(SMALL | {"name": "owned", "approval": "owner"})
    with pytest.raises(AdapterOpsError, match="awaits approval by an owner"):
        retrain(config)
    assert mlflow.get_experiment_by_name("owned/adapters") is None


def test_training_refuses_a_corpus_changed_after_approval(first_run, tmp_path):
    from adapterops.base_models import resolve_base_model
    from tasks.train.run import train_adapter

    config, result = first_run
    train_file = Path(result["corpus"].path) / "train.parquet"
    original = train_file.read_bytes()
    frame = pd.read_parquet(train_file)
    frame.loc[0, "completion"] = "tampered"
    frame.to_parquet(train_file, index=False)
    try:
        with pytest.raises(AdapterOpsError, match="changed after approval"):
            train_adapter(config.recipe, result["corpus"], resolve_base_model(config.recipe), tmp_path,
                          model_name=config.release.model_name, approval=config.approval)
    finally:
        train_file.write_bytes(original)


def test_the_registered_adapter_serves_through_mlflow_pyfunc(first_run):
    model = mlflow.pyfunc.load_model("models:/e2e-adapter@production")
    replies = model.predict(["Hello support, I was charged twice this month. Thank you. Dana"])
    assert len(replies) == 1 and isinstance(replies[0], str)


def test_status_lists_corpus_versions_and_adapter_aliases(first_run):
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["status", "--name", "e2e"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Corpus versions of e2e" in result.output and "policy:auto" in result.output
    assert any("e2e-adapter" in line and "production" in line for line in result.output.splitlines())


def test_eval_command_scores_a_version_against_production_and_moves_no_alias(first_run, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from cli.main import app

    config, result = first_run
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    client = mlflow.MlflowClient()
    before = client.get_registered_model("e2e-adapter").aliases
    version = result["adapter"].version
    run = CliRunner().invoke(app, ["eval", "--name", "e2e", "--version", version, "--config", str(path)],
                             env={"COLUMNS": "200"})
    assert run.exit_code == 0, run.output
    assert "field.triage" in run.output and "Release gate (not applied" in run.output
    assert client.get_registered_model("e2e-adapter").aliases == before
    evals = mlflow.search_runs(experiment_names=["e2e/adapters"], output_format="list",
                               filter_string=f"tags.`model.version` = '{version}' and tags.stage = 'evaluate'")
    assert len(evals) >= 2   # the pipeline's and the command's


def test_a_failed_staging_holds_a_candidate_the_gate_would_promote(first_run):
    from tasks.release.registry import production_history, production_version, release_adapter

    config, result = first_run
    client = mlflow.MlflowClient()
    production = str(production_version(client, "e2e-adapter").version)
    evaluation = result["evaluation"]
    evaluation = evaluation.model_copy(update={"summary": evaluation.summary | {"vs_production": None}})
    staged = fake_staging(passed=False, reasons=["3 of 16 answers differ from the offline evaluation's"])
    other = next(str(v.version) for v in client.search_model_versions("name = 'e2e-adapter'") if str(v.version) != production)
    decision = release_adapter(config.release, result["adapter"].model_copy(update={"version": other}),
                               evaluation.model_copy(update={"production_version": production}), staged)
    assert not decision.promoted and "staging failed: 3 of 16 answers differ" in decision.reason
    assert str(production_version(client, "e2e-adapter").version) == production
    last = production_history("e2e-adapter")[-1]
    assert (last["action"], last["status"], last["version"]) == ("staging-failed", "held", other)
