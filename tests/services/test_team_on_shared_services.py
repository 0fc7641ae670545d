"""The weekly run on the services a team shares: MLflow server on PostgreSQL with artifacts in S3, Prefect server on
PostgreSQL with `cpu` and `gpu` process workers, curation shards on a Dask cluster. The `gpu` worker has its own
workspace and cannot see the curation workspace (a private mount namespace hides it): the corpus comes to it
through MLflow. Only URIs and the workers' environments differ from the embedded set-up."""

import json
import os
from pathlib import Path

import pytest

from tests.server.test_weekly_on_a_server import adapterops, flow_runs, state_of, wait_until
from tests.services.team import lane_config, start_deployment, start_team, wait_for_end

pytestmark = pytest.mark.services


def stage_counts(services, before: dict) -> tuple[dict, dict]:
    """Requests each server answered since `before`, and the totals now."""
    now = {name: services.requests(name) for name in ("mlflow", "prefect")}
    return {name: sum((now[name] - before[name]).values()) for name in now}, now


def test_weekly_run_on_shared_services_trains_on_the_gpu_worker_from_the_artifact_store(services):
    root = services.root
    cpu_home, gpu_home = root / "cpu-home", root / "gpu-home"
    config = lane_config(services.env["DASK_SCHEDULER"])
    counts, totals = {}, {name: services.requests(name) for name in ("mlflow", "prefect")}
    cpu, gpu = start_team(services, config)
    counts["set-up (pools, deploy, workers)"], totals = stage_counts(services, totals)
    start_deployment(cpu, "retrain/weekly")

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

    # the same curation on 4x the records makes the same MLflow requests: they grow with stages, not records
    by_size = {}
    for records in (150, 600):
        sized = config | {"name": f"size{records}", "demo_records": records}
        flow_run_id = start_deployment(cpu, "curate/cpu", {"config": sized})
        assert wait_for_end(cpu, flow_run_id, f"the curation of {records} records", 300) == "Completed"
        by_size[records], totals = stage_counts(services, totals)
    assert by_size[600]["mlflow"] <= by_size[150]["mlflow"] + 5, by_size
    counts |= {f"curate/cpu alone, {n} records": c for n, c in by_size.items()}

    report = {"records": config["demo_records"], "requests": counts,
              "mlflow_by_endpoint": dict(services.requests("mlflow").most_common(12))}
    (Path(os.environ.get("ADAPTEROPS_LANE_REPORT", root / "requests.json"))).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))

