"""Issue 24 items 3, 4 and 5 on real `adapterops run` processes of one small pipeline, stopped at named points:
kill -9 inside training (after a checkpoint), SIGTERM inside evaluation, kill -9 inside staging (the staging
server must not outlive it), then a plain run that continues from the first step not done and releases.

Each run is a new process on a fresh workspace; the steps' state is read back from files and MLflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integrity.conftest import ROOT, subprocess_env

SMALL = {"name": "resume", "approval": "auto", "demo_records": 120,
         "train": {"max_steps": 6, "batch_size": 4, "log_every": 2, "checkpoint_every": 2},
         "release": {"model_name": "resume-adapter", "gate": [{"score": "loss", "must_beat_base": 0.0}]},
         "evaluation": {"max_new_tokens": 8}, "serve": {"smoke_prompts": 2, "smoke_format_min": 0.0}}
pytestmark = pytest.mark.slow
MAIN = "import sys; from cli.main import main; sys.argv[0] = 'adapterops'; main()"


def run(home: Path, config: Path, **env: str) -> subprocess.CompletedProcess:
    environment = subprocess_env(ADAPTEROPS_HOME=str(home), PREFECT_HOME=str(home / "prefect"), OMP_NUM_THREADS="1",
                                 **env)
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        if name not in env:
            environment.pop(name, None)
    return subprocess.run([sys.executable, "-c", MAIN, "run", str(config)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=1500)


def servers_of(home: Path) -> list[int]:
    """Live `adapterops serve` processes started for this workspace."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if " serve " in command and f"ADAPTEROPS_HOME={home}".encode() in environ and state != "Z":
            found.append(int(entry))
    return found


def runs(home: Path, experiment: str) -> list:
    import mlflow

    from adapterops.workspace import resolve_workspace

    client = mlflow.MlflowClient(tracking_uri=resolve_workspace(home).mlflow_uri())
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    config = folder / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    return folder / "home", config


def test_a_pipeline_stopped_at_each_step_resumes_where_it_stopped(pipeline):
    home, config = pipeline

    # 1. kill -9 inside training, right after the checkpoint at step 2
    killed = run(home, config, ADAPTEROPS_CRASH_AT="train-after-checkpoint")
    assert killed.returncode == -9, killed.stderr[-3000:]
    [train_run] = [r for r in runs(home, "resume/adapters") if r.data.tags.get("stage") == "train"]
    assert train_run.info.status == "RUNNING"                               # what a dead process leaves

    # 2. SIGTERM inside evaluation: one line, no traceback; training resumed from its checkpoint first
    stopped = run(home, config, ADAPTEROPS_SIGNAL_AT="evaluate-logging:TERM")
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode == 143, output[-3000:]
    assert "interrupted at evaluation; `adapterops run` resumes" in output and "Traceback" not in output, output[-3000:]
    trains = {r.info.run_id: r for r in runs(home, "resume/adapters") if r.data.tags.get("stage") == "train"}
    assert trains[train_run.info.run_id].info.status == "KILLED"
    assert "ended without finishing this run" in trains[train_run.info.run_id].data.tags["adapterops.killed_reason"]
    [resumed] = [r for i, r in trains.items() if i != train_run.info.run_id]
    assert resumed.info.status == "FINISHED" and int(resumed.data.tags["train.resumed_from_step"]) >= 2
    assert "Marked 1 MLflow run(s)" in output

    # 3. kill -9 inside staging, with the staging server up: the server dies with it
    killed = run(home, config, ADAPTEROPS_CRASH_AT="staging-server-up")
    assert killed.returncode == -9, killed.stderr[-3000:]
    deadline = time.monotonic() + 60
    while servers_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert servers_of(home) == [], "the staging server outlived the killed run"

    # 4. a plain run continues from staging (evaluated already) and releases; the next one has nothing to do
    finished = run(home, config)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-3000:]
    assert "continued from stage" in output and "nothing to do" not in output and "promoted to production" in output
    assert len([r for r in runs(home, "resume/adapters") if r.data.tags.get("stage") == "train"]) == 2   # not retrained
    again = run(home, config)
    assert again.returncode == 0 and "nothing to do" in again.stdout, (again.stdout + again.stderr)[-3000:]
