"""Nothing a step starts outlives the process that started it, even on kill -9 of that process.

The parent starts a child with `child_options()`: its own process group (a Ctrl-C at the terminal reaches the
parent, which stops the child itself, and the child's own children can be stopped as a group) and, in the
environment, the parent's pid and start time. The child calls `die_with_parent()` first thing: it asks the
kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG, through ctypes; only when the parent started
it from its main thread, since the signal follows the thread that forked) and runs a watchdog thread that
stops it when its parent pid changes (the kernel re-parents orphans), which holds on any thread and platform.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PARENT_ENV = "ADAPTEROPS_PARENT"       # "PID:START:MAIN" of the process that must outlive this one
PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def child_options(env: dict | None = None) -> dict:
    """Popen keyword arguments for a child that must die with this process: new session, parent named in env."""
    main = threading.current_thread() is threading.main_thread()
    parent = f"{os.getpid()}:{_start_time(os.getpid())}:{int(main)}"
    return {"start_new_session": True, "env": dict(os.environ if env is None else env) | {PARENT_ENV: parent}}


def _stop_self() -> None:
    os.killpg(os.getpgrp(), signal.SIGTERM) if os.getpgrp() == os.getpid() else os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    os._exit(1)       # SIGTERM handled and ignored: leave anyway


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    _stop_self()


def die_with_parent() -> None:
    """In a child started with child_options(): end when the parent ends (no-op in a process started otherwise)."""
    value = os.environ.pop(PARENT_ENV, "")
    if not value:
        return
    pid, _, rest = value.partition(":")
    started, _, main = rest.partition(":")
    parent = int(pid)
    if main == "1" and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass     # no prctl: the watchdog below still stops us
    if os.getppid() != parent or (started and _start_time(parent) != started):
        _stop_self()       # the parent died before we got here
    threading.Thread(target=_watch, args=(parent,), name="adapterops-parent-watch", daemon=True).start()
