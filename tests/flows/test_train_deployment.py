"""Deployments: the pools and schedules declared in deployments/prefect.yaml, and training on a work pool."""

import importlib
from pathlib import Path

import mlflow
import pytest
import yaml

from adapterops.config import parse_config
from adapterops.errors import AdapterOpsError
from tests.refs import fake_adapter, fake_corpus

DECLARED = yaml.safe_load((Path(__file__).parents[2] / "deployments" / "prefect.yaml").read_text())


def test_each_deployment_names_a_real_flow_a_pool_and_pinned_schedules():
    from prefect.cli.deploy._models import PrefectYamlModel

    PrefectYamlModel.model_validate(DECLARED)
    pools = {}
    for deployment in DECLARED["deployments"]:
        path, name = deployment["entrypoint"].split(":")
        module = path.removesuffix(".py").replace("/", ".")
        flow = getattr(importlib.import_module(module), name)
        pools[f"{flow.name}/{deployment['name']}"] = deployment["work_pool"]["name"]
        for schedule in deployment.get("schedules", []):
            assert {"slug", "active"} <= schedule.keys(), f"{deployment['name']}: schedule without slug/active"
    from flows.train import deployment_name

    assert pools[deployment_name(parse_config({"train": {"work_pool": "gpu"}}))] == "gpu"
    assert pools["curate/cpu"] == pools["evaluate/cpu"] == pools["retrain/weekly"] == "cpu"


def test_training_on_a_pool_without_its_deployment_says_how_to_deploy(prefect_harness):
    from flows.train import train_on_work_pool

    config = parse_config({"name": "pooled", "train": {"work_pool": "nowhere"}})
    with pytest.raises(AdapterOpsError, match="prefect deploy --prefect-file deployments/prefect.yaml"):
        train_on_work_pool(config, fake_corpus(pipeline="pooled", digest="sha256:0"))


def test_training_on_a_work_pool_runs_the_deployment_and_returns_its_adapter(prefect_harness, monkeypatch):
    """A Prefect runner stands in for the GPU worker: it runs the train deployment in a subprocess."""
    import asyncio

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.runner import Runner

    import flows.train as train_module
    from flows.approve import approve
    from flows.curate import curate
    from tests.flows.background import start_in_background, wait_for_flow_runs

    monkeypatch.setattr(train_module, "POOL_POLL_SECONDS", 1)
    config = parse_config({"name": "pooled-ok", "approval": "auto", "demo_records": 150,
                           "train": {"max_steps": 2, "batch_size": 2, "work_pool": "test-worker"},
                           "release": {"model_name": "pool-tests"}})
    corpus = curate(config)
    approve(config, corpus)
    runner = Runner(name="test-worker", query_seconds=1, pause_on_shutdown=False)
    deployment_id = runner.add_flow(train_module.train, name="test-worker")
    caller, outcome = start_in_background(train_module.train_on_work_pool, config, corpus)
    wait_for_flow_runs(FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id])))
    asyncio.run(runner.start(run_once=True))
    caller.join(timeout=180)
    assert "error" not in outcome, outcome.get("error")
    assert "result" in outcome, "the train deployment's run did not finish"
    adapter = outcome["result"]
    assert adapter.model_name == "pool-tests" and adapter.steps == 2
    tags = mlflow.MlflowClient().get_model_version("pool-tests", adapter.version).tags
    assert tags["corpus.digest"] == corpus.digest and tags["approval.approver"] == "policy:auto"
    run = mlflow.get_run(adapter.run_id)   # logged by the worker's process, found through its flow run id
    assert run.data.tags["prefect.flow_run_id"] and run.info.status == "FINISHED"


def test_train_command_without_an_approved_corpus_says_what_to_run():
    from cli.commands.train import approved_corpus

    with pytest.raises(AdapterOpsError, match="no approved corpus version"):
        approved_corpus("never-curated")


def test_a_crashed_training_task_is_retried_and_resumes_but_a_user_error_is_not(prefect_harness, monkeypatch):
    import flows.train as train_module

    calls = []
    adapter = fake_adapter(resumed_from_step=1)

    def flaky(recipe, corpus, base, run_dir, *, resume, **options):
        calls.append(resume)
        if len(calls) == 1:
            raise RuntimeError("worker lost")               # a crash: retried
        return adapter

    monkeypatch.setattr(train_module, "train_adapter", flaky)
    config = parse_config({"name": "retried", "train": {"retries": 2}})
    corpus = fake_corpus(pipeline="retried")
    assert train_module.train(config, corpus) == adapter
    # the first attempt resumes only from a checkpoint written for the same data ("auto"); the retry always does
    assert calls == ["auto", True]

    def refused(*args, **kwargs):
        calls.append("user error")
        raise AdapterOpsError("corpus not approved")

    monkeypatch.setattr(train_module, "train_adapter", refused)
    with pytest.raises(AdapterOpsError, match="not approved"):
        train_module.train(config, corpus)
    assert calls[2:] == ["user error"]                      # not retried: it would fail the same way


def test_a_training_run_that_crashed_on_its_pool_is_submitted_again_to_resume(prefect_harness, monkeypatch):
    """A crash is the machine's (a worker killed): submitted again with resume, up to train.retries times."""
    from types import SimpleNamespace

    import prefect.deployments
    from prefect import flow
    from prefect.states import Completed, Crashed

    import flows.train as train_module

    resumes = []

    def run_deployment(name, parameters, **options):
        resumes.append(parameters["resume"])
        state = Crashed(message="worker killed") if len(resumes) == 1 else Completed()
        return SimpleNamespace(id=f"run-{len(resumes)}", name=f"run-{len(resumes)}", state=state)

    monkeypatch.setattr(prefect.deployments, "run_deployment", run_deployment)
    monkeypatch.setattr(train_module, "adapter_of_flow_run", lambda config, flow_run_id: {"from": flow_run_id})

    def train_there(retries: int):
        config = parse_config({"name": "crashy", "train": {"work_pool": "gpu", "retries": retries}})
        return flow(name="train-there")(lambda: train_module.train_on_work_pool(config, fake_corpus(pipeline="crashy")))()

    assert train_there(1) == {"from": "run-2"} and resumes == [False, True]
    resumes.clear()
    with pytest.raises(AdapterOpsError, match="ended Crashed"):
        train_there(0)
    assert resumes == [False]
