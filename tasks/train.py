"""LoRA training as one recipe: load → prepare data → wrap with LoRA → train → save."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adapterops.config import BUILTIN_TINY_MODEL, Config, LoraConfig, TrainConfig
from adapterops.errors import AdapterOpsError

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


@dataclass
class BaseModelRef:
    """Where the base model comes from: what the registry records instead of its weights."""
    name: str
    path: str
    revision: str


def resolve_base_model(cfg: Config, models_dir: Path) -> BaseModelRef:
    """The built-in tiny model (built on first use), a local folder, or a hub id with its revision."""
    from adapterops.tiny_model import TINY_MODEL_NAME, ensure_tiny_model, weights_revision

    if cfg.base_model == BUILTIN_TINY_MODEL:
        path = ensure_tiny_model(models_dir)
        return BaseModelRef(TINY_MODEL_NAME, str(path), weights_revision(path))
    local = Path(cfg.base_model).expanduser()
    if local.is_dir():
        return BaseModelRef(local.name, str(local.resolve()), cfg.base_model_revision or weights_revision(local))
    return BaseModelRef(cfg.base_model, cfg.base_model, cfg.base_model_revision or "main")


def load_base_model(ref: BaseModelRef, trust_remote_code: bool = False, device: str = "cpu"):
    """Model and tokenizer through the same from_pretrained path for a hub id or a local folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    revision = None if ref.revision.startswith("sha256:") else ref.revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=revision, trust_remote_code=trust_remote_code)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model = AutoModelForCausalLM.from_pretrained(ref.path, revision=revision, dtype=dtype,
                                                     trust_remote_code=trust_remote_code)
    except OSError as error:
        raise AdapterOpsError(f"Cannot load base model {ref.path!r} (revision {ref.revision}): {str(error).splitlines()[0]} "
                              "Point base_model at a local folder or a hub id present in the local cache.") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer


def render_prompt(tokenizer, prompt: str, template: str) -> str:
    """The tokenizer's chat template when it has one, else the configured prompt template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return template.format(prompt=prompt)


def tokenize_examples(records: list[dict], tokenizer, template: str, max_length: int) -> tuple[list[Example], int]:
    """Prompt + completion token ids with the loss on the completion only; returns (examples, truncated count)."""
    examples, truncated = [], 0
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    for record in records:
        prompt_ids = bos + tokenizer(render_prompt(tokenizer, record["prompt"], template), add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(record["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = prompt_ids + completion_ids
        labels = [IGNORE] * len(prompt_ids) + completion_ids
        if len(ids) > max_length:
            truncated += 1
            ids, labels = ids[:max_length], labels[:max_length]
        if any(label != IGNORE for label in labels):
            examples.append(Example(ids, labels))
    return examples, truncated


def collate(batch: list[Example], pad_id: int):
    """Right-padded tensors; padding is masked out of attention and loss."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return ids, mask, labels


def wrap_with_lora(model, lora: LoraConfig, seed: int):
    """Seed, then add LoRA layers: their initialisation is the same on every run."""
    import torch
    from peft import LoraConfig as PeftLoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def learning_rate_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    remaining = max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.learning_rate * max(0.0, 1 - (step - cfg.warmup_steps) / remaining)


def train_lora(model, tokenizer, examples: list[Example], cfg: TrainConfig,
               on_step: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Train the LoRA parameters of `model` in place; returns the per-step metrics."""
    import torch

    if not examples:
        raise AdapterOpsError("No training examples: the approved corpus has no train records with a completion.")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    order = torch.Generator().manual_seed(cfg.seed)
    queue: list[int] = []
    history = []
    model.train()
    for step in range(cfg.max_steps):
        started = time.perf_counter()
        batch = []
        while len(batch) < cfg.batch_size:
            if not queue:
                queue = torch.randperm(len(examples), generator=order).tolist()
            batch.append(examples[queue.pop()])
        ids, mask, labels = (t.to(device) for t in collate(batch, tokenizer.pad_token_id))
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, cfg)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        metrics = {"loss": loss.item(), "learning_rate": optimizer.param_groups[0]["lr"],
                   "grad_norm": float(grad_norm), "tokens_per_second": float(mask.sum()) / elapsed}
        if not math.isfinite(metrics["loss"]):
            raise AdapterOpsError(f"Training diverged at step {step} (loss {metrics['loss']}); lower train.learning_rate.")
        history.append(metrics)
        if on_step:
            on_step(step, metrics)
    model.eval()
    return history


def save_adapter(model, directory: Path) -> Path:
    """Save the adapter alone (safetensors + config) and check that no base weight slipped in."""
    from safetensors import safe_open

    model.save_pretrained(directory, safe_serialization=True)
    weights = directory / "adapter_model.safetensors"
    with safe_open(str(weights), framework="pt") as handle:
        foreign = [k for k in handle.keys() if "lora_" not in k]
    if foreign:
        raise AdapterOpsError(f"The adapter at {directory} holds non-LoRA weights ({foreign[:3]}...); "
                              "turn off save_embedding_layers unless the vocabulary changed.")
    return weights


def expected_adapter_bytes(model) -> int:
    """Bytes the adapter's tensors should take: trainable parameters at their stored width."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


# --- wrapper: the training run in MLflow and the registered adapter version ----------------------

def flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_examples(path, tokenizer, cfg: TrainConfig) -> tuple[list[Example], int]:
    import pandas as pd

    records = pd.read_parquet(path)[["prompt", "completion"]].to_dict("records")
    return tokenize_examples(records, tokenizer, cfg.prompt_template, cfg.max_length)


def train_adapter(cfg: Config, corpus: dict, run_dir, progress: Callable[[int, dict], None] | None = None) -> dict:
    """Refuse unapproved bytes, train the adapter, log the run and register the adapter-only model."""

    import mlflow
    import torch

    from adapterops.tracking import adapter_experiment, ensure_experiment
    from adapterops.workspace import resolve_workspace
    from tasks.approval import require_approved

    corpus_tags = require_approved(corpus["pipeline"], corpus["digest"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = resolve_base_model(cfg, resolve_workspace().models_dir)
    model, tokenizer = load_base_model(base, cfg.trust_remote_code, device)
    folder = Path(corpus["path"])
    train_examples, truncated = load_examples(folder / "train.parquet", tokenizer, cfg.train)
    model = wrap_with_lora(model, cfg.lora, cfg.train.seed)
    experiment = ensure_experiment(adapter_experiment(cfg.name))
    with mlflow.start_run(experiment_id=experiment, run_name=f"train-corpus-v{corpus['version']}") as run:
        mlflow.set_tags({"base_model": base.name, "base_model.revision": base.revision, "corpus.digest": corpus["digest"],
                         "corpus.version": str(corpus["version"]), "corpus.run_id": corpus["run_id"],
                         "approval.approver": corpus_tags.get("approval.approver", ""),
                         "contract": corpus["contract"], "contract.version": str(corpus["contract_version"]),
                         "device": device, "stage": "train"})
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(cfg.model_dump(mode="json")).items()})
        mlflow.log_metrics({"data.train_examples": len(train_examples), "data.truncated": truncated,
                            "model.trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)})

        def on_step(step: int, metrics: dict) -> None:
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps - 1:
                mlflow.log_metrics({f"train.{k}": v for k, v in metrics.items()}, step=step)
            if progress:
                progress(step, metrics)

        history = train_lora(model, tokenizer, train_examples, cfg.train, on_step)
        adapter_dir = Path(run_dir) / "adapter"
        weights = save_adapter(model, adapter_dir)
        expected = expected_adapter_bytes(model)
        info = mlflow.pyfunc.log_model(
            name="adapter", python_model=str(Path(__file__).resolve().parent.parent / "adapterops" / "serving.py"),
            artifacts={"adapter": str(adapter_dir)}, registered_model_name=cfg.release.model_name,
            model_config={"serving.base_name": base.name, "serving.base_path": base.path, "serving.base_revision": base.revision,
                          "serving.prompt_template": cfg.train.prompt_template},
            pip_requirements=["torch==2.13.0", "transformers>=5.24,<5.25", "peft>=0.21.2,<0.22"])
        logged_bytes = _logged_bytes(info.model_uri)
        if logged_bytes > expected * 1.5 + 1_000_000:
            raise AdapterOpsError(f"The logged adapter is {logged_bytes} bytes, far above the {expected} its LoRA "
                                  "weights need: base weights were logged. This is a bug; please report it.")
        mlflow.log_metrics({"adapter.bytes": weights.stat().st_size, "adapter.logged_bytes": logged_bytes,
                            "train.final_loss": history[-1]["loss"]})
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for key, value in {"base_model": base.name, "base_model.revision": base.revision,
                           "corpus.digest": corpus["digest"], "corpus.version": str(corpus["version"]),
                           "contract.version": str(corpus["contract_version"]), "train.run_id": run.info.run_id,
                           "eval.digest": corpus_tags.get("corpus.eval_digest", "")}.items():
            client.set_model_version_tag(cfg.release.model_name, version, key, value)
    return {"model_name": cfg.release.model_name, "version": version, "run_id": run.info.run_id,
            "adapter_dir": str(adapter_dir), "adapter_bytes": weights.stat().st_size, "logged_bytes": logged_bytes,
            "base_name": base.name, "base_path": base.path, "base_revision": base.revision,
            "final_loss": history[-1]["loss"], "steps": len(history), "device": device}


def _logged_bytes(model_uri: str) -> int:
    """Total size of the files logged under a model URI."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(model_uri))
    return sum(p.stat().st_size for p in local.rglob("*") if p.is_file())
