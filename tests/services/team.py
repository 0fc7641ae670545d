"""The team's set-up on the lane's services: the deployments, a `cpu` worker on the curation workspace and a
`gpu` worker with a workspace of its own that cannot see the curation one (a private mount namespace hides it)."""

import json
import re
import subprocess
from pathlib import Path

from tests.server.test_weekly_on_a_server import BIN, lane_deployments, owner_signs, run, wait_until


def lane_config(dask: str) -> dict:
    return {"name": "lane", "approval": "owner", "demo_records": 150, "release": {"model_name": "lane-adapter"},
            "train": {"max_steps": 4, "batch_size": 2, "checkpoint_every": 2, "work_pool": "gpu"},
            "dedup": {"workers": 2, "dask_address": dask}}


TEAM_FLOWS = ("flows/retrain.py:retrain", "flows/approved.py:train_approved", "flows/train.py:train",
              "flows/curate.py:curate")   # the deployments the shared-services scenario runs


def can_hide_folders() -> bool:
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "none", "/mnt"],
                          capture_output=True)
    return done.returncode == 0


def worker_env(services, home: Path) -> dict:
    return services.env | {"ADAPTEROPS_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}


def state_of_run(env: dict, flow_run_id: str) -> str | None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run_id).state
            return state.name if state else None


def start_team(services, config: dict) -> tuple[dict, dict]:
    """Pools, deployments and both workers; returns the environments of the curation and the gpu machine."""
    root = services.root
    cpu_home, gpu_home = root / "cpu-home", root / "gpu-home"
    cpu_home.mkdir()
    gpu_home.mkdir()
    cpu = worker_env(services, cpu_home)
    cpu["ADAPTEROPS_CONTRACTS"] = str(owner_signs(cpu, root / "contracts"))
    gpu = worker_env(services, gpu_home) | {"ADAPTEROPS_CONTRACTS": cpu["ADAPTEROPS_CONTRACTS"]}
    prefect = str(BIN / "prefect")
    for pool in ("cpu", "gpu"):
        run(cpu, prefect, "work-pool", "create", pool, "--type", "process")
    deployments = lane_deployments(root / "prefect.yaml", config, TEAM_FLOWS)
    run(cpu, prefect, "--no-prompt", "deploy", "--prefect-file", str(deployments), "--all")
    services.processes.start_with("cpu-worker", cpu, prefect, "worker", "start", "--pool", "cpu", "--limit", "2")
    start_gpu_worker(services, gpu, cpu_home)
    return cpu, gpu


def start_gpu_worker(services, gpu: dict, hidden: Path) -> None:
    """The gpu machine: its own workspace, and the curation workspace is not there (an empty tmpfs over it)."""
    services.processes.start_with("gpu-worker", gpu, "unshare", "-m", "--propagation", "private", "sh", "-c",
                                  f'mount -t tmpfs none "{hidden}" && exec "{BIN / "prefect"}" worker start --pool gpu')


def start_deployment(env: dict, name: str, parameters: dict | None = None) -> str:
    """`prefect deployment run`; returns the flow run's id."""
    extra = ["--params", json.dumps(parameters)] if parameters else []
    out = run(env, str(BIN / "prefect"), "deployment", "run", name, *extra)
    return re.search(r"UUID: ([0-9a-f-]{36})", out).group(1)


def wait_for_end(env: dict, flow_run_id: str, what: str, seconds: float = 600) -> str:
    wait_until(lambda: state_of_run(env, flow_run_id) in ("Completed", "Failed", "Crashed", "Cancelled"), what, seconds)
    return state_of_run(env, flow_run_id)
