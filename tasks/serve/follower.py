"""Where `adapterops serve` meets the MLflow registry: read the versions aliases point at, fetch their adapters,
load the base once, and follow alias moves with a background poll."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path

from adapterops.base_models import builtin_base_location
from adapterops.config import ServeConfig
from adapterops.errors import AdapterOpsError
from tasks.model.base_model import detect_device
from tasks.model.prompts import use_adapter_template
from tasks.serve.app import create_app
from tasks.serve.base_location import base_model_location
from tasks.serve.engine import AdapterPool, Batcher, RegisteredAdapter

log = logging.getLogger("adapterops.serve")


def alias_version(client, model_name: str, alias: str) -> str | None:
    """The version an alias points at; None only when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
            return None
        raise AdapterOpsError(f"The MLflow registry did not answer for {model_name}@{alias} ({error.error_code}); "
                              "check the tracking server.") from None


def registered_adapter(client, model_name: str, version: str) -> RegisteredAdapter:
    """Download a registered version's files and read its base model and prompt template from its MLmodel."""
    import mlflow
    from mlflow.models import Model

    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}"))
    flavor = Model.load(folder / "MLmodel").flavors.get("python_function", {})
    config = flavor.get("config") or {}
    adapter_dir = folder / flavor.get("artifacts", {}).get("adapter", {}).get("path", "artifacts/adapter")
    if not (adapter_dir / "adapter_config.json").is_file() or "serving.base_name" not in config:
        raise AdapterOpsError(f"{model_name} v{version} holds no LoRA adapter with its base model recorded; it was not "
                              "registered by AdapterOps and cannot be served here.")
    tags = client.get_model_version(model_name, version).tags
    return RegisteredAdapter(model_name, str(version), str(adapter_dir), config["serving.base_name"],
                             config.get("serving.base_revision", ""), config.get("serving.prompt_template", "{prompt}"),
                             tags.get("corpus.digest", ""), dict(config))


def load_pool(first: RegisteredAdapter) -> AdapterPool:
    """The base model of the first adapter, loaded once (eval mode, on the GPU when there is one)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, revision = base_model_location(first.config, builtin_base_location)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    use_adapter_template(tokenizer, first.adapter_dir)   # render as the adapter was trained (its stored template)
    model = AutoModelForCausalLM.from_pretrained(path, revision=revision).to(detect_device()).eval()
    return AdapterPool(model, tokenizer, first.base_name, first.base_revision, first.prompt_template)


class RegistryFollower:
    """Polls the registry every poll_seconds and swaps in the version each served alias now points at."""

    def __init__(self, pool: AdapterPool, client, targets: list[tuple[str, str]], poll_seconds: float):
        self.pool, self.client, self.targets, self.poll_seconds = pool, client, targets, poll_seconds
        self.status: dict = {"registry": {"last_poll": None, "error": None}}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="adapterops-registry-poll", daemon=True)

    def sync(self) -> None:
        """One poll: attach what moved, detach aliases that no longer exist; a failure keeps what is served."""
        errors = []
        for name, alias in self.targets:
            try:
                version = alias_version(self.client, name, alias)
                with self.pool.routes_lock:
                    current = self.pool.aliases.get((name, alias))
                if version is None and current is not None:
                    log.warning("%s@%s no longer exists in the registry; no longer served", name, alias)
                    self.pool.detach(name, alias)
                elif version is not None and version != current:
                    self.pool.attach(registered_adapter(self.client, name, version), alias)
                    log.info("%s@%s: now v%s (was %s)", name, alias, version, f"v{current}" if current else "not served")
            except Exception as error:   # the registry or a download failed: keep serving what is loaded
                errors.append(f"{name}@{alias}: {error}")
                log.error("registry poll for %s@%s failed: %s", name, alias, error)
        self.status["registry"] = {"last_poll": datetime.now(timezone.utc).isoformat(), "error": "; ".join(errors) or None}

    def start(self) -> "RegistryFollower":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        while not self.stopped.wait(self.poll_seconds):
            self.sync()


def build_server(model_names: list[str], aliases: list[str], settings: ServeConfig, follow: bool = True):
    """(app, follower, batcher) serving every (name, alias) that exists now; the poll adds the others when they appear."""
    import mlflow

    client = mlflow.MlflowClient()
    targets = [(name, alias) for name in model_names for alias in aliases]
    found = {(name, alias): version for name, alias in targets
             if (version := alias_version(client, name, alias)) is not None}
    if not found:
        raise AdapterOpsError(f"None of {', '.join(f'{n}@{a}' for n, a in targets)} exists in the registry; "
                              "`adapterops status` lists the registered adapters and their aliases.")
    fetched = {}
    for key, version in found.items():
        fetched.setdefault((key[0], version), registered_adapter(client, key[0], version))
    first = next(iter(fetched.values()))
    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    pool = load_pool(first)
    for (name, alias), version in found.items():
        pool.attach(fetched[(name, version)], alias)
    batcher = Batcher(pool, settings.max_batch, settings.max_queue).start()
    follower = RegistryFollower(pool, client, targets, settings.poll_seconds)
    if follow:
        follower.start()
    return create_app(pool, batcher, settings, follower.status), follower, batcher
