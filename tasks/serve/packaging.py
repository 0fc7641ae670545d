"""How a registered adapter is packaged to be servable anywhere: the pyfunc as code, the modules it ships,
a signature with params, and the base model by id and revision (never its weights)."""

from __future__ import annotations

from pathlib import Path

from tasks.model.generate import DEFAULT_MAX_NEW_TOKENS
from tasks.serve.base_location import base_model_config

TASKS = Path(__file__).resolve().parents[1]
# Imported bare by the pyfunc where AdapterOps is not installed: their names must stay distinct.
SHIPPED = (TASKS / "model" / "prompts.py", TASKS / "model" / "generate.py", TASKS / "serve" / "base_location.py")


def pyfunc_model_args(base_name: str, base_path: str, base_revision: str, builtin: bool, prompt_template: str) -> dict:
    """The arguments of `mlflow.pyfunc.log_model` for an adapter version."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("max_new_tokens", "long", DEFAULT_MAX_NEW_TOKENS),
                            ParamSpec("temperature", "double", 0.0),
                            ParamSpec("stop", "string", [], shape=(-1,))]))
    return {"python_model": str(TASKS / "serve" / "pyfunc.py"),
            "code_paths": [str(path) for path in SHIPPED],
            "signature": signature,
            "model_config": base_model_config(base_name, base_path, base_revision, builtin)
            | {"serving.prompt_template": prompt_template},
            "pip_requirements": ["torch==2.13.0", "transformers>=5.24,<5.25", "peft>=0.21.2,<0.22"]}
