"""Atomic writes and content digests for files handed between steps."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from adapterops.errors import AdapterOpsError

if TYPE_CHECKING:            # pandas loads lazily: the CLI imports this module for its error handling
    import pandas as pd


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


FULL_WORDS = ("database or disk is full", "No space left on device", "StorageFull", "Disk quota exceeded")


def is_disk_full(error: BaseException | None) -> bool:
    """A full disk or quota, as the OS reports it, as SQLite (MLflow's and Prefect's stores) words it, or inside
    another library's error (safetensors: `IoError(Os { code: 28, kind: StorageFull ...`), also as a cause."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        if any(words in str(error) for words in FULL_WORDS):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


UNFINISHED = ("whatever the step had begun writing there may be left unfinished (earlier corpus versions, adapters "
              "and releases are unchanged: they are written aside and renamed into place); the next run writes it again")
REMOVED = "the unfinished file was removed"


def _size(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return ""


def disk_full_error(path, needed: int | None = None, left: str = UNFINISHED) -> "AdapterOpsError":
    """One line: which path could not be written, the space it needs and the space there is, and what was left
    behind (`left`: say it truthfully; REMOVED only where the unfinished file really was removed)."""
    path = Path(path)
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(existing).free
    need = f"needs about {_size(needed)}" if needed else "needs more space"
    return AdapterOpsError(f"No space left on the disk holding {path}: writing it {need} and {_size(free)} is free. "
                           f"Free space there (or point ADAPTEROPS_HOME at a larger disk) and run again; {left}.")


@contextmanager
def space_for(path, needed=None, left: str = UNFINISHED):
    """Within the block, a full disk is one AdapterOpsError naming `path` and the space needed
    (bytes, or a function that estimates them, called only when the disk is full); `left`: what is left behind."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        raise disk_full_error(path, needed() if callable(needed) else needed, left) from None


def staging_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


@contextmanager
def _atomic(path: Path, needed):
    """A staging file next to path, renamed over it on success and removed on any failure."""
    with space_for(path, needed, REMOVED):
        tmp = staging_path(path)
        try:
            yield tmp
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write Parquet atomically: a crash leaves the previous file, never half of a new one."""
    path = Path(path)
    with _atomic(path, lambda: int(frame.memory_usage(deep=True).sum())) as tmp:   # in-memory size: an upper bound
        frame.to_parquet(tmp, index=False)
    return path


def write_text(text: str, path: Path) -> Path:
    """Write UTF-8 text atomically."""
    path, data = Path(path), text.encode("utf-8")
    with _atomic(path, len(data)) as tmp:
        tmp.write_bytes(data)
    return path


def write_json(data, path: Path) -> Path:
    return write_text(json.dumps(data, indent=2, sort_keys=True, default=str), path)


def append_jsonl(record: dict, path: Path) -> Path:
    """Append one line; the log only grows."""
    path = Path(path)
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with space_for(path, len(line.encode("utf-8"))):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def hash_file_into(digest, path: Path) -> None:
    """Feed a file to a running hash in 1 MiB blocks: model shards can be many GB."""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    hash_file_into(digest, path)
    return "sha256:" + digest.hexdigest()


def read_yaml(path: Path, missing: str):
    """Parse a YAML file; a missing file raises `missing`, a malformed one names the file and the problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise AdapterOpsError(missing)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise AdapterOpsError(f"{path}: not valid YAML ({error.__class__.__name__}: {str(error).splitlines()[0]}).") from None
