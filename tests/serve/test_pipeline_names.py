"""`adapterops serve --name` takes the pipeline name, as every other command does, or the registered model name."""

import mlflow
import pytest

from adapterops.config import ServeConfig
from adapterops.errors import AdapterOpsError
from adapterops.tracking import adapter_experiment
from tests.serve.adapters import register_adapter


def test_a_pipeline_name_serves_the_models_its_training_registered(tiny_model_dir):
    from fastapi.testclient import TestClient

    from tasks.serve import build_server
    from tasks.serve.follower import registered_names

    register_adapter("pipe-names-model", 61, tiny_model_dir, "production", experiment=adapter_experiment("pipe-names"))
    client = mlflow.MlflowClient()
    assert registered_names(client, ["pipe-names"]) == ["pipe-names-model"]
    assert registered_names(client, ["pipe-names-model"]) == ["pipe-names-model"]
    with pytest.raises(AdapterOpsError, match="neither a registered model nor a pipeline"):
        registered_names(client, ["no-such-pipeline"])

    app, _, batcher = build_server(["pipe-names"], ["production"], ServeConfig(max_new_tokens=4), follow=False)
    try:
        with TestClient(app) as http:
            answer = http.post("/v1/chat/completions", json={"model": "pipe-names-model",
                                                             "messages": [{"role": "user", "content": "hello"}]})
    finally:
        batcher.stop()
    assert answer.status_code == 200 and answer.json()["system_fingerprint"] == "pipe-names-model/1"
