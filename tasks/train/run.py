"""The training run in MLflow and the registered adapter version: refuse unapproved bytes, run the
recipe (tasks/train/recipe.py), log it and register the adapter-only model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from adapterops.config import BUILTIN_TINY_MODEL, Recipe
from adapterops.errors import AdapterOpsError
from adapterops.refs import AdapterRef, BaseModelRef, CorpusRef, ReusedAdapter
from adapterops.tracking import adapter_experiment, ensure_experiment
from adapterops.workspace import resolve_workspace
from tasks.approve.approval import require_approved
from tasks.corpus.fetch import corpus_folder
from tasks.corpus.versions import lineage_markdown, lineage_tags, log_corpus_inputs
from tasks.release.registry import aliases_by_version, registered_model, registry_call
from tasks.serve.packaging import pyfunc_model_args
from tasks.train.recipe import run_recipe, training_key, training_template
from tasks.train.sft_data import load_records

ADAPTER_FILE = "adapter.json"


def flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def truncation_note(adapter: AdapterRef, max_length: int) -> str | None:
    """A warning when examples were cut at max_length (their completion tails were not trained on)."""
    if not adapter.truncated:
        return None
    return (f"{adapter.truncated} of {adapter.examples} training examples were longer than train.max_length="
            f"{max_length} tokens and were cut; raise train.max_length if their endings matter.")


def recipe_label(recipe: Recipe) -> str:
    """A short readable name of the recipe for run and model names: rank, steps and a digest of the rest."""
    digest = hashlib.sha256(json.dumps(recipe.settings(), sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"r{recipe.lora.r}-s{recipe.train.max_steps}-{digest}"


def train_run_dir(corpus: CorpusRef) -> Path:
    """The run folder of training on a corpus version: the same on a retry, so it can resume."""
    return resolve_workspace().runs_dir / "train" / corpus.pipeline / f"corpus-v{corpus.version}-{corpus.digest[-12:]}"


def train_adapter(recipe: Recipe, corpus: CorpusRef, base: BaseModelRef, run_dir, *, model_name: str, approval: str,
                  logged_config: dict | None = None, progress: Callable[[int, dict], None] | None = None,
                  resume: bool = False, extra_tags: dict | None = None) -> AdapterRef:
    """Refuse unapproved bytes, run the recipe, log the run and register the adapter-only model as `model_name`.

    approval: the policy the pipeline runs under (`auto` or `owner`); logged_config: the whole run config, logged
    as the run's params (the recipe's sections when not given).
    """
    import mlflow

    corpus_tags = require_approved(corpus.pipeline, corpus.digest, approval)  # signed decision, rehashed bytes
    records = load_records(corpus_folder(corpus) / "train.parquet")   # fetched from MLflow on another machine
    experiment = ensure_experiment(adapter_experiment(corpus.pipeline))
    label = recipe_label(recipe)
    with mlflow.start_run(experiment_id=experiment, run_name=f"train-corpus-v{corpus.version}-{label}",
                          log_system_metrics=recipe.train.system_metrics) as run:
        lineage = lineage_tags(corpus, corpus_tags)
        mlflow.set_tags({"base_model": base.name, "base_model.revision": base.revision, "stage": "train"}
                        | lineage | (extra_tags or {}))
        params = logged_config if logged_config is not None else recipe.model_dump(mode="json")
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
        log_corpus_inputs(corpus)

        def on_step(step: int, metrics: dict) -> None:
            if step % recipe.train.log_every == 0 or step == recipe.train.max_steps - 1:
                mlflow.log_metrics({f"train.{k}": v for k, v in metrics.items()}, step=step)
            if progress:
                progress(step, metrics)

        done = run_recipe(recipe, base, records, Path(run_dir), resume, on_step)
        history = done["history"]
        mlflow.set_tags({"device": done["device"], "train.resumed_from_step": str(done["resumed_from_step"])})
        preflight = done["preflight"]
        mlflow.log_metrics({"data.train_examples": done["examples"], "data.truncated": done["truncated"],
                            "data.quarantined": len(preflight.quarantined), "data.untrained": len(preflight.untrained),
                            "data.trained_tokens": preflight.trained_tokens,
                            "data.context_tokens": preflight.context_tokens,
                            "data.longest_tokens": preflight.longest_tokens,
                            "data.over_max_length": preflight.over_max_length,
                            "data.replayed": done.get("replayed", 0),
                            "model.trainable_parameters": done["trainable_parameters"]})
        mlflow.log_dict(preflight.__dict__, "preflight.json")   # counts and the ids left out, with their reasons
        if done["chat_template"]:
            mlflow.log_text(done["chat_template"], "chat_template.jinja")
        adapter_dir = Path(done["adapter_dir"])
        weights = adapter_dir / "adapter_model.safetensors"
        info = mlflow.pyfunc.log_model(
            name=f"adapter-corpus-v{corpus.version}-{label}",
            artifacts={"adapter": str(adapter_dir)}, registered_model_name=model_name,
            **pyfunc_model_args(base.name, base.path, base.revision, recipe.base_model == BUILTIN_TINY_MODEL,
                                recipe.train.prompt_template, recipe.train.tool_call_syntax,
                                done["chat_template_digest"]))
        logged_bytes = check_logged_artifact(info.model_uri, done["expected_adapter_bytes"])
        mlflow.log_metrics({"adapter.bytes": weights.stat().st_size, "adapter.logged_bytes": logged_bytes,
                            "train.final_loss": history[-1]["loss"]})
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        reuse_key = training_key(corpus.digest, base.revision, recipe.settings(), done["chat_template"])
        for key, value in ({"base_model": base.name, "base_model.revision": base.revision,
                            "train.run_id": run.info.run_id, "train.key": reuse_key,
                            "chat_template.digest": done["chat_template_digest"]} | lineage).items():
            client.set_model_version_tag(model_name, version, key, value)
        client.update_model_version(model_name, version, description=lineage_markdown(corpus))
        adapter = AdapterRef(model_name=model_name, version=version, run_id=run.info.run_id,
                             model_id=info.model_id, recipe=label, adapter_dir=str(adapter_dir),
                             adapter_bytes=weights.stat().st_size, logged_bytes=logged_bytes, base_name=base.name,
                             base_path=base.path, base_revision=base.revision, final_loss=history[-1]["loss"],
                             steps=len(history), device=done["device"].split(":")[0], examples=done["examples"],
                             truncated=done["truncated"], resumed_from_step=done["resumed_from_step"],
                             chat_template_digest=done["chat_template_digest"])
        mlflow.log_dict(adapter.model_dump(mode="json"), ADAPTER_FILE)
    return adapter


def load_adapter_ref(run_id: str) -> AdapterRef:
    """The adapter reference a training run logged (on whichever machine trained it)."""
    import mlflow

    return AdapterRef.model_validate(mlflow.artifacts.load_dict(f"runs:/{run_id}/{ADAPTER_FILE}"))


def check_logged_artifact(model_uri: str, expected_bytes: int) -> int:
    """Total bytes logged under a model URI; fails if it holds base weights or far more than the adapter needs."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    files = [p for p in local.rglob("*") if p.is_file()]
    foreign = [p.name for p in files if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".gguf"}
               and p.name != "adapter_model.safetensors"]
    total = sum(p.stat().st_size for p in files)
    if foreign or total > expected_bytes * 1.5 + 1_000_000:
        raise AdapterOpsError(f"The logged adapter at {model_uri} is {total} bytes (weights files: {foreign or 'adapter only'}), "
                              f"far above the {expected_bytes} its LoRA weights need: base weights were logged. "
                              "This is a bug; please report it with the run id.")
    return total


# --- reuse: an unchanged corpus and recipe does not train twice -----------------------------------

def find_trained_version(model_name: str, key: str):
    """The registered version already trained with this training key, or None."""
    import mlflow

    versions = registry_call(
        lambda: mlflow.MlflowClient().search_model_versions(f"name = '{model_name}' and tag.`train.key` = '{key}'"),
        f"looking for a version of {model_name!r} already trained with this corpus and recipe", absent_ok=True)
    return max(versions, key=lambda v: int(v.version)) if versions else None


def reusable_version(recipe: Recipe, model_name: str, corpus: CorpusRef, base: BaseModelRef) -> ReusedAdapter | None:
    """The version of `model_name` already trained from this corpus, recipe and chat template, with its release
    decision; else None."""
    key = training_key(corpus.digest, base.revision, recipe.settings(), training_template(recipe, base))
    found = find_trained_version(model_name, key)
    if found is None:
        return None
    import mlflow

    aliases = aliases_by_version(registered_model(mlflow.MlflowClient(), model_name).aliases)
    return ReusedAdapter(model_name=model_name, version=str(found.version),
                         aliases=aliases.get(str(found.version), []), decision=found.tags.get("release.decision", ""),
                         reason=found.tags.get("release.reason", ""))
