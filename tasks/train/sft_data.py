"""Supervised fine-tuning data: records → token ids with the loss on the completion → batches.

A padded batch is one example per row, right-padded, padding masked out of attention and loss.
A packed batch lays examples end to end in each row, position ids restarting at 0 for each. With
two examples A (3 tokens, prompt 1) and B (2 tokens, prompt 1) and capacity 6:

    input_ids     A0 A1 A2 B0 B1 pad
    position_ids   0  1  2  0  1   0
    labels         -  A1 A2  -  B1  -      (- = ignored: a prompt token, or the first of an example)
"""

from __future__ import annotations

from dataclasses import dataclass

from adapterops.config import TrainConfig
from tasks.model.prompts import prompt_token_ids

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


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


def model_inputs(batch: list[Example], pad_id: int, train: TrainConfig, attention: str = "sdpa") -> tuple[dict, int]:
    """Keyword arguments for the model's forward pass (packed or padded) and the real token count.

    flash_attention_2 detects packed examples only in a single row, so it always gets one.
    """
    real = sum(len(e.input_ids) for e in batch)
    if train.packing:
        return collate_packed(batch, pad_id, 0 if attention == "flash_attention_2" else train.pack_length), real
    ids, mask, labels = collate(batch, pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}, real


def next_batch(examples: list[Example], queue: list[int], order, size: int) -> list[Example]:
    """Take `size` examples from the shuffled queue (mutated), reshuffling with `order` when it runs dry."""
    import torch

    batch = []
    while len(batch) < size:
        if not queue:
            queue.extend(torch.randperm(len(examples), generator=order).tolist())
        batch.append(examples[queue.pop()])
    return batch


def load_records(path) -> list[dict]:
    """Prompt/completion records of a corpus Parquet file."""
    import pandas as pd

    return pd.read_parquet(path)[["prompt", "completion"]].to_dict("records")


def load_examples(path, tokenizer, train: TrainConfig) -> tuple[list[Example], int]:
    return tokenize_examples(load_records(path), tokenizer, train.prompt_template, train.max_length)
