"""Test session setup: a temporary workspace (MLflow store, PREFECT_HOME) and one shared Prefect harness."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports prefect or mlflow: nothing a test does may touch the user's home or the repo.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="adapterops-tests-"))
os.environ["ADAPTEROPS_HOME"] = str(_SESSION_HOME)
os.environ["PREFECT_HOME"] = str(_SESSION_HOME / "prefect")
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("PREFECT_API_URL", None)
# The built-in base is pretrained once (minutes) and copied into each session's workspace from this cache
os.environ.setdefault("ADAPTEROPS_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "adapterops-model-cache"))

from adapterops.workspace import configure_environment, resolve_workspace  # noqa: E402

configure_environment(resolve_workspace())


def pytest_unconfigure(config):
    """Remove the session's workspace (about 200 MB); ADAPTEROPS_KEEP_TEST_HOME=1 keeps it to look at."""
    if os.environ.get("ADAPTEROPS_KEEP_TEST_HOME") != "1":
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def workspace():
    return resolve_workspace()


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (it takes 15-25 s to start here)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(workspace):
    from adapterops.tiny_model import ensure_tiny_model

    return ensure_tiny_model(workspace.models_dir)
