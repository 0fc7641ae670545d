"""SIGTERM and Ctrl-C stop a command within seconds with one line: "interrupted at STEP; `adapterops run` resumes".

SIGTERM and SIGINT are turned into `Interrupted` in the main thread (a BaseException, like KeyboardInterrupt, but
not one: Typer would turn that into a bare exit 130), so the code being run unwinds: `with` blocks stop the child processes they started, and Prefect's engines mark their
runs crashed while the embedded server is still up (it runs in its own session, see server_guard, so a Ctrl-C
at the terminal does not stop it first). The CLI turns the exception into the one line.
"""

from __future__ import annotations

import signal

_STEP = {"name": "start"}


class Interrupted(BaseException):
    """The command was asked to stop by a signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def at_step(name: str) -> None:
    """Name the step under way (shown when the command is interrupted)."""
    _STEP["name"] = name


def current_step() -> str:
    return _STEP["name"]


def _raise(signum, frame) -> None:
    for kind in (signal.SIGTERM, signal.SIGINT):   # a second signal while unwinding must not cut the cleanup
        signal.signal(kind, signal.SIG_IGN)
    raise Interrupted(signum)


def handle_termination() -> None:
    """SIGTERM and Ctrl-C raise Interrupted in the main thread (call from the main thread, before any flow runs)."""
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)


def exit_code(error: BaseException) -> int:
    """128 + the signal number, as a shell reports a process stopped by it."""
    return 128 + getattr(error, "signum", getattr(error, "signal", signal.SIGINT))
