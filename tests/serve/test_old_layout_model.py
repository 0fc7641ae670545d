"""A version registered by the layout before the stage packages still serves: in `adapterops serve` (which reads
its MLmodel) and as MLflow's pyfunc (which runs the old model code it shipped)."""

import shutil
import sys
from pathlib import Path

import mlflow
import yaml

from adapterops.config import ServeConfig

FIXTURE = Path(__file__).parent / "old_layout_model"
MODEL = "old-layout-adapter"


def old_version(tiny_model_dir, folder: Path) -> str:
    """The fixture as a registered version: its files, LoRA weights for this tiny base, the base's revision."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from adapterops.tiny_model import weights_revision

    shutil.copytree(FIXTURE, folder, ignore=shutil.ignore_patterns("README.md"))
    torch.manual_seed(5)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                                      init_lora_weights=False))
    model.save_pretrained(folder / "artifacts" / "adapter")
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["python_function"]["config"]["serving.base_revision"] = weights_revision(tiny_model_dir)
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, source=str(folder)).version
    client.set_registered_model_alias(MODEL, "production", version)
    return str(version)


def test_a_version_logged_by_the_old_layout_serves_and_loads_as_pyfunc(tiny_model_dir, workspace, tmp_path):
    from fastapi.testclient import TestClient

    from tasks.serve import build_server

    version = old_version(tiny_model_dir, tmp_path / "model")
    app, _, batcher = build_server([MODEL], ["production"], ServeConfig(), follow=False)
    try:
        with TestClient(app) as http:
            answer = http.post("/v1/chat/completions", json={"model": MODEL, "max_tokens": 6,
                                                             "messages": [{"role": "user", "content": "I was charged twice"}]})
    finally:
        batcher.stop()
    assert answer.status_code == 200, answer.text
    served = answer.json()["choices"][0]["message"]["content"]
    assert served and answer.json()["model"] == MODEL

    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")   # runs the old serving.py and its code/
    shipped = sys.modules["served_model"]              # the old module, imported bare from the version's code/
    assert Path(shipped.__file__).parent.name == "code" and hasattr(shipped, "pyfunc_model_args")
    predicted = pyfunc.predict(["I was charged twice"], params={"max_new_tokens": 6})
    assert predicted == [served]                       # same adapter, same greedy answer through either door
