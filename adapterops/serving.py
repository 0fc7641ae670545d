"""MLflow pyfunc model (logged as code, never pickled): base model by reference + the LoRA adapter."""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


try:   # the one prompt builder; a registered model ships it as code (code_paths) and imports it as `prompts`
    from tasks.prompts import prompt_token_ids
except ImportError:   # pragma: no cover - only where AdapterOps is not installed
    from prompts import prompt_token_ids


class AdapterModel(PythonModel):
    """Loads the base named in model_config and applies the adapter stored with this model."""

    def load_context(self, context):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = context.model_config
        revision = config.get("serving.base_revision")
        revision = None if not revision or revision.startswith("sha256:") else revision
        self.template = config.get("serving.prompt_template", "{prompt}")
        self.tokenizer = AutoTokenizer.from_pretrained(config["serving.base_path"], revision=revision)
        base = AutoModelForCausalLM.from_pretrained(config["serving.base_path"], revision=revision)
        self.model = PeftModel.from_pretrained(base, context.artifacts["adapter"]).eval()

    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        import torch

        prompts = list(model_input["prompt"]) if hasattr(model_input, "columns") else [str(p) for p in model_input]
        max_new = int((params or {}).get("max_new_tokens", 128))
        outputs = []
        for prompt in prompts:
            ids = torch.tensor([prompt_token_ids(self.tokenizer, prompt, self.template)])
            with torch.no_grad():
                generated = self.model.generate(input_ids=ids, max_new_tokens=max_new, do_sample=False,
                                                pad_token_id=self.tokenizer.pad_token_id)
            outputs.append(self.tokenizer.decode(generated[0, ids.shape[1]:], skip_special_tokens=True))
        return outputs


mlflow.models.set_model(AdapterModel())
