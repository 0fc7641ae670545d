"""Named crash points, so tests can kill a real process between two steps of a multi-step write.

Set ADAPTEROPS_CRASH_AT to a point's name (e.g. `release-after-intent`) and the process kills itself
with SIGKILL when it reaches that point: no cleanup, no atexit, as a power cut or an OOM kill would.
ADAPTEROPS_SIGNAL_AT=NAME:TERM (or NAME:INT) sends the process SIGTERM (SIGINT, a Ctrl-C) there instead, as
an operator or a scheduler would, to test how a command stops.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "ADAPTEROPS_CRASH_AT"
SIGNAL_ENV = "ADAPTEROPS_SIGNAL_AT"


def crash_point(name: str) -> None:
    """Die here, at once, when ADAPTEROPS_CRASH_AT names this point; otherwise do nothing."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, kind = os.environ.get(SIGNAL_ENV, "").partition(":")
    if point == name:
        os.environ.pop(SIGNAL_ENV)        # once: the stopping command passes this point again while it unwinds
        os.kill(os.getpid(), signal.SIGINT if kind == "INT" else signal.SIGTERM)
