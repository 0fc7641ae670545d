"""The durable state of each adapter version as a pipeline advances: trained → evaluated → staged → released or
held. One JSON file per version in the workspace, rewritten atomically after each step, so that a run that finds
a version trained from its corpus and recipe continues from the first step not done instead of stopping.

The gates do not read this file: release still verifies the signed approval and rehashes the corpus bytes.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from adapterops.refs import AdapterRef, EvaluationResult, ReleaseDecision, StagingResult
from adapterops.storage import write_json
from adapterops.workspace import resolve_workspace

STEPS = ("trained", "evaluated", "staged", "released")
REFS = {"trained": AdapterRef, "evaluated": EvaluationResult, "staged": StagingResult, "released": ReleaseDecision}


def state_path(model_name: str, version: str) -> Path:
    return resolve_workspace().root / "pipeline-state" / model_name / f"v{int(version):04d}.json"


def read_state(model_name: str, version: str) -> dict:
    """The version's recorded steps (step -> {"time", "ref"}); {} when none was recorded or the file is unreadable
    (then the steps run again: each is safe to repeat)."""
    try:
        state = json.loads(state_path(model_name, version).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def record_step(model_name: str, version: str, step: str, ref) -> None:
    """Record that `step` is done for this version, with its result (None: done with nothing to keep, e.g. staging
    skipped because the gate holds the candidate)."""
    if step not in STEPS:
        raise ValueError(f"unknown pipeline step {step!r}")
    state = read_state(model_name, version)
    state[step] = {"time": datetime.now(timezone.utc).isoformat(),
                   "ref": ref.model_dump(mode="json") if ref is not None else None}
    write_json(state, state_path(model_name, version))


def step_result(state: dict, step: str):
    """(done, result) of a recorded step: the reference rebuilt from the file, or None."""
    if step not in state:
        return False, None
    ref = state[step].get("ref")
    return True, REFS[step].model_validate(ref) if ref is not None else None


def next_step(state: dict) -> str | None:
    """The first step not done, or None when the version has its release decision."""
    return next((step for step in STEPS if step not in state), None)
