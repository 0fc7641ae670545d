"""Issue 24 item 6: a full disk or an unreachable store at a step ends `adapterops run` with one `error:` line
that names the path or the server and what to do, says what was left, and names the log file holding the
traceback; no traceback on the terminal. Real processes: the workspace on a small tmpfs filled at a named
point (ADAPTEROPS_FILL_DISK_AT), and an MLflow tracking server killed mid-run (ADAPTEROPS_STOP_AT)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.integrity.conftest import ROOT
from tests.integrity.test_resume import SMALL, run

pytestmark = pytest.mark.slow


def one_error_line(result: subprocess.CompletedProcess) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output[-3000:]
    return " ".join(output[output.index("error:"):].split())      # the line, unwrapped


@pytest.fixture()
def tmpfs_home(tmp_path):
    """A 160 MB tmpfs for the workspace (a run needs 100 MB free to start); skipped, saying why, without mount."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(folder)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'}): full disks not exercised")
    try:
        yield folder / "home"
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def config_file(tmp_path, name: str):
    import yaml

    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL | {"name": name, "release": SMALL["release"] | {"model_name": f"{name}-a"}}))
    return path


@pytest.mark.parametrize("point, step", [("version-folder", "curation"), ("train-after-checkpoint", "training"),
                                         ("evaluate-logging", "evaluation")])
def test_a_disk_filled_during_a_step_is_one_line(tmpfs_home, tmp_path, point, step):
    result = run(tmpfs_home, config_file(tmp_path, f"full-{step}"), ADAPTEROPS_FILL_DISK_AT=point)
    line = one_error_line(result)
    assert "No space left on the disk holding" in line and str(tmpfs_home) in line, line
    assert "Free space there" in line and "traceback in" in line, line
    log = re.search(r"traceback in (\S+?)\)", line).group(1)
    assert "Traceback" in open(log, encoding="utf-8").read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tracking_server_stopped_mid_run_is_one_line(tmp_path):
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--workers", "1",
                               "--artifacts-destination", str(store / "artifacts")],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the MLflow server did not start"
                time.sleep(1)
        result = run(tmp_path / "home", config_file(tmp_path, "server-stops"),
                     MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}",
                     ADAPTEROPS_STOP_AT=f"train-after-checkpoint:{server.pid}")
        line = one_error_line(result)
        assert f"127.0.0.1:{port}" in line and "could not be reached" in line and "traceback in" in line, line
    finally:
        import os
        import signal

        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
