"""`adapterops export`: a registered adapter in the folder layout GPU inference servers load (vLLM, TGI, LoRAX)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from adapterops.errors import AdapterOpsError
from tasks.release.registry import registered_version
from tasks.serve.follower import alias_version, registered_adapter

WEIGHTS, CONFIG = "adapter_model.safetensors", "adapter_config.json"
TEMPLATE = "chat_template.jinja"   # the chat template the adapter was trained with (tasks/model/prompts.py)


def export_config(original: dict, base_name: str, base_revision: str) -> dict:
    """The adapter's peft config pointing at the base model by id, with the base revision it was trained on."""
    return original | {"base_model_name_or_path": base_name, "revision": base_revision, "inference_mode": True}


def config_problems(config: dict) -> list[str]:
    """What vLLM, TGI or LoRAX would refuse in an adapter_config.json (empty: every server loads it)."""
    problems = []
    for field in ("peft_type", "r", "lora_alpha", "target_modules", "base_model_name_or_path", "revision", "task_type"):
        if config.get(field) in (None, "", []):
            problems.append(f"{field} is missing")
    if config.get("peft_type") not in (None, "LORA"):
        problems.append(f"peft_type is {config['peft_type']}; the servers load LoRA adapters only")
    if config.get("modules_to_save"):
        problems.append("modules_to_save is set; vLLM refuses adapters that carry full modules")
    if config.get("use_dora"):
        problems.append("use_dora is set; vLLM and LoRAX serve plain LoRA only")
    if config.get("bias", "none") != "none":
        problems.append("bias is trained; vLLM serves LoRA adapters without bias only")
    return problems


def serve_commands(name: str, base_name: str, base_revision: str, folder: str, rank: int, template: bool = False) -> str:
    """README.txt: the exact command that serves this folder with each server (with the adapter's chat template)."""
    rank_flag = f" --max-lora-rank {max(16, 1 << (rank - 1).bit_length())}" if rank > 16 else ""
    revision = "" if base_revision.startswith("sha256:") else f" --revision {base_revision}"
    template_flag = f" --chat-template {folder}/{TEMPLATE}" if template else ""
    files = f", {TEMPLATE} (the chat template it was trained with: serve with it, or answers degrade)" if template else ""
    return f"""{name}: a LoRA adapter for {base_name} (revision {base_revision}), exported by AdapterOps.
Files: {CONFIG} (peft config; base_model_name_or_path and revision name the base), {WEIGHTS}{files}.

vLLM (OpenAI API; request model "{name}"):
  vllm serve {base_name}{revision} --enable-lora{rank_flag} --lora-modules {name}={folder}{template_flag}

Text Generation Inference (request with "parameters": {{"adapter_id": "{name}"}}):
  docker run --gpus all -p 8080:80 -v {folder}:/adapters/{name} -e LORA_ADAPTERS={name}=/adapters/{name} \\
    ghcr.io/huggingface/text-generation-inference --model-id {base_name}{revision}

LoRAX (request with "parameters": {{"adapter_id": "/adapters/{name}", "adapter_source": "local"}}):
  docker run --gpus all -p 8080:80 -v {folder}:/adapters/{name} ghcr.io/predibase/lorax:main \\
    --model-id {base_name}{revision}

peft / transformers:
  PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base_name}"{'' if revision == '' else f', revision="{base_revision}"'}), "{folder}")
"""


# --- wrapper: from the registry to the folder ------------------------------------------------------

def export_adapter(model_name: str, alias: str | None, version: str | None, out_dir: Path) -> dict:
    """Write the version at alias (or the given version) of model_name into out_dir; refuse a non-empty out_dir."""
    import mlflow

    client = mlflow.MlflowClient()
    if version is None:
        version = alias_version(client, model_name, alias or "production")
        if version is None:
            raise AdapterOpsError(f"{model_name}@{alias or 'production'} does not exist; `adapterops status` lists the "
                                  "adapters and their aliases.")
    registered_version(client, model_name, version)
    adapter = registered_adapter(client, model_name, version)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise AdapterOpsError(f"{out_dir} is not empty; export into a new folder.")
    source = Path(adapter.adapter_dir)
    config = export_config(json.loads((source / CONFIG).read_text()), adapter.base_name, adapter.base_revision)
    if problems := config_problems(config):
        raise AdapterOpsError(f"{model_name} v{version} cannot be served by vLLM/TGI/LoRAX: {'; '.join(problems)}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / WEIGHTS, out_dir / WEIGHTS)
    template = (source / TEMPLATE).is_file()
    if template:
        shutil.copyfile(source / TEMPLATE, out_dir / TEMPLATE)
    (out_dir / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    (out_dir / "README.txt").write_text(serve_commands(model_name, adapter.base_name, adapter.base_revision,
                                                      str(out_dir.resolve()), int(config["r"]), template))
    return {"model_name": model_name, "version": version, "folder": str(out_dir.resolve()),
            "base_name": adapter.base_name, "base_revision": adapter.base_revision}
