"""Progress where a step waits: `done/total unit (pct), elapsed, about N left` lines with an ETA.

Lines go to the `adapterops.progress` logger: inside a Prefect run they reach the run's logs (the workspace
adds `adapterops` to PREFECT_LOGGING_EXTRA_LOGGERS) and Prefect's console; with no handler anywhere (a bare
Python process) they go to stderr. A command with its own Rich progress bar passes its own `on_update`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

LOGGER = "adapterops.progress"


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 42 s, 3 min 05 s, 1 h 02 min."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def progress_line(label: str, done: int, total: int | None, unit: str, elapsed: float, extra: str = "") -> str:
    """One progress line; the ETA assumes the remaining units go at the pace so far."""
    if total:
        share = min(done / total, 1.0)
        left = elapsed / done * (total - done) if done else None
        eta = "done" if done >= total else f"about {duration(left)} left" if left is not None else "estimating"
        text = f"{label}: {done}/{total} {unit} ({share:.0%}), {duration(elapsed)} elapsed, {eta}"
    else:
        text = f"{label}: {done} {unit}, {duration(elapsed)} elapsed"
    return text + (f", {extra}" if extra else "")


def _logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    if not logger.hasHandlers():       # no Prefect, no application logging: say it on stderr all the same
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    return logger


class Progress:
    """Counts units of work towards a total and reports at most every `every_seconds` (and at the start and end)."""

    def __init__(self, label: str, total: int | None, unit: str = "items", every_seconds: float = 10.0,
                 on_update: Callable[[int, int | None, str], None] | None = None, clock=time.monotonic):
        self.label, self.total, self.unit, self.every = label, total, unit, every_seconds
        self.on_update, self.clock = on_update, clock
        self.done, self.started, self.last = 0, clock(), None
        self.lines: list[str] = []

    def advance(self, n: int = 1, extra: str = "") -> None:
        self.update(self.done + n, extra)

    def update(self, done: int, extra: str = "") -> None:
        self.done = done
        now = self.clock()
        finished = self.total is not None and done >= self.total
        if self.last is not None and not finished and now - self.last < self.every:
            return
        self.last = now
        line = progress_line(self.label, done, self.total, self.unit, now - self.started, extra)
        self.lines.append(line)
        if self.on_update is not None:
            self.on_update(done, self.total, line)
        else:
            _logger().info(line)
