"""Named crash points, so tests can kill a real process between two steps of a multi-step write.

Set ADAPTEROPS_CRASH_AT to a point's name (e.g. `release-after-intent`) and the process kills itself
with SIGKILL when it reaches that point: no cleanup, no atexit, as a power cut or an OOM kill would.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "ADAPTEROPS_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here, at once, when ADAPTEROPS_CRASH_AT names this point; otherwise do nothing."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
