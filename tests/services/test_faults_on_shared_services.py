"""Faults on the shared services: a Dask worker killed while it sketches a shard (the curation completes with the
digest of an undisturbed one); the gpu worker killed after a checkpoint and started again (the crashed training
is submitted again and resumes); the MLflow server restarted while it trains (the step retries or fails with one
clear error; no half-registered model version)."""

import os
import signal
import time

import pytest

from tests.server.test_weekly_on_a_server import adapterops, flow_runs, wait_until
from tests.services.team import lane_config, start_deployment, start_gpu_worker, start_team, wait_for_end

pytestmark = pytest.mark.services


def corpus_digest_of(env: dict, pipeline: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=[f"{pipeline}/corpus"], output_format="list",
                              filter_string="attributes.status = 'FINISHED'")
    assert len(runs) == 1
    return runs[0].data.tags["corpus.digest"]


def kill_the_worker_that_sketches(services, seconds: float = 300) -> str:
    """SIGKILL (worker and nanny) the Dask worker that is running a dedup shard, the moment it has one."""
    from distributed import Client

    def busy(dask_scheduler) -> list:   # only curation's shards run on the cluster
        return [worker.name for worker in dask_scheduler.workers.values() if worker.processing]

    with Client(services.env["DASK_SCHEDULER"], timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if names := client.run_on_scheduler(busy):
                os.killpg(services.processes.started[names[0]].pid, signal.SIGKILL)
                return names[0]
            time.sleep(0.05)
    raise AssertionError("no Dask worker ran a shard")


def test_a_killed_dask_worker_gpu_worker_and_an_mlflow_restart_leave_the_same_corpus_and_one_whole_version(services):
    config = lane_config(services.env["DASK_SCHEDULER"]) | {
        "train": {"max_steps": 400, "batch_size": 2, "checkpoint_every": 5, "work_pool": "gpu"},
        "release": {"model_name": "lane-adapter", "staging": False}}
    cpu, gpu = start_team(services, config)

    # pipeline `lane`: the on-approval deployment trains that pipeline's approved versions
    disturbed = start_deployment(cpu, "curate/cpu", {"config": config})
    killed = kill_the_worker_that_sketches(services)
    assert wait_for_end(cpu, disturbed, "the curation that lost a Dask worker") == "Completed"
    services.processes.started.pop(killed).wait(timeout=30)
    calm = start_deployment(cpu, "curate/cpu", {"config": config | {"name": "calm"}})
    assert wait_for_end(cpu, calm, "the undisturbed curation") == "Completed"
    assert corpus_digest_of(cpu, "lane") == corpus_digest_of(cpu, "calm")

    adapterops(cpu, "corpus", "approve", "1", "--name", "lane", "--as", "dana.k", "--note", "lane", "--yes")
    # the gpu machine goes down after its first checkpoint and comes back: the crashed run is submitted again
    checkpoints = services.root / "gpu-home" / "runs" / "train"
    wait_until(lambda: list(checkpoints.rglob("step-*")), "the first checkpoint on the gpu worker", 600)
    os.killpg(services.processes.started["gpu-worker"].pid, signal.SIGKILL)
    services.processes.started.pop("gpu-worker").wait(timeout=30)
    start_gpu_worker(services, gpu, services.root / "cpu-home")
    wait_until(lambda: [r.state.name for r in flow_runs(cpu, "train") if r.state].count("Running") == 1 and
               len(flow_runs(cpu, "train")) == 2, "the re-submitted training to run", 600)

    log = services.root / "gpu-worker.log"
    seen = len(log.read_text(errors="replace"))
    services.processes.stop("mlflow")            # the tracking server goes away mid-training, then comes back
    wait_until(lambda: any(sign in log.read_text(errors="replace")[seen:]
                           for sign in ("Connection refused", "Max retries exceeded", "Failed(")),
               "the gpu worker to meet the stopped MLflow server", 300)
    services.start_mlflow()
    approved = flow_runs(cpu, "train-approved")
    assert len(approved) == 1
    state = wait_for_end(cpu, str(approved[0].id), "the on-approval run after the MLflow restart", 900)

    import mlflow

    client = mlflow.MlflowClient(services.env["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions("name='lane-adapter'")
    for version in versions:       # a registered version is whole: tagged with its recipe key, from a finished run
        assert "train.key" in version.tags and client.get_run(version.run_id).info.status == "FINISHED"
    if state == "Completed":
        assert len(versions) == 1
        assert sorted(r.state.name for r in flow_runs(cpu, "train")) == ["Completed", "Crashed"]
        assert int(client.get_run(versions[0].run_id).data.tags["train.resumed_from_step"]) > 0
    else:
        message = flow_runs(cpu, "train-approved")[0].state.message or ""
        assert "MLflow" in message or "mlflow" in message or "registry" in message, message
        assert "Traceback" not in message
    print(f"after the MLflow restart: train-approved {state}, {len(versions)} model version(s); "
          f"{flow_runs(cpu, 'train-approved')[0].state.message}")
