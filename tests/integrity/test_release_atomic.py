"""Case 8: the production alias and its audit trail agree after a crash at any step of a move.

Each crash is real: a new process kills itself with SIGKILL at a named point (ADAPTEROPS_CRASH_AT);
the next command, whichever it is, finishes the recorded move, and a plain retry of the command works.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integrity.conftest import run_cli, run_python
from tests.integrity.procs_approval import trained_on_corpus
from tests.refs import fake_adapter


def promoted_twice(client, tmp_path) -> str:
    """A registered model with v1 and v2 promoted through the trail (production at v2) and a v3 candidate."""
    from tasks.release.registry import move_production

    name = f"atomic-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir(exist_ok=True)
    for _ in range(3):
        client.create_model_version(name, source=str(tmp_path / "adapter"))
    trained_on_corpus(client, name, ["1", "2", "3"], tmp_path)     # its contract lets lee release, signed
    for version in ("1", "2"):
        move_production(client, client.get_registered_model(name), version, "promote", "release gate", f"v{version} good")
    return name


def alias_and_trail(client, name: str) -> tuple[str, list[tuple]]:
    from tasks.release.registry import production_history

    trail = [(e["action"], e["version"], e["status"]) for e in production_history(name)]   # a read: reconciles
    return str(client.get_registered_model(name).aliases["production"]), trail


@pytest.mark.parametrize("point", ["rollback-after-intent", "rollback-after-alias"])
def test_a_rollback_killed_midway_is_finished_by_the_next_read_and_a_plain_retry_works(mlflow_client, tmp_path, point):
    from typer.testing import CliRunner

    from cli.main import app

    name = promoted_twice(mlflow_client, tmp_path)
    args = ["release", "rollback", "--model", name, "--reason", "v2 answers in the wrong language", "--as", "lee"]
    crashed = run_cli(*args, ADAPTEROPS_CRASH_AT=point)
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    assert json.loads(mlflow_client.get_registered_model(name).tags["production.log.3"])["status"] == "intent"

    agreed = ("1", [("promote", "1", "done"), ("promote", "2", "done"), ("rollback", "1", "done")])
    assert alias_and_trail(mlflow_client, name) == agreed                    # any read finishes the move
    assert mlflow_client.get_model_version(name, "2").tags["release.rolled_back"].endswith("wrong language")
    retried = CliRunner().invoke(app, args)                                  # the user's plain retry
    assert retried.exit_code == 0, retried.output
    assert "v2 → v1" in retried.output and "interrupted" in retried.output
    assert alias_and_trail(mlflow_client, name) == agreed                    # not moved a second time


RELEASE = """
import mlflow
from adapterops.tracking import tracking_uri
from tasks.release.registry import release_adapter
from tests.integrity.evaluations import better_evaluation, loss_release
from tests.refs import fake_adapter
mlflow.set_tracking_uri(tracking_uri())
release_adapter(loss_release({name!r}), fake_adapter(model_name={name!r}, version="3"), better_evaluation({run_id!r}, "2"))
"""


@pytest.mark.parametrize("point", ["release-after-intent", "release-after-alias"])
def test_a_release_killed_midway_is_finished_by_the_next_read_and_a_retry_does_not_move_twice(mlflow_client, tmp_path,
                                                                                              point):
    import mlflow

    from tasks.release.registry import production_version, release_adapter
    from tests.integrity.evaluations import better_evaluation, loss_release

    name = promoted_twice(mlflow_client, tmp_path)
    with mlflow.start_run() as run:
        pass
    evaluation = better_evaluation(run.info.run_id, "2")
    crashed = run_python(RELEASE.format(name=name, run_id=run.info.run_id), ADAPTEROPS_CRASH_AT=point)
    assert crashed.returncode == -9, crashed.stderr[-2000:]

    assert str(production_version(mlflow_client, name).version) == "3"     # the read finished the promotion
    assert mlflow_client.get_model_version(name, "3").tags["release.decision"] == "promoted"
    retried = release_adapter(loss_release(name), fake_adapter(model_name=name, version="3"), evaluation)
    assert retried.promoted
    assert alias_and_trail(mlflow_client, name) == ("3", [("promote", "1", "done"), ("promote", "2", "done"),
                                                          ("promote", "3", "done")])


def test_an_intent_whose_alias_was_moved_by_hand_is_abandoned_not_forced(mlflow_client, tmp_path):
    from tasks.release.registry import production_entry, reconcile_step

    assert reconcile_step(production_entry("3", "2", "promote", "gate", "", "t", "intent"), "2") == "finish"
    assert reconcile_step(production_entry("3", "2", "promote", "gate", "", "t", "intent"), "3") == "finish"
    assert reconcile_step(production_entry("3", None, "promote", "gate", "", "t", "intent"), None) == "finish"
    assert reconcile_step(production_entry("3", "2", "promote", "gate", "", "t", "intent"), "1") == "abandon"

    name = promoted_twice(mlflow_client, tmp_path)
    crashed = run_cli("release", "rollback", "--model", name, "--reason", "bad", "--as", "lee",
                      ADAPTEROPS_CRASH_AT="rollback-after-intent")
    assert crashed.returncode == -9
    mlflow_client.set_registered_model_alias(name, "production", "3")        # someone moves it in the MLflow UI
    alias, trail = alias_and_trail(mlflow_client, name)
    assert alias == "3" and trail[-1] == ("rollback", "1", "abandoned")
