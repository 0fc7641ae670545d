"""Case 9, orphans: the temporary Prefect server dies with the CLI that started it, even on kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integrity.conftest import ROOT, subprocess_env

SERVER = "prefect.server.api.server:create_app"


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.25)
    raise AssertionError(f"{what} within {seconds:.0f} s")


@pytest.mark.parametrize("whole_group", [False, True], ids=["the-cli", "its-process-group"])
def test_the_temporary_prefect_server_dies_when_the_cli_is_killed(tmp_path, whole_group):
    """kill -9 of the CLI, or of its whole process group (a job killed from a shell, `kill -- -PID`): the server's
    watchdog is in a session of its own, so it outlives the group and stops the server."""
    home = tmp_path / "home"
    main = "import sys; from cli.main import main; sys.argv[0] = 'adapterops'; main()"
    env = subprocess_env(ADAPTEROPS_HOME=str(home), PREFECT_HOME=str(home / "prefect"),
                         MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow.db")
    env.pop("PREFECT_API_URL", None)
    cli = subprocess.Popen([sys.executable, "-c", main, "demo"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    server = None
    try:
        server = wait_for(lambda: next((p for p in children(cli.pid) if SERVER in command_line(p)), None), 240,
                          "the CLI started no temporary Prefect server")
        # killed once start-up is done: the watchdog is started right after the server
        wait_for(lambda: any("os.getppid() == parent" in command_line(p) for p in children(cli.pid)), 60,
                 "the CLI started no watchdog beside its Prefect server")
        os.killpg(cli.pid, signal.SIGKILL) if whole_group else os.kill(cli.pid, signal.SIGKILL)
        cli.wait()
        wait_for(lambda: not running(server), 30, f"the Prefect server (pid {server}) outlived the killed CLI")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        if server and running(server) and SERVER in command_line(server):   # ours: leave no orphan when failing
            os.kill(server, signal.SIGKILL)
