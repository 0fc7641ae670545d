"""Rows decoded step by step in one batch: each with its own adapter, sampling settings, seed, token limit and
stream, so rows join, finish, stream and get cancelled independently while sharing every forward pass.

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


class Decoder:
    """Continuous batching: rows join between two decoding steps (their prompts prefilled together, the KV cache
    left-padded and concatenated to the running one) and leave the batch the step they end, so a new request
    never waits for a long one to finish.

    A row is an object with prompt_ids, adapter, max_new_tokens, sampling, emit(Token), done(reason) and
    cancelled(); it ends at EOS ('stop'), at its limit ('length') or when cancelled ('cancelled')."""

    def __init__(self, model, tokenizer):
        import torch

        self.model, self.torch = model, torch
        eos = tokenizer.eos_token_id
        self.eos_ids = set(eos) if isinstance(eos, list) else {eos}
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self.eos_ids))
        self.device = next(model.parameters()).device
        self.rows: list = []
        self.cache = None
        self.mask = None          # (rows, cached tokens): 0 where a row is left-padded
        self.positions = None     # (rows, 1): the position of each row's next token
        self.next_ids: list[int] = []
        self.counts: list[int] = []
        self.generators: list = []

    def _forward(self, ids, mask, positions, cache, rows):
        return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                          position_ids=positions.to(self.device), past_key_values=cache, use_cache=True,
                          adapter_names=[r.adapter for r in rows])

    def _pick(self, row, logits, generator, count: int) -> int | None:
        """The row's next token, emitted; None when the row has ended (EOS or its limit reached)."""
        token = pick(logits, row.sampling, generator)
        if token.id in self.eos_ids:
            row.done("stop")
            return None
        row.emit(token)
        if count + 1 >= row.max_new_tokens:
            row.done("length")
            return None
        return token.id

    def admit(self, rows: list) -> None:
        """Prefill rows together, emit their first token and add those still running to the batch."""
        torch = self.torch
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids, dtype=torch.long)
            mask[i, width - len(row.prompt_ids):] = 1
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        with torch.inference_mode():
            out = self._forward(ids, mask, positions, None, rows)
        logits = out.logits[:, -1, :].float().cpu()
        keep, tokens, generators = [], [], []
        for i, row in enumerate(rows):
            if row.cancelled():
                row.done("cancelled")
                continue
            generator = _generator(row.sampling.seed) if row.sampling.temperature else None
            token = self._pick(row, logits[i], generator, 0)
            if token is not None:
                keep.append(i), tokens.append(token), generators.append(generator)
        if not keep:
            return
        cache = out.past_key_values
        if len(keep) < len(rows):
            cache.batch_select_indices(torch.tensor(keep))
        self._join([rows[i] for i in keep], cache, mask[keep], positions[keep, -1:] + 1, tokens, generators)

    def _join(self, rows, cache, mask, positions, tokens, generators) -> None:
        torch = self.torch
        if not self.rows:
            self.rows, self.cache, self.mask, self.positions = list(rows), cache, mask, positions
        else:
            width = max(self.mask.shape[1], mask.shape[1])
            for ours, theirs in zip(self.cache.layers, cache.layers):
                ours.keys = torch.cat([_left_pad(ours.keys, width), _left_pad(theirs.keys, width)], dim=0)
                ours.values = torch.cat([_left_pad(ours.values, width), _left_pad(theirs.values, width)], dim=0)
            pad = lambda m: torch.cat([torch.zeros((m.shape[0], width - m.shape[1]), dtype=m.dtype), m], dim=1)
            self.mask = torch.cat([pad(self.mask), pad(mask)], dim=0)
            self.positions = torch.cat([self.positions, positions], dim=0)
            self.rows += list(rows)
        self.next_ids += tokens
        self.counts += [1] * len(rows)
        self.generators += generators

    def step(self) -> None:
        """One token for every running row; rows that ended (or were cancelled) leave the batch."""
        torch = self.torch
        live = []
        for i, row in enumerate(self.rows):
            if row.cancelled():
                row.done("cancelled")
            else:
                live.append(i)
        self._keep(live)
        if not self.rows:
            return
        self.mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=torch.long)], dim=1)
        with torch.inference_mode():
            out = self._forward(torch.tensor(self.next_ids, dtype=torch.long)[:, None], self.mask, self.positions,
                                self.cache, self.rows)
        self.cache = out.past_key_values
        self.positions = self.positions + 1
        logits = out.logits[:, -1, :].float().cpu()
        live = []
        for i, row in enumerate(self.rows):
            token = self._pick(row, logits[i], self.generators[i], self.counts[i])
            if token is not None:
                self.next_ids[i] = token
                self.counts[i] += 1
                live.append(i)
        self._keep(live)

    def _keep(self, live: list[int]) -> None:
        """Keep only these rows; drop the cache columns no remaining row attends to."""
        if len(live) == len(self.rows):
            return
        if not live:
            self.rows, self.cache, self.mask, self.positions = [], None, None, None
            self.next_ids, self.counts, self.generators = [], [], []
            return
        index = self.torch.tensor(live)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.rows = [self.rows[i] for i in live]
        self.next_ids = [self.next_ids[i] for i in live]
        self.counts = [self.counts[i] for i in live]
        self.generators = [self.generators[i] for i in live]
        start = int(self.mask.any(dim=0).int().argmax())     # the first column some row attends to
        if start:
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]

    def clear(self) -> list:
        """Drop every running row (a failed step, or the server stopping); the rows that were running."""
        rows = self.rows
        self._keep([])
        return rows


def _left_pad(tensor, width: int):
    """A cache tensor (batch, heads, tokens, dim) padded with zeros on the left to `width` tokens."""
    import torch

    missing = width - tensor.shape[2]
    if not missing:
        return tensor
    shape = (tensor.shape[0], tensor.shape[1], missing, tensor.shape[3])
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype, device=tensor.device), tensor], dim=2)


def decode_batch(model, tokenizer, rows: list) -> None:
    """Decode rows together until each has ended (what the continuous Decoder does for one fixed group)."""
    decoder = Decoder(model, tokenizer)
    decoder.admit(rows)
    while decoder.rows:
        decoder.step()
