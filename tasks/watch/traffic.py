"""Recorded traffic read back: a window of one model's records (and the feedback on them) from the traffic store
that `adapterops serve` writes (tasks/serve/recording.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from tasks.serve.recording import FEEDBACK, FEEDBACK_COLUMNS, RECORD_COLUMNS, RECORDS


def _day_files(folder: Path, start: datetime) -> list[Path]:
    first = (start - timedelta(days=1)).strftime("%Y-%m-%d")      # a day folder holds that UTC day's writes
    return [path for day in sorted(folder.glob("date=*")) if day.name[5:] >= first
            for path in sorted(day.glob("*.parquet"))]


def read_parts(folder: Path, start: datetime, end: datetime, columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows of the day files under folder whose time lies in [start, end); a file that cannot be read is skipped
    (the writer renames only whole files into place, so that is damage, not a file being written)."""
    frames = []
    for path in _day_files(folder, start):
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError):
            continue
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame = pd.concat(frames, ignore_index=True)
    when = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    return frame[(when >= pd.Timestamp(start)) & (when < pd.Timestamp(end))].reset_index(drop=True)


def window_records(store: Path, model_name: str, alias: str, version: str | None, start: datetime,
                   end: datetime) -> pd.DataFrame:
    """The first choice of every recorded chat and completion answered for model_name at alias (and version) in
    the window, one row per response id."""
    frame = read_parts(Path(store) / RECORDS, start, end, RECORD_COLUMNS)
    if frame.empty:
        return frame
    keep = (frame["model_name"] == model_name) & (frame["alias"] == alias) & (frame["choice"] == 0)
    if version is not None:
        keep &= frame["version"].astype(str) == str(version)
    return frame[keep].drop_duplicates("id").reset_index(drop=True)


def window_feedback(store: Path, response_ids, start: datetime, end: datetime) -> pd.DataFrame:
    """The latest feedback per response among response_ids, given in the window."""
    frame = read_parts(Path(store) / FEEDBACK, start, end, FEEDBACK_COLUMNS)
    if frame.empty:
        return frame
    frame = frame[frame["response_id"].isin(set(response_ids))]
    return frame.sort_values("time").drop_duplicates("response_id", keep="last").reset_index(drop=True)
