"""Where a registered adapter's base model is, read from what its MLmodel records.

Dependency-free on purpose: the registered MLflow model ships this file (code_paths) and imports it as
`base_location` where AdapterOps is not installed. The built-in tiny model is found by the caller (the
edge resolver `adapterops.base_models.builtin_base_model`), never here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

OVERRIDE_ENV = "ADAPTEROPS_BASE_MODEL_PATH"
BUILTIN, LOCAL, HUB = "builtin", "local", "hub"


class BaseModelNotFound(RuntimeError):
    """The base model named by a registered adapter cannot be found here."""


def base_model_config(name: str, path: str, revision: str, builtin: bool) -> dict:
    """What a registered adapter records about its base: the id and revision, never a machine's path."""
    source = BUILTIN if builtin else (HUB if name == path else LOCAL)
    return {"serving.base_name": name, "serving.base_revision": revision, "serving.base_source": source}


def base_model_location(config: dict, builtin: Callable[[], tuple[str, str]] | None = None) -> tuple[str, str | None]:
    """(path or hub id, hub revision or None) to load the base from.

    ADAPTEROPS_BASE_MODEL_PATH (or a `serving.base_path` given at load time) overrides; the built-in tiny
    model is `builtin()` — (path, revision) of this machine's copy — and must have the recorded revision;
    a hub id loads at its recorded revision.
    """
    override = os.environ.get(OVERRIDE_ENV) or config.get("serving.base_path")
    name, revision = config.get("serving.base_name", ""), config.get("serving.base_revision") or None
    source = config.get("serving.base_source", LOCAL)
    if override:
        return override, None if not revision or revision.startswith("sha256:") else revision
    if source == BUILTIN:
        if builtin is None:
            raise BaseModelNotFound(f"The adapter's base is AdapterOps' built-in {name!r}: install AdapterOps, or set "
                                    f"{OVERRIDE_ENV} to a copy of it.")
        path, found = builtin()
        if revision and found != revision:
            raise BaseModelNotFound(f"The built-in {name!r} here ({found}) is not the one the adapter was trained on "
                                    f"({revision}); set {OVERRIDE_ENV} to the right copy.")
        return path, None
    if source == HUB:
        return name, revision
    raise BaseModelNotFound(f"The adapter's base model {name!r} ({revision}) was a local folder when it was trained; "
                            f"set {OVERRIDE_ENV} to that folder on this machine.")
