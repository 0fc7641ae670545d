"""Registered adapters made in a second: random LoRA weights on the tiny base, logged exactly as training logs them."""

from __future__ import annotations

import tempfile
from pathlib import Path

TEMPLATE = "### Ticket\n{prompt}\n### Response\n"


# A ChatML-like template with system, tools, tool calls and tool results (the Qwen / Hermes family's shape).
CHAT_TEMPLATE = (
    "{%- if tools or messages[0].role == 'system' %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content }}{% endif %}"
    "{%- if tools %}\n# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>{% endif %}"
    "<|im_end|>\n{% endif %}"
    "{%- for m in messages %}{% if m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{%- for c in m.tool_calls or [] %}<tool_call>{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}</tool_call>{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def register_adapter(model_name: str, seed: int, base_dir: Path, alias: str | None = None,
                     chat_template: str | None = None, experiment: str = "serve-tests") -> str:
    """Register a LoRA adapter with seeded random weights under model_name (with its chat template beside the
    weights, chat_template.jinja, when given: as training stores the template it rendered with); return its version."""
    import mlflow
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from adapterops.tiny_model import TINY_MODEL_NAME, weights_revision
    from adapterops.tracking import ensure_experiment
    from tasks.serve.packaging import pyfunc_model_args

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir),
                           LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "down_proj"],
                                      task_type="CAUSAL_LM", init_lora_weights=False))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        if chat_template:
            (Path(folder) / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
        with mlflow.start_run(experiment_id=ensure_experiment(experiment)):
            info = mlflow.pyfunc.log_model(
                name="adapter", artifacts={"adapter": folder}, registered_model_name=model_name,
                **pyfunc_model_args(TINY_MODEL_NAME, str(base_dir), weights_revision(base_dir), True, TEMPLATE))
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(model_name, version, "corpus.digest", f"sha256:test-{model_name}-{seed}")
    if alias:
        client.set_registered_model_alias(model_name, alias, version)
    return version
