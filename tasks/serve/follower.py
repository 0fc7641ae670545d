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
from tasks.model.prompts import adapter_template
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
                             tags.get("corpus.digest", ""), dict(config), adapter_template(adapter_dir, config))


def resolver(client):
    """(name, alias, version) -> the registered version to load, or None when it does not exist."""
    from mlflow.exceptions import MlflowException

    def resolve(name: str, alias: str | None, version: str | None) -> RegisteredAdapter | None:
        if alias is not None:
            version = alias_version(client, name, alias)
            if version is None:
                return None
        try:
            client.get_model_version(name, version)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE") or "not found" in str(error).lower():
                return None
            raise
        return registered_adapter(client, name, version)
    return resolve


def registered_names(client, names: list[str]) -> list[str]:
    """The registered models that `--name` values mean: a registered model's own name, or a pipeline's
    (the config's `name`): the models its training runs registered versions under."""
    from adapterops.tracking import adapter_experiment
    from mlflow.exceptions import MlflowException

    found = []
    for name in names:
        try:
            client.get_registered_model(name)
            found.append(name)
            continue
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST" and "not found" not in str(error).lower():
                raise AdapterOpsError(f"The MLflow registry did not answer for {name!r} ({error.error_code}); "
                                      "check the tracking server.") from None
        experiment = client.get_experiment_by_name(adapter_experiment(name))
        models = []
        if experiment is not None:
            for model in client.search_registered_models():
                versions = client.search_model_versions(f"name='{model.name}'")
                runs = {v.run_id for v in versions if v.run_id}
                if any(_run_experiment(client, run) == experiment.experiment_id for run in runs):
                    models.append(model.name)
        if not models:
            raise AdapterOpsError(f"{name!r} is neither a registered model nor a pipeline with registered adapters; "
                                  "`adapterops status` lists both.")
        found.extend(models)
    return list(dict.fromkeys(found))


def _run_experiment(client, run_id: str) -> str | None:
    try:
        return client.get_run(run_id).info.experiment_id
    except Exception:   # noqa: BLE001 - a deleted run names no experiment
        return None


def load_pool(first: RegisteredAdapter, **options) -> AdapterPool:
    """The base model of the first adapter, loaded once (eval mode, on the GPU when there is one)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, revision = base_model_location(first.config, builtin_base_location)
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    if first.chat_template:   # render as the adapter was trained (its stored template)
        tokenizer.chat_template = first.chat_template
    model = AutoModelForCausalLM.from_pretrained(path, revision=revision).to(detect_device()).eval()
    return AdapterPool(model, tokenizer, first.base_name, first.base_revision, first.prompt_template, **options)


class RegistryFollower:
    """Polls the registry every poll_seconds and swaps in the version each served alias now points at."""

    def __init__(self, pool: AdapterPool, client, targets: list[tuple[str, str]], poll_seconds: float):
        self.pool, self.client, self.targets, self.poll_seconds = pool, client, targets, poll_seconds
        self.status: dict = {"registry": {"last_poll": None, "error": None}}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="adapterops-registry-poll", daemon=True)

    def sync(self) -> None:
        """One poll: attach what moved, detach aliases that no longer exist; a failure keeps what is served.

        Polled: the aliases served now (loaded on demand or at start) and the configured ones not loaded yet,
        these only while there is room (serve.max_loaded), so a poll never evicts an adapter to load one."""
        errors = []
        with self.pool.routes_lock:
            routed = list(self.pool.aliases)
        for name, alias in list(dict.fromkeys(routed + self.targets)):
            try:
                version = alias_version(self.client, name, alias)
                with self.pool.routes_lock:
                    current = self.pool.aliases.get((name, alias))
                    full = len(self.pool.loaded) >= self.pool.max_loaded and (name, version) not in self.pool.loaded
                if version is None and current is not None:
                    log.warning("%s@%s no longer exists in the registry; no longer served", name, alias)
                    self.pool.detach(name, alias)
                elif version is not None and version != current and (current is not None or not full):
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


def build_server(model_names: list[str], aliases: list[str], settings: ServeConfig, follow: bool = True,
                 keys=None, progress=None):
    """(app, follower, batcher) serving every (name, alias) that exists now; the poll adds the others when they
    appear, and any other version or alias of these names loads on its first request. `model_names` may name
    pipelines (their registered models are served); `keys` is a KeyRing; `progress(text)` reports start-up."""
    import mlflow

    say = progress or (lambda text: None)
    client = mlflow.MlflowClient()
    model_names = registered_names(client, model_names)
    targets = [(name, alias) for name in model_names for alias in aliases]
    found = {(name, alias): version for name, alias in targets
             if (version := alias_version(client, name, alias)) is not None}
    if not found:
        raise AdapterOpsError(f"None of {', '.join(f'{n}@{a}' for n, a in targets)} exists in the registry; "
                              "`adapterops status` lists the registered adapters and their aliases.")
    fetched = {}
    for number, (key, version) in enumerate(found.items(), start=1):
        if (key[0], version) not in fetched:
            say(f"fetching {key[0]} v{version} ({number}/{len(found)})")
            fetched[(key[0], version)] = registered_adapter(client, key[0], version)
    first = next(iter(fetched.values()))
    if settings.cpu_threads:
        import torch

        torch.set_num_threads(settings.cpu_threads)
    say(f"loading the base model {first.base_name}")
    pool = load_pool(first, resolver=resolver(client), names=model_names, max_loaded=settings.max_loaded)
    for number, ((name, alias), version) in enumerate(list(found.items())[:settings.max_loaded], start=1):
        say(f"attaching {name}@{alias} (v{version}) ({number}/{min(len(found), settings.max_loaded)})")
        pool.attach(fetched[(name, version)], alias)
    batcher = Batcher(pool, settings.max_batch, settings.max_queue, settings.batch_wait_ms / 1000).start()
    follower = RegistryFollower(pool, client, targets, settings.poll_seconds)
    if follow:
        follower.start()
    return create_app(pool, batcher, settings, follower.status, keys), follower, batcher
