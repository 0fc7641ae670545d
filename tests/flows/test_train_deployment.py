"""Deployments: the pools and schedules declared in deployments/prefect.yaml, and training on a work pool."""

import importlib
from pathlib import Path

import pytest
import yaml

from adapterops.config import parse_config
from adapterops.errors import AdapterOpsError

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
        train_on_work_pool(config, {"pipeline": "pooled", "digest": "sha256:0", "version": 1})


def test_train_command_without_an_approved_corpus_says_what_to_run():
    from adapterops.commands.train import approved_corpus

    with pytest.raises(AdapterOpsError, match="no approved corpus version"):
        approved_corpus("never-curated")
