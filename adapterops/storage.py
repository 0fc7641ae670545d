"""Atomic writes and content digests for files handed between steps."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # pandas is not imported for a write that does not need it (the dedup command's start-up)
    import pandas as pd


def _staging(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write Parquet atomically: a crash leaves the previous file, never half of a new one."""
    tmp = _staging(path)
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def write_text(text: str, path: Path) -> Path:
    """Write UTF-8 text atomically."""
    tmp = _staging(path)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_json(data, path: Path) -> Path:
    return write_text(json.dumps(data, indent=2, sort_keys=True, default=str), path)


def append_jsonl(record: dict, path: Path) -> Path:
    """Append one line; the log only grows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")
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

    from adapterops.errors import AdapterOpsError

    path = Path(path)
    if not path.is_file():
        raise AdapterOpsError(missing)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise AdapterOpsError(f"{path}: not valid YAML ({error.__class__.__name__}: {str(error).splitlines()[0]}).") from None
