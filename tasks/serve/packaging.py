"""How a registered adapter is packaged to be servable anywhere: the pyfunc as code, the modules it ships,
a signature with params, and the base model by id and revision (never its weights)."""

from __future__ import annotations

from pathlib import Path

from tasks.model.generate import DEFAULT_MAX_NEW_TOKENS
from tasks.serve.base_location import base_model_config

TASKS = Path(__file__).resolve().parents[1]
# Imported bare by the pyfunc where AdapterOps is not installed: their names must stay distinct.
SHIPPED = (TASKS / "model" / "prompts.py", TASKS / "model" / "generate.py", TASKS / "model" / "tool_calls.py",
           TASKS / "serve" / "base_location.py")


def pyfunc_model_args(base_name: str, base_path: str, base_revision: str, builtin: bool, prompt_template: str,
                      tool_call_syntax: str = "auto", chat_template_digest: str = "") -> dict:
    """The arguments of `mlflow.pyfunc.log_model` for an adapter version.

    The input is either prompts or conversations (`messages`, optional `tools`), which one MLflow column schema
    cannot say, so the signature declares the params only and the model checks its input itself (a bad one
    answers 400, tasks/serve/pyfunc.py)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec

    signature = ModelSignature(
        inputs=None, outputs=None,
        params=ParamSchema([ParamSpec("max_new_tokens", "long", DEFAULT_MAX_NEW_TOKENS),
                            ParamSpec("temperature", "double", 0.0),
                            ParamSpec("stop", "string", [], shape=(-1,))]))
    return {"python_model": str(TASKS / "serve" / "pyfunc.py"),
            "code_paths": [str(path) for path in SHIPPED],
            "signature": signature,
            "model_config": base_model_config(base_name, base_path, base_revision, builtin)
            | {"serving.prompt_template": prompt_template, "serving.tool_call_syntax": tool_call_syntax,
               # the template itself is the adapter's chat_template.jinja; its digest lets a server compare adapters
               "serving.chat_template_digest": chat_template_digest},
            "pip_requirements": ["torch==2.13.0", "transformers>=5.24,<5.25", "peft>=0.21.2,<0.22"]}
