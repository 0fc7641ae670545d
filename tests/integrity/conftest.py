"""Helpers for the integrity suite: real subprocesses of the CLI or of a short script, killed at named points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def subprocess_env(**extra: str) -> dict:
    """This session's environment (workspace, tracking URI), with this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def run_python(code: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter (returncode -9 when it killed itself at a crash point)."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def run_cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run `adapterops ARGS` from this checkout in a new process."""
    main = "import sys; from cli.main import main; sys.argv[0] = 'adapterops'; main()"
    return subprocess.run([sys.executable, "-c", main, *args], cwd=ROOT, env=subprocess_env(**env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture()
def mlflow_client():
    import mlflow

    from adapterops.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.MlflowClient()


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MB tmpfs (needs root and mount); the test is skipped, saying why, where the machine does not allow it."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs here ({(mounted.stderr or 'mount failed').strip()}): "
                    "the full-disk behaviour is not exercised on this machine")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
