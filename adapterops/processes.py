"""Which process owns an MLflow run, so that the next run can tell a stale RUNNING run (its process died: kill -9,
power cut, OOM) from one still working, and mark it KILLED with the reason.

Every run a command starts carries the tags below, through MLflow's `MLFLOW_RUN_CONTEXT` (JSON tags added to
each new run); a run is stale when its host is this host and its process (pid + start time, so a reused pid
does not count) no longer exists. Runs of other hosts are left alone: nothing here can tell.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone

PID, HOST, STARTED = "adapterops.process.pid", "adapterops.process.host", "adapterops.process.start"
REASON = "adapterops.killed_reason"
CONTEXT_ENV = "MLFLOW_RUN_CONTEXT"


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None
    return text.rpartition(")")[2].split()[19]


def process_tags(pid: int | None = None) -> dict:
    pid = pid or os.getpid()
    return {PID: str(pid), HOST: socket.gethostname(), STARTED: process_start(pid) or "?"}


def tag_new_runs() -> None:
    """Tag every MLflow run this process starts with its pid, host and start time (children inherit the
    parent's tags: they die with it, see adapterops/children.py)."""
    tags = json.loads(os.environ.get(CONTEXT_ENV) or "{}") | process_tags()
    os.environ[CONTEXT_ENV] = json.dumps(tags)


def is_alive(tags: dict) -> bool | None:
    """True/False for a run tagged by a process of this host; None when its tags cannot tell (another host,
    no tags)."""
    if tags.get(HOST) != socket.gethostname() or not tags.get(PID, "").isdigit():
        return None
    started = process_start(int(tags[PID]))
    return started is not None and started == tags.get(STARTED)


def retire_dead_runs(experiment_names: list[str]) -> list[str]:
    """Mark KILLED every RUNNING run of these experiments whose process on this host is gone; their ids."""
    import mlflow

    client = mlflow.MlflowClient()
    ids = [e.experiment_id for name in experiment_names if (e := mlflow.get_experiment_by_name(name))]
    if not ids:
        return []
    retired = []
    for run in mlflow.search_runs(ids, filter_string="attributes.status = 'RUNNING'", output_format="list"):
        if is_alive(run.data.tags) is not False:
            continue
        when = datetime.now(timezone.utc).isoformat()
        client.set_tag(run.info.run_id, REASON, f"process {run.data.tags[PID]} on {run.data.tags[HOST]} ended "
                                               f"without finishing this run (killed or crashed); marked by the run "
                                               f"of process {os.getpid()} at {when}")
        client.set_terminated(run.info.run_id, "KILLED")
        retired.append(run.info.run_id)
    return retired
