"""Named crash points, so tests can kill a real process between two steps of a multi-step write.

Set ADAPTEROPS_CRASH_AT to a point's name (e.g. `release-after-intent`) and the process kills itself
with SIGKILL when it reaches that point: no cleanup, no atexit, as a power cut or an OOM kill would.
ADAPTEROPS_SIGNAL_AT=NAME:TERM (or NAME:INT) sends the process SIGTERM (SIGINT, a Ctrl-C) there instead, as
an operator or a scheduler would, to test how a command stops. ADAPTEROPS_FILL_DISK_AT=NAME fills the disk
holding ADAPTEROPS_HOME there (a file of zeros until "no space left"); ADAPTEROPS_STOP_AT=NAME:PID kills process
PID there, with its process group when it leads one (a tracking server stopping mid-run).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "ADAPTEROPS_CRASH_AT"
SIGNAL_ENV = "ADAPTEROPS_SIGNAL_AT"
FILL_ENV = "ADAPTEROPS_FILL_DISK_AT"
STOP_ENV = "ADAPTEROPS_STOP_AT"


def _fill_disk() -> None:
    from adapterops.workspace import resolve_workspace

    block = b"\0" * (1 << 20)
    try:
        with open(resolve_workspace().root / ".disk-filler", "ab") as handle:
            while True:
                handle.write(block)
                handle.flush()
    except OSError:
        pass


def crash_point(name: str) -> None:
    """Die here, at once, when ADAPTEROPS_CRASH_AT names this point; otherwise do nothing."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(FILL_ENV) == name:
        os.environ.pop(FILL_ENV)
        _fill_disk()
    point, _, pid = os.environ.get(STOP_ENV, "").partition(":")
    if point == name:
        os.environ.pop(STOP_ENV)
        target = int(pid)
        if os.getpgid(target) == target:     # a server leading its own group: its workers go with it
            os.killpg(target, signal.SIGKILL)
        else:
            os.kill(target, signal.SIGKILL)
    point, _, kind = os.environ.get(SIGNAL_ENV, "").partition(":")
    if point == name:
        os.environ.pop(SIGNAL_ENV)        # once: the stopping command passes this point again while it unwinds
        os.kill(os.getpid(), signal.SIGINT if kind == "INT" else signal.SIGTERM)
