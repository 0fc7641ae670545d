"""LoRA training as one recipe: load → prepare data → wrap with LoRA → train → save.

The recipe takes a resolved BaseModelRef (adapterops/base_models.py resolves names at the edge); the
data preparation is in tasks/train/sft_data.py, the attention kernels in tasks/model/attention.py and the MLflow
run and registration in tasks/train/run.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from adapterops.base_models import resolve_base_model
from adapterops.config import LoraConfig, Recipe, TrainConfig, load_config
from adapterops.errors import AdapterOpsError
from adapterops.faults import crash_point
from adapterops.refs import BaseModelRef
from adapterops.storage import write_json
from adapterops.workspace import resolve_workspace
from tasks.model.base_model import detect_device, load_base_model, quantization_config
from tasks.model.prompts import TEMPLATE_FILE, template_digest
from tasks.train.replay import replay_records
from tasks.train.checkpoints import (
    TrainingState,
    checkpoint_fingerprint,
    load_checkpoint,
    resumable_checkpoint,
    save_checkpoint,
)
from tasks.train.sft_data import Example, load_records, model_inputs, next_batch, prepare_examples

log = logging.getLogger(__name__)


def wrap_with_lora(model, lora: LoraConfig, seed: int, gradient_checkpointing: bool = False):
    """Seed, then add LoRA layers: their initialisation is the same on every run."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if lora.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(seed)
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=lora.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def learning_rate_at(step: int, train: TrainConfig) -> float:
    """Linear warm-up then linear decay to zero at max_steps: the schedule's whole state is the step."""
    if step < train.warmup_steps:
        return train.learning_rate * (step + 1) / train.warmup_steps
    remaining = max(1, train.max_steps - train.warmup_steps)
    return train.learning_rate * max(0.0, 1 - (step - train.warmup_steps) / remaining)


def training_key(corpus_digest: str, base_revision: str, recipe: dict, chat_template: str | None = None) -> str:
    """What decides an adapter's bytes: the corpus digest, the base model revision, the recipe and the digest of
    the chat template the conversations are rendered with."""
    text = json.dumps({"corpus": corpus_digest, "base": base_revision, "recipe": recipe,
                       "chat_template": template_digest(chat_template)}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def configured_template(train: TrainConfig) -> str | None:
    """train.chat_template as text: a .jinja file's contents, or the text itself; None when unset."""
    value = train.chat_template
    if value is None:
        return None
    if "{" not in value and value.endswith((".jinja", ".j2", ".txt")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise AdapterOpsError(f"train.chat_template names {value}, which is not a file; give the path of a .jinja "
                                  "file or the template's text.")
        return path.read_text(encoding="utf-8")
    return value


def apply_template(tokenizer, train: TrainConfig) -> str | None:
    """Give the tokenizer the configured chat template (if any); returns the template training renders with."""
    if (template := configured_template(train)) is not None:
        tokenizer.chat_template = template
    return getattr(tokenizer, "chat_template", None) or None


def training_template(recipe: Recipe, base: BaseModelRef) -> str | None:
    """The chat template an adapter of this recipe is trained with, read from the base's tokenizer (no weights)."""
    from transformers import AutoTokenizer

    if (template := configured_template(recipe.train)) is not None:
        return template
    revision = None if base.revision.startswith("sha256:") else base.revision
    try:
        tokenizer = AutoTokenizer.from_pretrained(base.path, revision=revision, trust_remote_code=recipe.trust_remote_code)
    except OSError as error:
        raise AdapterOpsError(f"Cannot load the tokenizer of {base.path!r}: {str(error).splitlines()[0]}") from None
    return getattr(tokenizer, "chat_template", None) or None


def save_template(template: str | None, adapter_dir: Path) -> None:
    """Store the chat template beside the adapter's weights: evaluation, staging, serving and export render with it."""
    if template:
        adapter_dir.mkdir(parents=True, exist_ok=True)
        (adapter_dir / TEMPLATE_FILE).write_text(template, encoding="utf-8")


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


def train_lora(model, tokenizer, examples: list[Example], train: TrainConfig,
               on_step: Callable[[int, dict], None] | None = None,
               checkpoints: Path | None = None, resume: bool | str = False, recipe: dict | None = None,
               resumed_at: list | None = None) -> list[dict]:
    """Train the LoRA parameters of `model` in place; returns the per-step metrics.

    With `checkpoints`, writes a resumable checkpoint every train.checkpoint_every steps; with
    `resume`, continues from the newest one there (restored steps are replayed through on_step);
    resume "auto": the same when the newest one was written for these examples and settings, else from scratch.
    Under several processes each takes its share of every step's examples and gradients are averaged.
    """
    import torch

    if not examples:
        raise AdapterOpsError("No training examples: the approved corpus has no train records with a completion.")
    rank, world = distributed_rank()
    if train.batch_size < world:
        raise AdapterOpsError(f"train.batch_size {train.batch_size} is below the {world} processes; raise it to at least {world}.")
    device = next(model.parameters()).device
    attention = getattr(model.config, "_attn_implementation", "sdpa")
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(list(named.values()), lr=train.learning_rate, weight_decay=0.0)
    order = torch.Generator().manual_seed(train.seed)
    # recipe: what the caller trained with beyond `train` (LoRA settings, base revision); a resume must match it too
    recipe = {"train": train.model_dump(mode="json", exclude=set(train.RUNTIME_FIELDS))} | (recipe or {})
    state = TrainingState(fingerprint=run_fingerprint(examples, recipe, named))
    latest = resumable_checkpoint(checkpoints) if resume else None   # only what this run wrote, unchanged
    if latest is not None and resume == "auto" and checkpoint_fingerprint(latest) != state.fingerprint:
        log.info("Not resuming from %s: it was written for other data or settings; training starts over.", latest)
        shutil.rmtree(checkpoints, ignore_errors=True)
        latest = None
    if latest is not None:
        state = load_checkpoint(latest, named, optimizer, order, state.fingerprint)
        if resumed_at is not None:
            resumed_at.append(state.step)
        for step, metrics in enumerate(state.history):
            if on_step:
                on_step(step, metrics)
    forward = model
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    model.train()
    for step in range(state.step, train.max_steps):
        started = time.perf_counter()
        batch = next_batch(examples, state.queue, order, train.batch_size)
        inputs, real_tokens = model_inputs(batch[rank::world], tokenizer.pad_token_id, train, attention)
        inputs = {k: v.to(device) for k, v in inputs.items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, train)
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
        if checkpoints and rank == 0 and train.checkpoint_every and (state.step % train.checkpoint_every == 0
                                                                   or state.step == train.max_steps):
            save_checkpoint(checkpoints, state, named, optimizer, order, train.keep_checkpoints)
            crash_point("train-after-checkpoint")
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


def run_recipe(recipe: Recipe, base: BaseModelRef, records: list[dict], out_dir: Path, resume: bool = False,
               on_step: Callable[[int, dict], None] | None = None) -> dict:
    """The recipe: load the base → prepare the data → wrap with LoRA → train → save the adapter.

    Checkpoints go to out_dir/checkpoints (cleared on a fresh start), the adapter to out_dir/adapter
    and the loss curve to out_dir/history.json. Returns what was done, for tracking and reporting.
    """
    device = detect_device()
    model, tokenizer = load_base_model(base, recipe.trust_remote_code, device, recipe.train.attention,
                                       quantization_config(recipe.lora, device), recipe.train.packing)
    template = apply_template(tokenizer, recipe.train)
    replayed = replay_records(recipe.train, len(records))
    examples, preflight = prepare_examples(records + replayed, tokenizer, recipe.train)
    model = wrap_with_lora(model, recipe.lora, recipe.train.seed, recipe.train.gradient_checkpointing)
    checkpoints = out_dir / "checkpoints"
    if not resume:
        shutil.rmtree(checkpoints, ignore_errors=True)

    resumed_at: list[int] = []
    history = train_lora(model, tokenizer, examples, recipe.train, on_step, checkpoints, resume,
                         recipe=recipe.settings() | {"base_revision": base.revision,
                                                     "chat_template": template_digest(template)},
                         resumed_at=resumed_at)
    resumed_from = resumed_at[0] if resumed_at else 0
    rank, _ = distributed_rank()
    result = {"device": device, "examples": len(examples), "truncated": preflight.truncated, "history": history,
              "preflight": preflight, "chat_template": template, "chat_template_digest": template_digest(template),
              "resumed_from_step": resumed_from, "replayed": len(replayed),
              "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
              "expected_adapter_bytes": expected_adapter_bytes(model), "adapter_dir": str(out_dir / "adapter")}
    if rank == 0:
        save_adapter(model, out_dir / "adapter")
        save_template(template, out_dir / "adapter")
        write_json(history, out_dir / "history.json")
    return result


def main(argv: list[str] | None = None) -> None:
    """The recipe alone, without MLflow or Prefect, e.g. on several GPUs:
    `accelerate launch -m tasks.train CONFIG --data train.parquet --out DIR [--resume]`."""
    parser = argparse.ArgumentParser(prog="python -m tasks.train", description=main.__doc__)
    parser.add_argument("config")
    parser.add_argument("--data", required=True, help="Parquet file with prompt and completion columns.")
    parser.add_argument("--out", required=True, help="Folder for checkpoints, the adapter and history.json.")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest checkpoint in --out.")
    args = parser.parse_args(argv)
    try:
        recipe = load_config(args.config).recipe
        base = resolve_base_model(recipe, resolve_workspace().models_dir)
        done = run_recipe(recipe, base, load_records(args.data), Path(args.out), args.resume)
    except AdapterOpsError as error:
        raise SystemExit(f"error: {error}") from None
    if distributed_rank()[0] == 0:
        for line in done["preflight"].lines():
            print(f"preflight: {line}")
        print(f"trained {len(done['history'])} steps on {done['examples']} examples ({done['truncated']} truncated), "
              f"final loss {done['history'][-1]['loss']:.4f}, adapter in {done['adapter_dir']}")
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()

