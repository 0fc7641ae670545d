"""Resolve configured sources: files and globs, or the generated demo data."""

from __future__ import annotations

import glob
from pathlib import Path

from adapterops.config import Config
from adapterops.demo_data import write_demo_data
from adapterops.errors import AdapterOpsError
from adapterops.workspace import resolve_workspace


def demo_files(config: Config) -> tuple[Path, Path]:
    folder = resolve_workspace().data_dir / f"demo-{config.demo_seed}-{config.demo_records}"
    train, evaluation = folder / "train.jsonl", folder / "eval.jsonl"
    if not (train.is_file() and evaluation.is_file()):
        write_demo_data(folder, config.demo_records, config.demo_seed)
    return train, evaluation


def resolve_source(name: str, config: Config) -> list[Path]:
    """Paths for one configured source; a missing path is an error that names it."""
    if name == "demo:train":
        return [demo_files(config)[0]]
    if name == "demo:eval":
        return [demo_files(config)[1]]
    matches = sorted(Path(p) for p in glob.glob(str(Path(name).expanduser())))
    if not matches:
        raise AdapterOpsError(f"Source {name!r} matches no file; check the path in `sources` (relative paths start "
                              f"from {Path.cwd()}).")
    return matches
