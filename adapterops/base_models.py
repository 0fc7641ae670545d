"""Which base model a config names, resolved at the edge: `builtin:tiny-llama` (built locally on first
use), a local folder, or a hub id with its revision. The recipe gets the resolved BaseModelRef."""

from __future__ import annotations

from pathlib import Path

from adapterops.config import BUILTIN_TINY_MODEL, Recipe
from adapterops.refs import BaseModelRef
from adapterops.tiny_model import TINY_MODEL_NAME, ensure_tiny_model, weights_revision
from adapterops.workspace import resolve_workspace


def builtin_base_model(models_dir: Path | None = None) -> BaseModelRef:
    """The built-in tiny model, built in the workspace on first use."""
    path = ensure_tiny_model(models_dir or resolve_workspace().models_dir)
    return BaseModelRef(TINY_MODEL_NAME, str(path), weights_revision(path))


def builtin_base_location() -> tuple[str, str]:
    """(folder, revision) of this machine's built-in tiny model: how serving finds a builtin adapter's base."""
    ref = builtin_base_model()
    return ref.path, ref.revision


def resolve_base_model(recipe: Recipe, models_dir: Path | None = None) -> BaseModelRef:
    """The built-in tiny model (built in the workspace on first use), a local folder, or a hub id with its revision."""
    if recipe.base_model == BUILTIN_TINY_MODEL:
        return builtin_base_model(models_dir)
    local = Path(recipe.base_model).expanduser()
    if local.is_dir():
        return BaseModelRef(local.name, str(local.resolve()), recipe.base_model_revision or weights_revision(local))
    return BaseModelRef(recipe.base_model, recipe.base_model, recipe.base_model_revision or "main")
