"""Paired bootstrap intervals of score differences, overall and per slice, in one vectorised pass."""

from __future__ import annotations

import numpy as np


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) row indices drawn with replacement: one shared draw keeps every score's interval paired."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int64)


def paired_interval(difference: np.ndarray, indices: np.ndarray, confidence: float, rows: np.ndarray | None = None) -> dict:
    """Mean of a per-example difference (over `rows`, default all) and its percentile bootstrap interval."""
    means = difference[indices].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    mean = difference[rows].mean() if rows is not None else difference.mean()
    return {"mean": float(mean), "low": float(low), "high": float(high)}


NO_PAIRS = {"mean": float("nan"), "low": float("nan"), "high": float("nan")}


def compare(candidate: dict[str, np.ndarray], other: dict[str, np.ndarray], directions: dict[str, bool],
            rows: np.ndarray, resamples: int, seed: int, confidence: float) -> dict[str, dict]:
    """Per score: candidate − other on `rows`, as an improvement (sign flipped for lower-is-better scores).

    The interval is over the improvement, so a rule reads its lower bound the same way for every score. An
    example a judge left unscored (NaN) for either model is left out of that score's pairs; with none left the
    interval is NaN, which no rule passes.
    """
    indices = rows[resample_indices(len(rows), resamples, seed)]
    out = {}
    for name, higher in directions.items():
        sign = 1.0 if higher else -1.0
        difference = sign * (candidate[name] - other[name])
        scored = np.isfinite(difference[rows])
        if scored.all():
            out[name] = paired_interval(difference, indices, confidence, rows)
        elif scored.any():
            kept = rows[scored]
            out[name] = paired_interval(difference, kept[resample_indices(len(kept), resamples, seed)], confidence, kept)
        else:
            out[name] = dict(NO_PAIRS)
    return out


def slice_rows(labels: list[str]) -> dict[str, np.ndarray]:
    """Row indices per slice value."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return {label: np.asarray(rows, dtype=np.int64) for label, rows in sorted(groups.items())}
