def test_training_key_follows_the_recipe_not_how_the_run_is_watched():
    from adapterops.config import parse_config
    from tasks.train.recipe import training_key

    def key(settings):
        return training_key("sha256:corpus", "rev1", parse_config(settings).recipe.settings())

    assert key({}) == key({"train": {"log_every": 1, "checkpoint_every": 7, "work_pool": "gpu"}})
    assert key({}) != key({"train": {"seed": 1}})
    assert key({}) != key({"lora": {"r": 4}})
    assert training_key("sha256:a", "rev1", {}) != training_key("sha256:b", "rev1", {})


# --- production audit trail and rollback ----------------------------------------------------------

import pytest  # noqa: E402

from adapterops.errors import AdapterOpsError  # noqa: E402
from tasks.release.registry import production_entry, rollback_target  # noqa: E402


def moves(*pairs):
    return [production_entry(v, p, "promote", "release gate", "", "t") for v, p in pairs]


def test_rollback_goes_to_the_version_before_the_last_move_and_back_again():
    assert rollback_target(moves(("1", None), ("2", "1")), "2", {"1", "2"}, None) == "1"
    after = moves(("1", None), ("2", "1")) + [production_entry("1", "2", "rollback", "lee", "bad replies", "t")]
    assert rollback_target(after, "1", {"1", "2"}, None) == "2"
    assert rollback_target(moves(("1", None), ("2", "1"), ("3", "2")), "3", {"1", "2", "3"}, "1") == "1"


def test_rollback_refuses_what_is_not_a_known_good_version():
    with pytest.raises(AdapterOpsError, match="nothing to roll back"):
        rollback_target([], None, set(), None)
    with pytest.raises(AdapterOpsError, match="no earlier version"):
        rollback_target(moves(("1", None)), "1", {"1"}, None)
    with pytest.raises(AdapterOpsError, match="never passed the release gate"):
        rollback_target(moves(("1", None), ("2", "1")), "2", {"1", "2"}, "3")
    with pytest.raises(AdapterOpsError, match="already in production"):
        rollback_target(moves(("1", None), ("2", "1")), "2", {"1", "2"}, "2")


def test_rollback_moves_the_alias_and_the_trail_records_every_move(tmp_path, monkeypatch):
    import mlflow
    from typer.testing import CliRunner

    from adapterops.tracking import tracking_uri
    from cli.main import app
    from tasks.release.registry import move_production, production_history, rollback_production

    mlflow.set_tracking_uri(tracking_uri())
    # who may roll back, signed, is tests/integrity/test_release_authority.py's: here anyone may, unsigned
    monkeypatch.setattr("tasks.release.registry._signer", lambda *args: None)
    client, name = mlflow.MlflowClient(), "rollback-tests"
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir()
    for decision in ("promoted", "promoted", "held"):
        version = client.create_model_version(name, source=str(tmp_path / "adapter")).version
        client.set_model_version_tag(name, version, "release.decision", decision)
    move_production(client, client.get_registered_model(name), "1", "promote", "release gate", "beats base")
    move_production(client, client.get_registered_model(name), "2", "promote", "release gate", "beats v1")
    with pytest.raises(AdapterOpsError, match="needs a reason"):
        rollback_production(name, None, "lee", " ")
    with pytest.raises(AdapterOpsError, match="never passed the release gate"):
        rollback_production(name, "3", "lee", "try the held one")
    entry = rollback_production(name, None, "lee", "v2 answers in the wrong language")
    assert (entry["version"], entry["previous"]) == ("1", "2")
    assert str(client.get_registered_model(name).aliases["production"]) == "1"
    assert client.get_model_version(name, "2").tags["release.rolled_back"].endswith("v2 answers in the wrong language")
    assert [(e["action"], e["version"], e["previous"]) for e in production_history(name)] == [
        ("promote", "1", None), ("promote", "2", "1"), ("rollback", "1", "2")]
    with pytest.raises(AdapterOpsError, match="No registered model 'nope'"):
        rollback_production("nope", None, "lee", "why")
    shown = CliRunner().invoke(app, ["release", "history", "--model", name])
    assert shown.exit_code == 0 and "rollback" in shown.output and "lee" in shown.output
    again = CliRunner().invoke(app, ["release", "rollback", "--model", name, "--reason", "fixed upstream", "--as", "kim"])
    assert again.exit_code == 0, again.output
    assert str(client.get_registered_model(name).aliases["production"]) == "2"


def test_only_a_rollback_finished_by_a_reconcile_answers_a_plain_retry():
    from tasks.release.registry import retried_rollback

    crashed = production_entry("1", "2", "rollback", "lee", "bad replies", "t") | {"reconciled": True}
    assert retried_rollback(moves(("1", None), ("2", "1")) + [crashed], None, "lee", "bad replies") == crashed
    assert retried_rollback(moves(("1", None), ("2", "1")) + [crashed], "1", "lee", "bad replies") == crashed
    assert retried_rollback(moves(("1", None), ("2", "1")) + [crashed], None, "kim", "bad replies") is None
    finished = production_entry("1", "2", "rollback", "lee", "bad replies", "t")
    assert retried_rollback(moves(("1", None), ("2", "1")) + [finished], None, "lee", "bad replies") is None


def test_moves_still_under_way_or_abandoned_are_no_rollback_history():
    intent = production_entry("3", "2", "promote", "release gate", "", "t", status="intent")
    assert rollback_target(moves(("1", None), ("2", "1")) + [intent], "2", {"1", "2"}, None) == "1"


def test_the_audit_trail_is_a_readable_table_on_the_latest_versions_run(tmp_path, monkeypatch):
    import json

    import mlflow

    from adapterops.tracking import ensure_experiment, tracking_uri
    from tasks.release.registry import AUDIT_TABLE, move_production, rollback_production

    mlflow.set_tracking_uri(tracking_uri())
    # who may roll back, signed, is tests/integrity/test_release_authority.py's: here anyone may, unsigned
    monkeypatch.setattr("tasks.release.registry._signer", lambda *args: None)
    client, name = mlflow.MlflowClient(), "audit-table-tests"
    experiment = ensure_experiment("audit-table-tests/adapters")
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir()
    runs = []
    for _ in range(2):
        run = client.create_run(experiment)
        runs.append(run.info.run_id)
        version = client.create_model_version(name, source=str(tmp_path / "adapter"), run_id=run.info.run_id).version
        client.set_model_version_tag(name, version, "release.decision", "promoted")
    move_production(client, client.get_registered_model(name), "1", "promote", "release gate", "beats base")
    move_production(client, client.get_registered_model(name), "2", "promote", "release gate", "beats v1")
    rollback_production(name, None, "lee", "v2 | answers <b>wrong</b>")
    rollback_production(name, "2", "kim", "fixed")      # written a second time: replaced, never appended
    table = client.load_table(experiment, AUDIT_TABLE, run_ids=[runs[1]])
    assert list(table.columns[:8]) == ["entry", "time", "action", "version", "previous", "by", "status", "reason"]
    assert [[a, str(v), b] for a, v, b in table[["action", "version", "by"]].values.tolist()] == [
        ["promote", "1", "release gate"], ["promote", "2", "release gate"], ["rollback", "1", "lee"], ["rollback", "2", "kim"]]
    logged = json.loads(client.get_run(runs[1]).data.tags["mlflow.loggedArtifacts"])
    assert {"path": AUDIT_TABLE, "type": "table"} in logged


def test_release_holds_a_candidate_worse_than_the_base_and_records_the_owners_waiver(tmp_path):
    """With the default gate and no production: a declared score below the base holds; the named waiver promotes,
    and the decision (tags, gate.json, the returned reason) shows the waiver."""
    import json

    import mlflow
    import numpy as np

    from adapterops.config import EvaluationConfig, ReleaseConfig, Waiver
    from adapterops.tracking import ensure_experiment, tracking_uri
    from tasks.evaluate.run import summarise
    from tasks.release.registry import release_adapter
    from tests.refs import fake_adapter, fake_evaluation

    mlflow.set_tracking_uri(tracking_uri())
    client, name = mlflow.MlflowClient(), "floor-release-tests"
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir()
    experiment = ensure_experiment("floor-release-tests/adapters")
    train_run, eval_run = client.create_run(experiment).info.run_id, client.create_run(experiment).info.run_id
    version = client.create_model_version(name, source=str(tmp_path / "adapter"), run_id=train_run).version
    n, rng = 40, np.random.default_rng(3)
    scores = {"base": {"loss": np.full(n, 5.0), "length_ratio": rng.normal(0.9, 0.05, n)},
              "candidate": {"loss": np.full(n, 4.0), "length_ratio": rng.normal(0.79, 0.05, n)}}
    evaluation = fake_evaluation(run_id=eval_run, production_version=None, summary=summarise(
        scores, {"loss": False, "length_ratio": True}, {}, EvaluationConfig()))
    adapter = fake_adapter(model_name=name, version=str(version), run_id=train_run)

    mlflow.set_experiment("another-step-of-this-process")   # the release reopens the eval run all the same
    held = release_adapter(ReleaseConfig(model_name=name, staging=False), adapter, evaluation)
    assert not held.promoted and "length_ratio (overall) vs base: upper bound" in held.reason
    assert client.get_model_version(name, version).tags["release.decision"] == "held"

    waived = ReleaseConfig(model_name=name, staging=False,
                           waivers=[Waiver(score="length_ratio", reason="short replies on purpose")])
    promoted = release_adapter(waived, adapter, evaluation)
    assert promoted.promoted and "waived by the owner: length_ratio worse than the base" in promoted.reason
    assert "short replies on purpose" in client.get_model_version(name, version).tags["release.reason"]
    gate = json.loads(mlflow.artifacts.load_text(f"runs:/{eval_run}/evaluation/gate.json"))
    assert gate["waivers"] == [{"score": "length_ratio", "reason": "short replies on purpose"}]
    assert [c["score"] for c in gate["checks"] if c["waived"]] == ["length_ratio"]
