"""Tracebacks go to a log file, not the terminal: the terminal gets one `error:` line that names the file.

The log is ADAPTEROPS_HOME/logs/errors.log; when that disk is the full one, the system's temporary folder (often
another disk) takes it; when neither can be written, the line says so.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

from adapterops.workspace import resolve_workspace

LOG_NAME = "errors.log"


def _candidates() -> list[Path]:
    try:
        home = resolve_workspace().root / "logs" / LOG_NAME
    except Exception:     # the workspace itself cannot be resolved
        home = None
    return [p for p in (home, Path(tempfile.gettempdir()) / f"adapterops-{os.getuid()}-{LOG_NAME}") if p]


def log_traceback(error: BaseException, context: str = "") -> Path | None:
    """Append the error's traceback (and what was running) to the error log; its path, or None if unwritable."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    header = f"--- {datetime.now(timezone.utc).isoformat()} pid {os.getpid()}: {' '.join(sys.argv)}"
    entry = f"{header}\n{context + chr(10) if context else ''}{text}\n"
    for path in _candidates():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(entry)
            return path
        except OSError:
            continue
    return None


def details(path: Path | None) -> str:
    """The clause the error line ends with."""
    return f" (traceback in {path})" if path else " (the traceback could not be written anywhere: no disk space)"
