"""adapterops export: the folder loads with peft alone and carries what vLLM, TGI and LoRAX require."""

import json

import pytest
import torch
from safetensors.torch import load_file

from adapterops.errors import AdapterOpsError
from tasks.release.export import config_problems
from tests.serve.adapters import register_adapter


def test_the_exported_folder_loads_with_peft_and_carries_every_field_the_servers_need(tiny_model_dir, tmp_path):
    import mlflow
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from adapterops.tiny_model import weights_revision
    from tasks.release.export import export_adapter
    from tasks.serve.follower import registered_adapter

    version = register_adapter("svc-export", 31, tiny_model_dir, "production")
    out = tmp_path / "svc-export"
    done = export_adapter("svc-export", "production", None, out)
    assert done["version"] == version and sorted(p.name for p in out.iterdir()) == [
        "README.txt", "adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny-llama" and config["revision"] == weights_revision(tiny_model_dir)
    assert config_problems(config) == [] and config["peft_type"] == "LORA" and config["r"] == 4
    readme = (out / "README.txt").read_text()
    assert f"vllm serve tiny-llama --enable-lora --lora-modules svc-export={out.resolve()}" in readme
    assert "LORA_ADAPTERS=svc-export=/adapters/svc-export" in readme and "predibase/lorax" in readme

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    source = registered_adapter(mlflow.MlflowClient(), "svc-export", version).adapter_dir
    registered = load_file(f"{source}/adapter_model.safetensors")
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(registered) and all(
        torch.equal(v, loaded[k.replace(".weight", ".default.weight")]) for k, v in registered.items())

    with pytest.raises(AdapterOpsError, match="not empty"):
        export_adapter("svc-export", "production", None, out)
    with pytest.raises(AdapterOpsError, match="does not exist"):
        export_adapter("svc-export", "staging", None, tmp_path / "other")


def test_the_export_carries_the_chat_template_the_adapter_was_trained_with(tiny_model_dir, tmp_path):
    from tasks.release.export import export_adapter

    register_adapter("svc-export-template", 32, tiny_model_dir, "production", chat_template="{{ messages }}")
    out = tmp_path / "with-template"
    export_adapter("svc-export-template", "production", None, out)
    assert (out / "chat_template.jinja").read_text() == "{{ messages }}"
    assert f"--chat-template {out.resolve()}/chat_template.jinja" in (out / "README.txt").read_text()


@pytest.mark.parametrize("change,problem", [({"modules_to_save": ["lm_head"]}, "modules_to_save"),
                                            ({"use_dora": True}, "use_dora"), ({"bias": "all"}, "bias"),
                                            ({"revision": None}, "revision"), ({"peft_type": "IA3"}, "peft_type")])
def test_config_problems_name_what_a_server_would_refuse(change, problem):
    good = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM",
            "base_model_name_or_path": "org/model", "revision": "abc", "bias": "none"}
    assert config_problems(good) == []
    assert any(problem in p for p in config_problems(good | change))
