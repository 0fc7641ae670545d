"""One batch decoded step by step: each row with its own adapter, sampling settings, seed, token limit and
stream, so rows finish, stream and get cancelled independently while sharing every forward pass.

Greedy rows (temperature 0) pick the arg-max exactly as `tasks.model.generate` does, so a streamed greedy
answer equals the non-streamed one and the evaluation's answer for the same prompt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sampling:
    """How one row picks its next token: OpenAI's temperature, top_p, seed and (top_)logprobs."""
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int | None = None   # None: none; 0: the chosen token's; k: and the k most likely


@dataclass
class Token:
    """One generated token, as a stream or a final answer reports it."""
    id: int
    logprob: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)


def _generator(seed: int | None):
    import torch

    g = torch.Generator()
    g.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    return g


def pick(logits, sampling: Sampling, generator) -> Token:
    """The next token of one row from its last logits (a 1-d float tensor)."""
    import torch

    logprobs = torch.log_softmax(logits, dim=-1) if sampling.logprobs is not None else None
    if not sampling.temperature:
        token = int(torch.argmax(logits))
    else:
        probs = torch.softmax(logits / sampling.temperature, dim=-1)
        if sampling.top_p < 1.0:
            ordered, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(ordered, dim=-1) - ordered < sampling.top_p   # the smallest set reaching top_p
            keep[0] = True
            probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        token = int(torch.multinomial(probs, 1, generator=generator))
    if logprobs is None:
        return Token(token)
    top = []
    if sampling.logprobs:
        values, ids = torch.topk(logprobs, sampling.logprobs)
        top = list(zip(ids.tolist(), values.tolist()))
    return Token(token, float(logprobs[token]), top)


def decode_batch(model, tokenizer, rows: list) -> None:
    """Decode rows (objects with prompt_ids, adapter, max_new_tokens, sampling, emit(Token), done(reason),
    cancelled()) together until each has ended: at EOS ('stop'), at its limit ('length') or when cancelled."""
    import torch

    eos = tokenizer.eos_token_id
    eos_ids = set(eos) if isinstance(eos, list) else {eos}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos_ids))
    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids, dtype=torch.long)
        mask[i, width - len(row.prompt_ids):] = 1
    device = next(model.parameters()).device
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    names = [r.adapter for r in rows]
    generators = [_generator(r.sampling.seed) if r.sampling.temperature else None for r in rows]
    counts = [0] * len(rows)
    active = [True] * len(rows)
    past, step_ids, step_positions = None, ids, positions
    with torch.inference_mode():
        while True:
            for i, row in enumerate(rows):
                if active[i] and row.cancelled():
                    active[i] = False
                    row.done("cancelled")
            if not any(active):
                return
            out = model(input_ids=step_ids.to(device), attention_mask=mask.to(device),
                        position_ids=step_positions.to(device), past_key_values=past, use_cache=True,
                        adapter_names=names)
            past = out.past_key_values
            logits = out.logits[:, -1, :].float().cpu()
            chosen = [pad] * len(rows)
            for i, row in enumerate(rows):
                if not active[i]:
                    continue
                token = pick(logits[i], row.sampling, generators[i])
                if token.id in eos_ids:
                    active[i] = False
                    row.done("stop")
                    continue
                chosen[i] = token.id
                counts[i] += 1
                row.emit(token)
                if counts[i] >= row.max_new_tokens:
                    active[i] = False
                    row.done("length")
            if not any(active):
                return
            step_ids = torch.tensor(chosen, dtype=torch.long)[:, None]
            mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=torch.long)], dim=1)
            step_positions = step_positions[:, -1:] + 1
