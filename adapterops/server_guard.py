"""The temporary Prefect server dies with the process that started it, even on kill -9.

Prefect starts its ephemeral API server as a child process (SubprocessASGIServer) and stops it at exit;
a process killed with SIGKILL runs no exit handler, so the server lived on as an orphan. Next to each
server we start a tiny watchdog that notices its parent is gone (its parent id changes) and stops the
server. Installed lazily, when Prefect's server module is first imported: importing it costs seconds.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import subprocess
import sys

SERVER_MODULE = "prefect.server.api.server"

WATCHDOG = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)        # in case a Ctrl-C reaches it: outlive the command, clean up after
parent, server, started = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def alive():  # the pid still names the server it named at start (pids are reused)
    try:
        if started:
            with open(f"/proc/{server}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return fields[0] != "Z" and fields[19] == started
        os.kill(server, 0)
        return True
    except (OSError, IndexError):
        return False

while os.getppid() == parent and alive():
    time.sleep(0.5)
if alive():
    os.kill(server, signal.SIGTERM)
    for _ in range(20):
        time.sleep(0.25)
        if not alive():
            break
    else:
        os.kill(server, signal.SIGKILL)
"""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks (Linux), or '' where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def watch(server_pid: int) -> subprocess.Popen:
    """A watchdog that stops server_pid once this process is gone; it exits by itself when the server does."""
    # its own session: a kill -9 of the command's whole process group must not take the watchdog with it
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), str(server_pid), _start_time(server_pid)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


class _OwnSession:
    """The `subprocess` module as Prefect's server module sees it, but Popen starts a new session: a Ctrl-C or a
    SIGTERM to the command's process group then reaches the command, which marks its flow runs crashed while the
    server still answers; the watchdog stops the server once the command is gone."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):
        kwargs.setdefault("start_new_session", True)
        if "stdout" not in kwargs and "stderr" not in kwargs:   # its tracebacks (a full disk: 500s) go to a log
            kwargs["stdout"], kwargs["stderr"] = _server_log(), subprocess.STDOUT
        return subprocess.Popen(*args, **kwargs)


def _server_log():
    """PREFECT_HOME/server.log (in the workspace: adapterops/workspace.py sets PREFECT_HOME), opened for appending;
    DEVNULL if it cannot be."""
    from pathlib import Path

    home = os.environ.get("PREFECT_HOME")
    if not home:
        return subprocess.DEVNULL
    try:
        Path(home).mkdir(parents=True, exist_ok=True)
        return open(Path(home) / "server.log", "ab")
    except OSError:
        return subprocess.DEVNULL


def _patch(module) -> None:
    if getattr(module, "subprocess", None) is subprocess:
        module.subprocess = _OwnSession()
    server_class = module.SubprocessASGIServer
    start = server_class._run_uvicorn_command
    if getattr(start, "adapterops_guarded", False):
        return

    def run_and_watch(self):
        process = start(self)
        watch(process.pid)
        return process

    run_and_watch.adapterops_guarded = True
    server_class._run_uvicorn_command = run_and_watch


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds Prefect's server module with the normal finders and patches it once it has executed."""

    def find_spec(self, name, path=None, target=None):
        if name != SERVER_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                _patch(module)

            def __getattr__(self, attribute):       # get_source, get_filename, …: the file loader's
                return getattr(loader, attribute)

        spec.loader = Loader()
        return spec


def guard_prefect_server() -> None:
    """Make every temporary Prefect server this process starts die with it (idempotent)."""
    if SERVER_MODULE in sys.modules:
        _patch(sys.modules[SERVER_MODULE])
    elif not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
