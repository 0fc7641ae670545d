"""Case 5: only "does not exist" means absent; any other registry error stops the step, and nothing is
promoted without the production comparison when a production alias may exist."""

from __future__ import annotations

import socket
import uuid

import pytest

from adapterops.errors import AdapterOpsError, RegistryError, retry_unless_user_error
from tests.refs import fake_adapter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def in_production(client, tmp_path, versions: int = 2) -> str:
    """A registered model with `versions` versions, v1 promoted to production."""
    from tasks.release.registry import move_production

    name = f"faults-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    (tmp_path / "adapter").mkdir(exist_ok=True)
    for _ in range(versions):
        client.create_model_version(name, source=str(tmp_path / "adapter"))
    move_production(client, client.get_registered_model(name), "1", "promote", "release gate", "v1 good")
    return name


def finished_run() -> str:
    import mlflow

    with mlflow.start_run() as run:
        pass
    return run.info.run_id


def failing(monkeypatch, method: str, code: str = "TEMPORARILY_UNAVAILABLE") -> None:
    """Inject one kind of registry error into every call of MlflowClient.<method>."""
    import mlflow
    from mlflow.exceptions import MlflowException

    def fail(*args, **kwargs):
        raise MlflowException("injected: the database is locked", error_code=code)

    monkeypatch.setattr(mlflow.MlflowClient, method, fail)


def test_an_unreachable_server_is_an_error_naming_it_not_an_absent_model(monkeypatch):
    import mlflow

    from tasks.release.registry import production_version, registered_model
    from tasks.train.run import find_trained_version

    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")     # the test needs the error, not the waiting
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        client = mlflow.MlflowClient()
        for call in (lambda: production_version(client, "demo-adapter"), lambda: registered_model(client, "demo-adapter"),
                     lambda: find_trained_version("demo-adapter", "sha256:key")):
            with pytest.raises(RegistryError, match=f"registry at {uri} failed while .*run again") as caught:
                call()
            assert "\n" not in str(caught.value)
    finally:
        from adapterops.tracking import tracking_uri

        monkeypatch.undo()
        mlflow.set_tracking_uri(tracking_uri())


def test_only_does_not_exist_means_absent(mlflow_client, tmp_path, monkeypatch):
    from tasks.release.registry import production_version
    from tasks.train.run import find_trained_version

    assert production_version(mlflow_client, "never-registered") is None
    assert find_trained_version("never-registered", "sha256:key") is None
    name = in_production(mlflow_client, tmp_path)
    assert str(production_version(mlflow_client, name).version) == "1"
    mlflow_client.delete_registered_model_alias(name, "production")
    assert production_version(mlflow_client, name) is None             # no alias: absent, not an error
    failing(monkeypatch, "get_registered_model", code="INVALID_PARAMETER_VALUE")
    with pytest.raises(RegistryError, match="injected"):
        production_version(mlflow_client, name)


def test_a_registry_error_at_release_stops_it_and_promotes_nothing(mlflow_client, tmp_path, monkeypatch):
    """The reproduced case: production's lookup failed, and a worse candidate was promoted against the base alone."""
    from tasks.release.registry import release_adapter
    from tests.integrity.evaluations import better_evaluation, loss_release

    name = in_production(mlflow_client, tmp_path)
    evaluation = better_evaluation(finished_run(), None)   # no production read
    with monkeypatch.context() as patch:
        failing(patch, "get_registered_model")
        with pytest.raises(RegistryError, match="injected"):
            release_adapter(loss_release(name), fake_adapter(model_name=name, version="2"), evaluation)
    assert str(mlflow_client.get_registered_model(name).aliases["production"]) == "1"
    assert "release.decision" not in mlflow_client.get_model_version(name, "2").tags


def test_a_candidate_evaluated_against_another_production_is_held(mlflow_client, tmp_path):
    from tasks.release.registry import move_production, release_adapter
    from tests.integrity.evaluations import better_evaluation, loss_release

    name = in_production(mlflow_client, tmp_path, versions=3)
    release = loss_release(name)
    run_id = finished_run()
    unaware = better_evaluation(run_id, None)     # saw no production
    held = release_adapter(release, fake_adapter(model_name=name, version="2"), unaware)
    assert not held.promoted and "evaluated against no production version" in held.reason
    move_production(mlflow_client, mlflow_client.get_registered_model(name), "2", "promote", "release gate", "v2 good")
    stale = better_evaluation(run_id, "1")
    held = release_adapter(release, fake_adapter(model_name=name, version="3"), stale)
    assert not held.promoted and "production is now v2" in held.reason
    tags = mlflow_client.get_model_version(name, "3").tags
    assert tags["release.decision"] == "held" and str(mlflow_client.get_registered_model(name).aliases["production"]) == "2"
    current = better_evaluation(run_id, "2")
    assert release_adapter(release, fake_adapter(model_name=name, version="3"), current).promoted


class _State:
    def __init__(self, error):
        self.error = error

    def result(self, raise_on_failure=True):
        return self.error


def test_prefect_retries_registry_faults_and_crashes_but_not_user_errors():
    assert retry_unless_user_error(None, None, _State(RegistryError("registry down")))
    assert retry_unless_user_error(None, None, _State(RuntimeError("worker lost")))
    assert not retry_unless_user_error(None, None, _State(AdapterOpsError("corpus not approved")))


def test_mlflow_http_retries_are_bounded_unless_the_user_set_them(tmp_path, monkeypatch):
    from adapterops.workspace import MLFLOW_HTTP_DEFAULTS, configure_environment, resolve_workspace

    for name in MLFLOW_HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    configure_environment(resolve_workspace(), mlflow_uri=__import__("os").environ["MLFLOW_TRACKING_URI"])
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT

    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 3 and MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 300


def test_commands_against_an_unreachable_registry_print_one_line():
    from tests.integrity.conftest import run_cli

    uri = f"http://127.0.0.1:{free_port()}"
    for args in (("release", "history", "--model", "demo-adapter"), ("status",)):
        result = run_cli(*args, MLFLOW_TRACKING_URI=uri)          # MLflow's retries as configure_environment sets them
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
        assert f"registry at {uri} failed" in lines[0] and "Traceback" not in result.stderr
