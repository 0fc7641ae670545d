"""Batched greedy generation: left-padded, with the KV cache, several adapters on one base model."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

BASE = "__base__"   # peft's name for "no adapter" in a mixed-adapter batch
DEFAULT_MAX_NEW_TOKENS = 128   # served answers, when a request does not say


@dataclass(frozen=True)
class Generated:
    text: str
    new_tokens: int


def left_pad(rows: list[list[int]], pad_id: int):
    """(input_ids, attention_mask) with the padding on the left, so every row ends where generation starts."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids, mask


def cut_at_eos(tokens: list[int], eos_ids: set[int], pad_id: int) -> list[int]:
    """The generated ids up to (not including) the first EOS; trailing padding dropped."""
    out = []
    for token in tokens:
        if token in eos_ids:
            break
        out.append(token)
    while out and out[-1] == pad_id and pad_id not in eos_ids:
        out.pop()
    return out


def adapter_context(model, adapter: str | None):
    """Select one adapter of a PeftModel, or disable them all for the base model."""
    if not hasattr(model, "peft_config"):
        return nullcontext()
    if adapter in (None, BASE):
        return model.disable_adapter()
    model.set_adapter(adapter)
    return nullcontext()


def generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, adapter: str | list[str] | None = None,
             batch_size: int = 32, on_batch: Callable[[int], None] | None = None) -> list[Generated]:
    """Greedy answers for prompt token ids, in input order.

    adapter: one adapter name (None or '__base__': the base model with adapters disabled), or one name
    per prompt for a mixed-adapter batch (peft's adapter_names). Prompts are batched by length so
    little padding is computed; each row stops at EOS.
    """
    import torch

    if not prompts:
        return []
    eos = tokenizer.eos_token_id
    eos_ids = set(eos) if isinstance(eos, list) else {eos}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids))
    per_row = isinstance(adapter, list)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generated | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = left_pad([prompts[i] for i in chunk], pad)
        extra = {"adapter_names": [adapter[i] for i in chunk]} if per_row else {}
        context = nullcontext() if per_row else adapter_context(model, adapter)
        with torch.inference_mode(), context:
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                                 do_sample=False, num_beams=1, use_cache=True, pad_token_id=pad,
                                 eos_token_id=sorted(eos_ids), **extra)
        new = out[:, ids.shape[1]:].tolist()
        for row, i in enumerate(chunk):
            tokens = cut_at_eos(new[row], eos_ids, pad)
            results[i] = Generated(tokenizer.decode(tokens, skip_special_tokens=True), len(tokens))
        if on_batch is not None:
            on_batch(len(chunk))           # prompts answered in this batch
    return results


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """The text up to the earliest stop sequence, and whether one was found (OpenAI's `stop`)."""
    cuts = [text.find(s) for s in (stop or []) if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)
