"""The weekly run on the services a team shares: MLflow server on PostgreSQL with artifacts in S3, Prefect server on
PostgreSQL with `cpu` and `gpu` process workers, curation shards on a Dask cluster. The `gpu` worker has its own
workspace and cannot see the curation workspace (a private mount namespace hides it): the corpus comes to it
through MLflow. Only URIs and the workers' environments differ from the embedded set-up."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.server.test_weekly_on_a_server import BIN, ROOT, adapterops, flow_runs, owner_signs, run, state_of, wait_until
from tests.services.cluster import start_services, stop_services

pytestmark = pytest.mark.services


def lane_config(dask: str) -> dict:
    return {"name": "lane", "approval": "owner", "demo_records": 150, "release": {"model_name": "lane-adapter"},
            "train": {"max_steps": 4, "batch_size": 2, "checkpoint_every": 2, "work_pool": "gpu"},
            "dedup": {"workers": 2, "dask_address": dask}}


def lane_deployments(path: Path, config: dict) -> Path:
    """deployments/prefect.yaml with the lane's config, and the deployments the scenario runs."""
    declared = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    kept = []
    for deployment in declared["deployments"]:
        if deployment["entrypoint"] in ("flows/retrain.py:retrain", "flows/approved.py:train_approved",
                                        "flows/train.py:train"):
            if "parameters" in deployment:
                deployment["parameters"]["config"] = config
            for schedule in deployment.get("schedules", []):
                schedule["active"] = False      # the lane starts the run itself
            kept.append(deployment)
    declared["deployments"] = kept
    path.write_text(yaml.safe_dump(declared))
    return path


def can_hide_folders() -> bool:
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "none", "/mnt"],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture()
def services():
    if shutil.which("unshare") is None or not can_hide_folders():
        pytest.skip("the lane hides the curation workspace from the gpu worker with `unshare -m` (root or "
                    "CAP_SYS_ADMIN); this machine refuses it")
    root = Path(tempfile.mkdtemp(prefix="adapterops-services-"))   # not under pytest's 0700 folder: PostgreSQL runs as nobody
    started = None
    try:
        started = start_services(root)
        yield started
    finally:
        if started is not None:
            stop_services(started)
        for log in sorted(root.glob("*.log")):     # shown by pytest when the test failed
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        shutil.rmtree(root, ignore_errors=True)


def worker_env(services, home: Path) -> dict:
    return services.env | {"ADAPTEROPS_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}


def stage_counts(services, before: dict) -> dict:
    """Requests each server answered since `before`, and the totals now."""
    now = {name: services.requests(name) for name in ("mlflow", "prefect")}
    return {name: sum((now[name] - before[name]).values()) for name in now}, now


def test_weekly_run_on_shared_services_trains_on_the_gpu_worker_from_the_artifact_store(services):
    root = services.root
    cpu_home, gpu_home = root / "cpu-home", root / "gpu-home"
    cpu_home.mkdir()
    gpu_home.mkdir()
    cpu = worker_env(services, cpu_home)
    cpu["ADAPTEROPS_CONTRACTS"] = str(owner_signs(cpu, root / "contracts"))
    gpu = worker_env(services, gpu_home) | {"ADAPTEROPS_CONTRACTS": cpu["ADAPTEROPS_CONTRACTS"]}
    config = lane_config(services.env["DASK_SCHEDULER"])
    prefect = str(BIN / "prefect")
    counts, totals = {}, {name: services.requests(name) for name in ("mlflow", "prefect")}

    for pool in ("cpu", "gpu"):
        run(cpu, prefect, "work-pool", "create", pool, "--type", "process")
    run(cpu, prefect, "--no-prompt", "deploy", "--prefect-file", str(lane_deployments(root / "prefect.yaml", config)),
        "--all")
    counts["set-up (pools, deploy)"], totals = stage_counts(services, totals)
    services.processes.start_with("cpu-worker", cpu, prefect, "worker", "start", "--pool", "cpu", "--limit", "2")
    # the gpu machine: its own workspace, and the curation workspace is not there (an empty tmpfs over it)
    services.processes.start_with("gpu-worker", gpu, "unshare", "-m", "--propagation", "private", "sh", "-c",
                                  f'mount -t tmpfs none "{cpu_home}" && exec "{prefect}" worker start --pool gpu')
    run(cpu, prefect, "deployment", "run", "retrain/weekly")

    wait_until(lambda: "Suspended" in state_of(cpu, "retrain"), "the weekly run to curate and suspend", 420)
    counts["curate (ingest, PII, dedup on Dask, contract, split, version) + wait"], totals = stage_counts(services, totals)
    dask_logs = (root / "dask-worker-1.log").read_text() + (root / "dask-worker-2.log").read_text()
    assert "dedup-sketch-shard" in dask_logs, "no dedup shard ran on the Dask workers"

    out = adapterops(cpu, "corpus", "approve", "1", "--name", "lane", "--as", "dana.k", "--note", "lane", "--yes")
    assert "Resumed the flow runs waiting on v1" in out
    counts["approve (CLI, event)"], totals = stage_counts(services, totals)

    wait_until(lambda: state_of(cpu, "train-approved") == ["Completed"], "the on-approval run to finish", 900)
    wait_until(lambda: state_of(cpu, "retrain") == ["Completed"], "the weekly run to end", 120)
    counts["train on gpu + evaluate + release"], totals = stage_counts(services, totals)
    trains = flow_runs(cpu, "train")
    assert [(r.work_pool_name, r.state.name) for r in trains] == [("gpu", "Completed")]

    # the gpu worker read the corpus from the artifact store, into its own workspace, and trained there
    fetched = list((gpu_home / "corpus-fetched").glob("*/train.parquet"))
    assert len(fetched) == 1 and (fetched[0].parent / "decision.dsse.json").is_file()
    assert list((gpu_home / "runs" / "train").rglob("checkpoints")) and not (cpu_home / "runs" / "train").exists()

    import mlflow

    mlflow.set_tracking_uri(services.env["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    versions = client.search_model_versions("name='lane-adapter'")
    assert [v.version for v in versions] == ["1"], "the corpus was trained more than once"
    decision = versions[0].tags["release.decision"]
    expected = {"candidate": "1"} | ({"production": "1"} if decision == "promote" else {})
    assert client.get_registered_model("lane-adapter").aliases == expected

    # every artifact is in the object store; runs, versions and aliases in PostgreSQL
    keys = services.s3_keys()
    for suffix in ("corpus/train.parquet", "corpus/manifest.json", "approvals/decision.dsse.json",
                   "adapter_model.safetensors", "evaluation/gate.json", "adapter.json"):
        assert any(key.endswith(suffix) for key in keys), f"{suffix} is not in the object store"
    for home in (cpu_home, gpu_home):     # nothing went to a local store
        assert not [p for p in (home / "mlflow").rglob("*") if p.is_file()]
    stages = dict(services.sql("mlflow", "select tags.value, count(*) from runs join tags on tags.run_uuid = "
                                         "runs.run_uuid and tags.key = 'stage' group by tags.value"))
    assert stages.get("train") == 1 and stages.get("evaluate") == 1
    assert services.sql("mlflow", "select name, version from model_versions") == [("lane-adapter", 1)]
    assert dict(services.sql("mlflow", "select alias, version from registered_model_aliases")) == \
        {alias: int(v) for alias, v in expected.items()}
    names = {row[0] for row in services.sql("prefect", "select name from deployment")}
    assert {"weekly", "gpu", "on-approval"} <= names
    assert services.sql("prefect", "select count(*) from flow_run where state_name = 'Completed'")[0][0] >= 3

    report = {"records": config["demo_records"], "requests": counts,
              "mlflow_by_endpoint": dict(services.requests("mlflow").most_common(12))}
    (Path(os.environ.get("ADAPTEROPS_LANE_REPORT", root / "requests.json"))).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))

