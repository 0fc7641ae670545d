"""A tiny Llama-shaped causal LM with a byte-level tokenizer, built locally and deterministically.

It stands in for a hub model in the demo and the tests: it is saved with `save_pretrained`
(safetensors) and loaded through the same `from_pretrained` path a real model takes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

from adapterops.demo_data import generate_records
from adapterops.general_data import GENERAL_VERSION, general_records
from adapterops.progress import Progress
from adapterops.storage import hash_file_into

TINY_MODEL_NAME = "tiny-llama"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]


# The tiny model's chat template: a system message, tools (their JSON schemas), customer turns, agent turns
# with hermes-style tool calls (tasks/model/tool_calls.py reads them back), and tool results. A single user
# message renders exactly as train.prompt_template's default did ("### Ticket\n{prompt}\n### Response\n"), so
# one-turn records tokenize, train and evaluate as before the template existed.
CHAT_TEMPLATE = (
    "{%- if tools %}{{ '### Tools' }}{%- for tool in tools %}{{ '\\n' }}{{ tool | tojson }}{%- endfor %}{{ '\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{ '### System\\n' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'user' %}{{ '### Ticket\\n' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' %}{{ '### Response\\n' + (message['content'] or '') }}"
    "{%- for call in message.get('tool_calls') or [] %}"
    "{%- set f = call['function'] if 'function' in call else call %}"
    "{{ '<tool_call>{\"name\": ' + (f['name'] | tojson) + ', \"arguments\": ' }}"
    "{{ f['arguments'] if f['arguments'] is string else (f['arguments'] | tojson) }}{{ '}</tool_call>' }}"
    "{%- endfor %}{{ eos_token + '\\n' }}"
    "{%- elif message['role'] == 'tool' %}{{ '### Tool result\\n' + message['content'] + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '### Response\\n' }}{%- endif %}"
)
TOOL_CALL_SYNTAX = "hermes"
CHAT_TEMPLATE_ONE_TURN = "### Ticket\n{prompt}\n### Response\n{completion}"   # what CHAT_TEMPLATE renders for one turn


VOCAB_SIZE = 2048
HIDDEN, LAYERS = 256, 4
TRAINING_TEXTS = 3000   # demo tickets the tokenizer's merges are learned from


def build_tokenizer():
    """A byte-level BPE tokenizer: every UTF-8 string encodes; merges learned from generated demo tickets.

    Byte-level keeps any input encodable; the merges make a ticket ~4x fewer tokens than raw bytes, so
    the tiny model trains and generates in seconds on a CPU. Deterministic for the generator's seed.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=ByteLevel.alphabet(), min_frequency=2)
    texts = [f"### Ticket\n{r['prompt']}\n### Response\n{r['completion']}" for r in generate_records(TRAINING_TEXTS, 0)]
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>", model_max_length=1024)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(seed: int = 0, hidden: int = HIDDEN, layers: int = LAYERS, tokenizer=None):
    """A randomly initialised Llama (~3M parameters) whose weights depend only on the seed (ensure_tiny_model then
    pretrains it)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.config._name_or_path = TINY_MODEL_NAME
    return model, tokenizer


# How the built-in base is pretrained on the general corpus (adapterops/general_data.py): full-parameter causal LM
# training on random windows of the rendered examples. About 4 minutes on 2 CPU cores, once per machine (cached).
PRETRAIN = {"steps": 300, "rows": 16, "row_tokens": 256, "learning_rate": 2e-3, "warmup_steps": 20,
            "records": 20_000, "data_seed": 1}
BUILD_KEY = hashlib.sha256(json.dumps({"pretrain": PRETRAIN, "vocab": VOCAB_SIZE, "texts": TRAINING_TEXTS,
                                       "general": GENERAL_VERSION, "shape": [HIDDEN, LAYERS]}, sort_keys=True).encode()
                           ).hexdigest()[:12]
CACHE_ENV = "ADAPTEROPS_MODEL_CACHE"


def model_cache() -> Path | None:
    """Where built base models are kept between workspaces: ADAPTEROPS_MODEL_CACHE ('off': nowhere), else the user's
    cache folder. A new workspace (a test session, a CI lane, a second project) copies the model instead of
    pretraining it again."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None and configured.strip().lower() in ("", "off", "0", "none"):
        return None
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "adapterops" / "models"


def _is_built(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def ensure_tiny_model(models_dir: Path, seed: int = 0) -> Path:
    """Build and save the tiny model under models_dir once (or copy it from the model cache); return its folder.

    A folder already there is kept as it is, whatever built it: adapters trained on it are pinned to its revision."""
    target = models_dir / TINY_MODEL_NAME
    if _is_built(target):
        _add_chat_template(target)
        return target
    cache = model_cache()
    cached = cache / f"{TINY_MODEL_NAME}-{BUILD_KEY}-seed{seed}" if cache else None
    staging = models_dir / f".{TINY_MODEL_NAME}.partial-{os.getpid()}"
    if cached is not None and _is_built(cached):
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(cached, staging)
        Progress(f"base model {TINY_MODEL_NAME}: copied from the model cache {cached}", 1, "steps", every_seconds=0).update(1)
    else:
        progress = Progress(f"base model {TINY_MODEL_NAME}: building in {models_dir}", 4, "steps", every_seconds=0)
        progress.update(0, "tokenizer (BPE merges from demo tickets)")
        tokenizer = build_tokenizer()
        progress.advance(1, "weights (random, seeded)")
        model, tokenizer = build_tiny_model(seed, tokenizer=tokenizer)
        progress.advance(1, f"pretraining on the general corpus ({PRETRAIN['steps']} steps, a few minutes)")
        pretrain(model, tokenizer, seed)
        progress.advance(1, "saving (safetensors)")
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        _add_chat_template(staging)
        if cached is not None:
            _keep_in_cache(staging, cached)
        progress.advance(1, f"saved to {target}")
    if target.exists():
        shutil.rmtree(target)
    staging.replace(target)
    return target


def _keep_in_cache(built: Path, cached: Path) -> None:
    """Copy a freshly built model into the cache; a full or read-only cache only costs the next build."""
    partial = cached.with_name(f".{cached.name}.partial-{os.getpid()}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(built, partial)
        partial.replace(cached) if not cached.exists() else shutil.rmtree(partial)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)


def pretraining_texts(tokenizer) -> list[int]:
    """The general corpus as one token stream, each example rendered by the chat template as training renders a
    one-turn record (BOS, ticket, response, EOS)."""
    stream: list[int] = []
    for record in general_records(PRETRAIN["records"], PRETRAIN["data_seed"]):
        text = CHAT_TEMPLATE_ONE_TURN.format(prompt=record["prompt"], completion=record["completion"])
        stream += [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"] \
            + [tokenizer.eos_token_id]
    return stream


def pretrain(model, tokenizer, seed: int = 0) -> None:
    """Full-parameter causal LM training on random windows of the general corpus, with a progress line and loss."""
    import random

    import torch

    stream = pretraining_texts(tokenizer)
    steps, rows, width = PRETRAIN["steps"], PRETRAIN["rows"], PRETRAIN["row_tokens"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN["learning_rate"], weight_decay=0.0, betas=(0.9, 0.98))
    warmup = PRETRAIN["warmup_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.05, 1 - step / steps))
    rng = random.Random(seed + PRETRAIN["data_seed"])
    torch.manual_seed(seed)
    progress = Progress(f"base model {TINY_MODEL_NAME}: pretraining", steps, "steps")
    model.train()
    for step in range(1, steps + 1):
        starts = [rng.randrange(0, len(stream) - width) for _ in range(rows)]
        batch = torch.tensor([stream[s:s + width] for s in starts])
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        progress.update(step, f"loss {loss.item():.3f}")
    model.eval()


def _add_chat_template(target: Path) -> None:
    """A tiny model built before it had a chat template gets it (same weights, same revision)."""
    template = target / "chat_template.jinja"
    if template.is_file() and template.read_text(encoding="utf-8") == CHAT_TEMPLATE:
        return
    partial = target / ".chat_template.jinja.partial"
    partial.write_text(CHAT_TEMPLATE, encoding="utf-8")
    partial.replace(template)


def weights_revision(model_dir: Path) -> str:
    """A content revision for a local model folder: sha256 of its safetensors files.

    Remembered per (file, size, mtime) in this process: a run asks for it more than once (reuse check,
    training), and reading a real model's shards twice costs minutes.
    """
    shards = sorted(model_dir.glob("*.safetensors"))
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in shards)
    return _revision(stats)


@functools.lru_cache(maxsize=16)
def _revision(stats: tuple) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stats:
        digest.update(Path(path).name.encode())
        hash_file_into(digest, Path(path))
    return "sha256:" + digest.hexdigest()[:16]
