"""MLflow pyfunc model (logged as code, never pickled): base model by reference + the LoRA adapter.

Input: a `prompt` column (MLflow's inputs / dataframe_split / dataframe_records / instances formats);
params: max_new_tokens, temperature (0: greedy, the only decoding served), stop.
"""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

try:   # shipped with the registered model (code_paths); imported bare where AdapterOps is not installed
    from tasks.generate import generate
    from tasks.prompts import prompt_token_ids
    from tasks.served_model import DEFAULT_MAX_NEW_TOKENS, base_model_location, cut_at_stop
except ImportError:   # pragma: no cover - only where AdapterOps is not installed
    from generate import generate
    from prompts import prompt_token_ids
    from served_model import DEFAULT_MAX_NEW_TOKENS, base_model_location, cut_at_stop


def _bad_input(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)   # the scoring server answers 400


def prompts_of(model_input) -> list[str]:
    """The prompts of a request: a DataFrame's `prompt` column (or its only column), or a list of strings/records."""
    if hasattr(model_input, "columns"):
        if "prompt" not in model_input.columns and len(model_input.columns) != 1:
            raise _bad_input(f"expected a 'prompt' column, got {list(model_input.columns)}")
        column = model_input["prompt"] if "prompt" in model_input.columns else model_input.iloc[:, 0]
        rows = column.tolist()
    else:
        rows = [v.get("prompt") if isinstance(v, dict) else v for v in list(model_input)]
    values = []   # {"prompt": [a, b]} arrives as one row holding the list
    for row in rows:
        values.extend(row.tolist() if hasattr(row, "tolist") else row if isinstance(row, list) else [row])
    if not values:
        raise _bad_input("no prompts: send at least one non-empty prompt")
    if any(not isinstance(v, str) or not v.strip() for v in values):
        raise _bad_input("every prompt must be a non-empty string")
    return values


class AdapterModel(PythonModel):
    """Loads the base named in model_config and applies the adapter stored with this model."""

    def load_context(self, context):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = context.model_config
        path, revision = base_model_location(config)
        self.template = config.get("serving.prompt_template", "{prompt}")
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        base = AutoModelForCausalLM.from_pretrained(path, revision=revision)
        self.model = PeftModel.from_pretrained(base, context.artifacts["adapter"]).eval()

    def predict(self, context, model_input, params=None) -> list[str]:
        params = params or {}
        prompts = prompts_of(model_input)
        max_new = int(params.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        if max_new < 1:
            raise _bad_input("max_new_tokens must be at least 1")
        if float(params.get("temperature") or 0.0) != 0.0:
            raise _bad_input("this model decodes greedily: send temperature 0 or leave it out")
        stop = params.get("stop")
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        ids = [prompt_token_ids(self.tokenizer, p, self.template) for p in prompts]
        answers = generate(self.model, self.tokenizer, ids, max_new, adapter="default")
        return [cut_at_stop(a.text, stop)[0] for a in answers]


mlflow.models.set_model(AdapterModel())
