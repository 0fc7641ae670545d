"""What serving an adapter needs besides prompts and generate: where its base model is, and stop sequences.

Dependency-free on purpose: the registered MLflow model ships this file (code_paths) and imports it as
`served_model` where AdapterOps is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

OVERRIDE_ENV = "ADAPTEROPS_BASE_MODEL_PATH"
BUILTIN, LOCAL, HUB = "builtin", "local", "hub"


class BaseModelNotFound(RuntimeError):
    """The base model named by a registered adapter cannot be found here."""


def base_model_config(name: str, path: str, revision: str, builtin: bool) -> dict:
    """What a registered adapter records about its base: the id and revision, never a machine's path."""
    source = BUILTIN if builtin else (HUB if name == path else LOCAL)
    return {"serving.base_name": name, "serving.base_revision": revision, "serving.base_source": source}


def base_model_location(config: dict) -> tuple[str, str | None]:
    """(path or hub id, hub revision or None) to load the base from.

    ADAPTEROPS_BASE_MODEL_PATH (or a `serving.base_path` given at load time) overrides; the built-in tiny
    model is rebuilt in the AdapterOps workspace and must have the recorded revision; a hub id loads at
    its recorded revision.
    """
    override = os.environ.get(OVERRIDE_ENV) or config.get("serving.base_path")
    name, revision = config.get("serving.base_name", ""), config.get("serving.base_revision") or None
    source = config.get("serving.base_source", LOCAL)
    if override:
        return override, None if not revision or revision.startswith("sha256:") else revision
    if source == BUILTIN:
        return _builtin_path(name, revision), None
    if source == HUB:
        return name, revision
    raise BaseModelNotFound(f"The adapter's base model {name!r} ({revision}) was a local folder when it was trained; "
                            f"set {OVERRIDE_ENV} to that folder on this machine.")


def _builtin_path(name: str, revision: str | None) -> str:
    """The built-in tiny model in the AdapterOps workspace, checked against the revision the adapter was trained on."""
    try:
        from adapterops.tiny_model import ensure_tiny_model, weights_revision
        from adapterops.workspace import resolve_workspace
    except ImportError:
        raise BaseModelNotFound(f"The adapter's base is AdapterOps' built-in {name!r}: install AdapterOps, or set "
                                f"{OVERRIDE_ENV} to a copy of it.") from None
    path = ensure_tiny_model(resolve_workspace().models_dir)
    if revision and weights_revision(path) != revision:
        raise BaseModelNotFound(f"The built-in {name!r} here ({weights_revision(path)}) is not the one the adapter was "
                                f"trained on ({revision}); set {OVERRIDE_ENV} to the right copy.")
    return str(path)


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """The text up to the earliest stop sequence, and whether one was found (OpenAI's `stop`)."""
    cuts = [text.find(s) for s in (stop or []) if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


DEFAULT_MAX_NEW_TOKENS = 128


def pyfunc_model_args(base_name: str, base_path: str, base_revision: str, builtin: bool, prompt_template: str) -> dict:
    """The arguments of `mlflow.pyfunc.log_model` that make the registered adapter servable anywhere:
    the pyfunc as code, the shipped modules, a signature with params, and the base by id + revision."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    here = Path(__file__).resolve().parent
    signature = ModelSignature(
        inputs=Schema([ColSpec("string")]), outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("max_new_tokens", "long", DEFAULT_MAX_NEW_TOKENS),
                            ParamSpec("temperature", "double", 0.0),
                            ParamSpec("stop", "string", [], shape=(-1,))]))
    return {"python_model": str(here.parent / "adapterops" / "serving.py"),
            "code_paths": [str(here / f) for f in ("prompts.py", "generate.py", "served_model.py")],
            "signature": signature,
            "model_config": base_model_config(base_name, base_path, base_revision, builtin)
            | {"serving.prompt_template": prompt_template},
            "pip_requirements": ["torch==2.13.0", "transformers>=5.24,<5.25", "peft>=0.21.2,<0.22"]}
