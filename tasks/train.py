"""LoRA training as one recipe: load → prepare data → wrap with LoRA → train → save."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adapterops.config import BUILTIN_TINY_MODEL, Config, LoraConfig, TrainConfig
from adapterops.errors import AdapterOpsError
from tasks.prompts import prompt_token_ids

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


def detect_device() -> str:
    """'cuda:N' for this process's GPU (LOCAL_RANK under accelerate launch / torchrun), else 'cpu'."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def attention_implementation(requested: str, device: str, packing: bool = False) -> str:
    """The attention kernel for 'auto': examples packed into a row must not see each other.

    flash_attention_2 on CUDA when installed (varlen: isolated, each example at its own cost);
    else for packed rows 'sdpa_packed' (below: isolated, one causal sdpa call per example);
    else sdpa. Explicit 'sdpa'/'eager' isolate packed examples with a block-diagonal mask.
    """
    if requested != "auto":
        return requested
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    if packing:
        register_packed_sdpa()
        return PACKED_SDPA
    return "sdpa"


PACKED_SDPA = "sdpa_packed"


def packed_segments(position_ids) -> list[list[tuple[int, int]]]:
    """(start, end) of each example in each row: a new example starts where its position id is 0."""
    width = position_ids.shape[-1]
    rows = []
    for row in position_ids.tolist():
        starts = [i for i, p in enumerate(row) if p == 0] or [0]
        rows.append(list(zip(starts, starts[1:] + [width])))
    return rows


def packed_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Causal sdpa run separately on each packed example: isolation at each example's own cost.

    Registered without a mask function, so transformers builds no mask: rows are either packed
    (position ids restart per example) or right-padded (causal attention never reaches the padding).
    """
    import torch
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    position_ids = kwargs.pop("position_ids", None)
    if position_ids is None or attention_mask is not None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    segments = packed_segments(position_ids.expand(query.shape[0], -1))
    rows = []
    for r, row in enumerate(segments):
        parts = [torch.nn.functional.scaled_dot_product_attention(
            query[r:r + 1, :, s:e], key[r:r + 1, :, s:e], value[r:r + 1, :, s:e], is_causal=e - s > 1,
            dropout_p=dropout if module.training else 0.0, scale=scaling) for s, e in row]
        rows.append(torch.cat(parts, dim=2))
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def register_packed_sdpa() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)


def quantization_config(lora: LoraConfig, device: str):
    """A 4-bit NF4 config for QLoRA, or None; refuses QLoRA where it cannot run."""
    if not lora.qlora:
        return None
    if not device.startswith("cuda"):
        raise AdapterOpsError("lora.qlora needs a CUDA GPU; turn it off to train on CPU.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise AdapterOpsError("lora.qlora needs bitsandbytes: `pip install bitsandbytes` on the GPU worker, or turn it off.")
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def load_base_model(ref: BaseModelRef, trust_remote_code: bool = False, device: str = "cpu",
                    attention: str = "auto", quantization=None, packing: bool = False):
    """Model and tokenizer through the same from_pretrained path for a hub id or a local folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    revision = None if ref.revision.startswith("sha256:") else ref.revision
    extra = {"quantization_config": quantization, "device_map": {"": device}} if quantization is not None else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path, revision=revision, trust_remote_code=trust_remote_code)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = AutoModelForCausalLM.from_pretrained(ref.path, revision=revision, dtype=dtype,
                                                     trust_remote_code=trust_remote_code,
                                                     attn_implementation=attention_implementation(attention, device, packing),
                                                     **extra)
    except OSError as error:
        raise AdapterOpsError(f"Cannot load base model {ref.path!r} (revision {ref.revision}): {str(error).splitlines()[0]} "
                              "Point base_model at a local folder or a hub id present in the local cache.") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return (model if quantization is not None else model.to(device)), tokenizer


def tokenize_examples(records: list[dict], tokenizer, template: str, max_length: int) -> tuple[list[Example], int]:
    """Prompt + completion token ids with the loss on the completion only; returns (examples, truncated count)."""
    examples, truncated = [], 0
    for record in records:
        prompt_ids = prompt_token_ids(tokenizer, record["prompt"], template)
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


def pack_rows(batch: list[Example], capacity: int) -> list[list[Example]]:
    """Group examples into rows of at most `capacity` tokens (first fit, longest first); 0: one row."""
    if capacity <= 0:
        return [list(batch)]
    rows: list[list[Example]] = []
    room: list[int] = []
    for example in sorted(batch, key=lambda e: -len(e.input_ids)):
        n = len(example.input_ids)
        slot = next((i for i, free in enumerate(room) if free >= n), None)
        if slot is None:
            rows.append([example])
            room.append(capacity - n)
        else:
            rows[slot].append(example)
            room[slot] -= n
    return rows


def collate_packed(batch: list[Example], pad_id: int, capacity: int = 0) -> dict:
    """Examples laid end to end per row, position ids restarting at 0 for each, no attention mask.

    With position ids, no mask and use_cache=False, transformers builds a block-diagonal causal
    mask (sdpa, eager: full isolation, but attention still costs the whole row's length squared)
    or calls the varlen kernel (flash_attention_2: isolation at each example's own cost). The first
    label of each example is ignored: it would otherwise be predicted from the previous example.
    A short row is filled with a pad segment (its own positions, no loss) up to the longest row.
    """
    import torch

    rows = pack_rows(batch, capacity)
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for example in row:
            n = len(example.input_ids)
            ids[r, at:at + n] = torch.tensor(example.input_ids)
            labels[r, at + 1:at + n] = torch.tensor(example.labels[1:])
            positions[r, at:at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def model_inputs(batch: list[Example], pad_id: int, cfg: TrainConfig, attention: str = "sdpa") -> tuple[dict, int]:
    """Keyword arguments for the model's forward pass (packed or padded) and the real token count.

    flash_attention_2 detects packed examples only in a single row, so it always gets one.
    """
    real = sum(len(e.input_ids) for e in batch)
    if cfg.packing:
        return collate_packed(batch, pad_id, 0 if attention == "flash_attention_2" else cfg.pack_length), real
    ids, mask, labels = collate(batch, pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}, real


def wrap_with_lora(model, lora: LoraConfig, seed: int, gradient_checkpointing: bool = False):
    """Seed, then add LoRA layers: their initialisation is the same on every run."""
    import torch
    from peft import LoraConfig as PeftLoraConfig, get_peft_model, prepare_model_for_kbit_training

    if lora.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(seed)
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def learning_rate_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then linear decay to zero at max_steps: the schedule's whole state is the step."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    remaining = max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.learning_rate * max(0.0, 1 - (step - cfg.warmup_steps) / remaining)


def next_batch(examples: list[Example], queue: list[int], order, size: int) -> list[Example]:
    """Take `size` examples from the shuffled queue (mutated), reshuffling with `order` when it runs dry."""
    import torch

    batch = []
    while len(batch) < size:
        if not queue:
            queue.extend(torch.randperm(len(examples), generator=order).tolist())
        batch.append(examples[queue.pop()])
    return batch


# Settings that change how a run is watched or scheduled, not the adapter's bytes.
OPERATIONAL_FIELDS = {"log_every", "checkpoint_every", "keep_checkpoints", "retries", "system_metrics", "work_pool"}


def run_fingerprint(examples: list[Example], recipe: dict, named_params: dict) -> str:
    """Digest of what decides the training trajectory: a checkpoint resumes only a run with the same one."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
    digest.update(json.dumps({n: list(p.shape) for n, p in named_params.items()}).encode())
    for example in examples:
        digest.update(json.dumps([example.input_ids, example.labels]).encode())
    return "sha256:" + digest.hexdigest()


def distributed_rank() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched on several processes."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        import torch

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def train_lora(model, tokenizer, examples: list[Example], cfg: TrainConfig,
               on_step: Callable[[int, dict], None] | None = None,
               checkpoints: Path | None = None, resume: bool = False, recipe: dict | None = None) -> list[dict]:
    """Train the LoRA parameters of `model` in place; returns the per-step metrics.

    With `checkpoints`, writes a resumable checkpoint every cfg.checkpoint_every steps; with
    `resume`, continues from the newest one there (restored steps are replayed through on_step).
    Under several processes each takes its share of every step's examples and gradients are averaged.
    """
    import torch

    from tasks.checkpoints import TrainingState, load_checkpoint, resumable_checkpoint, save_checkpoint

    if not examples:
        raise AdapterOpsError("No training examples: the approved corpus has no train records with a completion.")
    rank, world = distributed_rank()
    if cfg.batch_size < world:
        raise AdapterOpsError(f"train.batch_size {cfg.batch_size} is below the {world} processes; raise it to at least {world}.")
    device = next(model.parameters()).device
    attention = getattr(model.config, "_attn_implementation", "sdpa")
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(list(named.values()), lr=cfg.learning_rate, weight_decay=0.0)
    order = torch.Generator().manual_seed(cfg.seed)
    # recipe: what the caller trained with beyond cfg (LoRA settings, base revision); a resume must match it too
    recipe = {"train": cfg.model_dump(mode="json", exclude=OPERATIONAL_FIELDS)} | (recipe or {})
    state = TrainingState(fingerprint=run_fingerprint(examples, recipe, named))
    latest = resumable_checkpoint(checkpoints) if resume else None   # only what this run wrote, unchanged
    if latest is not None:
        state = load_checkpoint(latest, named, optimizer, order, state.fingerprint)
        for step, metrics in enumerate(state.history):
            if on_step:
                on_step(step, metrics)
    forward = model
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    for step in range(state.step, cfg.max_steps):
        started = time.perf_counter()
        batch = next_batch(examples, state.queue, order, cfg.batch_size)
        inputs, real_tokens = model_inputs(batch[rank::world], tokenizer.pad_token_id, cfg, attention)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, cfg)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = forward(**inputs, use_cache=False).loss  # a cache turns off packed-sequence masking
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(list(named.values()), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        metrics = {"loss": loss.item(), "learning_rate": optimizer.param_groups[0]["lr"], "grad_norm": float(grad_norm),
                   "tokens_per_second": real_tokens * world / elapsed,
                   "computed_tokens_per_second": inputs["input_ids"].numel() * world / elapsed}
        if not math.isfinite(metrics["loss"]):
            raise AdapterOpsError(f"Training diverged at step {step} (loss {metrics['loss']}); lower train.learning_rate.")
        state.history.append(metrics)
        state.step = step + 1
        if on_step:
            on_step(step, metrics)
        if checkpoints and rank == 0 and cfg.checkpoint_every and (state.step % cfg.checkpoint_every == 0
                                                                   or state.step == cfg.max_steps):
            save_checkpoint(checkpoints, state, named, optimizer, order, cfg.keep_checkpoints)
    model.eval()
    return state.history


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


def run_recipe(cfg: Config, base: BaseModelRef, records: list[dict], out_dir: Path, resume: bool = False,
               on_step: Callable[[int, dict], None] | None = None) -> dict:
    """The recipe: load the base → prepare the data → wrap with LoRA → train → save the adapter.

    Checkpoints go to out_dir/checkpoints (cleared on a fresh start), the adapter to out_dir/adapter
    and the loss curve to out_dir/history.json. Returns what was done, for tracking and reporting.
    """
    import shutil

    device = detect_device()
    model, tokenizer = load_base_model(base, cfg.trust_remote_code, device, cfg.train.attention,
                                       quantization_config(cfg.lora, device), cfg.train.packing)
    examples, truncated = tokenize_examples(records, tokenizer, cfg.train.prompt_template, cfg.train.max_length)
    model = wrap_with_lora(model, cfg.lora, cfg.train.seed, cfg.train.gradient_checkpointing)
    checkpoints = out_dir / "checkpoints"
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)
    from tasks.checkpoints import resumable_checkpoint

    resumed_from = resumable_checkpoint(checkpoints) if resume else None
    history = train_lora(model, tokenizer, examples, cfg.train, on_step, checkpoints, resume,
                         recipe=recipe_settings(cfg) | {"base_revision": base.revision})
    rank, _ = distributed_rank()
    result = {"device": device, "examples": len(examples), "truncated": truncated, "history": history,
              "resumed_from_step": int(resumed_from.name.split("-")[1]) if resumed_from else 0,
              "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
              "expected_adapter_bytes": expected_adapter_bytes(model), "adapter_dir": str(out_dir / "adapter")}
    if rank == 0:
        from adapterops.storage import write_json

        save_adapter(model, out_dir / "adapter")
        write_json(history, out_dir / "history.json")
    return result


def load_records(path) -> list[dict]:
    """Prompt/completion records of a corpus Parquet file."""
    import pandas as pd

    return pd.read_parquet(path)[["prompt", "completion"]].to_dict("records")


def load_examples(path, tokenizer, cfg: TrainConfig) -> tuple[list[Example], int]:
    return tokenize_examples(load_records(path), tokenizer, cfg.prompt_template, cfg.max_length)


# --- wrapper: the training run in MLflow and the registered adapter version ----------------------

def flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def truncation_note(adapter: dict, cfg: Config) -> str | None:
    """A warning when examples were cut at max_length (their completion tails were not trained on)."""
    if not adapter["truncated"]:
        return None
    return (f"{adapter['truncated']} of {adapter['examples']} training examples were longer than train.max_length="
            f"{cfg.train.max_length} tokens and were cut; raise train.max_length if their endings matter.")


def recipe_settings(cfg: Config) -> dict:
    """The parts of the config that decide the adapter: base model, LoRA and training settings."""
    return {"base_model": cfg.base_model, "lora": cfg.lora.model_dump(mode="json"),
            "train": cfg.train.model_dump(mode="json", exclude=OPERATIONAL_FIELDS)}


def training_key(corpus_digest: str, base_revision: str, recipe: dict) -> str:
    """What decides an adapter's bytes: the corpus digest, the base model revision and the recipe."""
    text = json.dumps({"corpus": corpus_digest, "base": base_revision, "recipe": recipe}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def recipe_label(cfg: Config) -> str:
    """A short readable name of the recipe for run and model names: rank, steps and a digest of the rest."""
    digest = hashlib.sha256(json.dumps(recipe_settings(cfg), sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"r{cfg.lora.r}-s{cfg.train.max_steps}-{digest}"


def train_run_dir(cfg: Config, corpus: dict) -> Path:
    """The run folder of training `cfg` on a corpus version: the same on a retry, so it can resume."""
    from adapterops.workspace import resolve_workspace

    return resolve_workspace().runs_dir / "train" / cfg.name / f"corpus-v{corpus['version']}-{corpus['digest'][-12:]}"


def train_adapter(cfg: Config, corpus: dict, run_dir, progress: Callable[[int, dict], None] | None = None,
                  resume: bool = False, extra_tags: dict | None = None) -> dict:
    """Refuse unapproved bytes, run the recipe, log the run and register the adapter-only model."""
    import mlflow

    from adapterops.tracking import adapter_experiment, ensure_experiment
    from adapterops.workspace import resolve_workspace
    from tasks.approval import require_approved
    from tasks.corpus import lineage_markdown, lineage_tags, log_corpus_inputs
    from tasks.corpus_fetch import corpus_folder
    from tasks.served_model import pyfunc_model_args

    corpus_tags = require_approved(corpus["pipeline"], corpus["digest"], cfg.approval)  # signed decision, rehashed bytes
    base = resolve_base_model(cfg, resolve_workspace().models_dir)
    records = load_records(corpus_folder(corpus) / "train.parquet")   # fetched from MLflow on another machine
    experiment = ensure_experiment(adapter_experiment(cfg.name))
    recipe = recipe_label(cfg)
    with mlflow.start_run(experiment_id=experiment, run_name=f"train-corpus-v{corpus['version']}-{recipe}",
                          log_system_metrics=cfg.train.system_metrics) as run:
        lineage = lineage_tags(corpus, corpus_tags)
        mlflow.set_tags({"base_model": base.name, "base_model.revision": base.revision, "stage": "train"}
                        | lineage | (extra_tags or {}))
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(cfg.model_dump(mode="json")).items()})
        log_corpus_inputs(corpus)

        def on_step(step: int, metrics: dict) -> None:
            if step % cfg.train.log_every == 0 or step == cfg.train.max_steps - 1:
                mlflow.log_metrics({f"train.{k}": v for k, v in metrics.items()}, step=step)
            if progress:
                progress(step, metrics)

        done = run_recipe(cfg, base, records, Path(run_dir), resume, on_step)
        history = done["history"]
        mlflow.set_tags({"device": done["device"], "train.resumed_from_step": str(done["resumed_from_step"])})
        mlflow.log_metrics({"data.train_examples": done["examples"], "data.truncated": done["truncated"],
                            "model.trainable_parameters": done["trainable_parameters"]})
        adapter_dir = Path(done["adapter_dir"])
        weights = adapter_dir / "adapter_model.safetensors"
        info = mlflow.pyfunc.log_model(
            name=f"adapter-corpus-v{corpus['version']}-{recipe}",
            artifacts={"adapter": str(adapter_dir)}, registered_model_name=cfg.release.model_name,
            **pyfunc_model_args(base.name, base.path, base.revision, cfg.base_model == BUILTIN_TINY_MODEL,
                                cfg.train.prompt_template))
        logged_bytes = check_logged_artifact(info.model_uri, done["expected_adapter_bytes"])
        mlflow.log_metrics({"adapter.bytes": weights.stat().st_size, "adapter.logged_bytes": logged_bytes,
                            "train.final_loss": history[-1]["loss"]})
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        reuse_key = training_key(corpus["digest"], base.revision, recipe_settings(cfg))
        for key, value in ({"base_model": base.name, "base_model.revision": base.revision,
                            "train.run_id": run.info.run_id, "train.key": reuse_key} | lineage).items():
            client.set_model_version_tag(cfg.release.model_name, version, key, value)
        client.update_model_version(cfg.release.model_name, version, description=lineage_markdown(corpus))
        adapter = {"model_name": cfg.release.model_name, "version": version, "run_id": run.info.run_id,
                   "model_id": info.model_id, "recipe": recipe,
                   "adapter_dir": str(adapter_dir), "adapter_bytes": weights.stat().st_size, "logged_bytes": logged_bytes,
                   "base_name": base.name, "base_path": base.path, "base_revision": base.revision,
                   "final_loss": history[-1]["loss"], "steps": len(history), "device": done["device"].split(":")[0],
                   "examples": done["examples"], "truncated": done["truncated"],
                   "resumed_from_step": done["resumed_from_step"]}
        mlflow.log_dict(adapter, "adapter.json")
    return adapter


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


def main(argv: list[str] | None = None) -> None:
    """The recipe alone, without MLflow or Prefect, e.g. on several GPUs:
    `accelerate launch -m tasks.train CONFIG --data train.parquet --out DIR [--resume]`."""
    import argparse

    from adapterops.config import load_config
    from adapterops.workspace import resolve_workspace

    parser = argparse.ArgumentParser(prog="python -m tasks.train", description=main.__doc__)
    parser.add_argument("config")
    parser.add_argument("--data", required=True, help="Parquet file with prompt and completion columns.")
    parser.add_argument("--out", required=True, help="Folder for checkpoints, the adapter and history.json.")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest checkpoint in --out.")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
        base = resolve_base_model(cfg, resolve_workspace().models_dir)
        done = run_recipe(cfg, base, load_records(args.data), Path(args.out), args.resume)
    except AdapterOpsError as error:
        raise SystemExit(f"error: {error}") from None
    if distributed_rank()[0] == 0:
        print(f"trained {len(done['history'])} steps on {done['examples']} examples ({done['truncated']} truncated), "
              f"final loss {done['history'][-1]['loss']:.4f}, adapter in {done['adapter_dir']}")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
