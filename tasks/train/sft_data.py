"""Supervised fine-tuning data: records → token ids with the loss on the assistant's turns → batches.

A record is a conversation (tasks/records/conversation.py; a prompt/completion record is the one-turn case);
tasks/model/masks.py renders it with the chat template and labels the trained assistant turns. The preflight
counts what training will see: examples, trained and context tokens, the longest, and those over max_length.

A padded batch is one example per row, right-padded, padding masked out of attention and loss.
A packed batch lays examples end to end in each row, position ids restarting at 0 for each. With
two examples A (3 tokens, prompt 1) and B (2 tokens, prompt 1) and capacity 6:

    input_ids     A0 A1 A2 B0 B1 pad
    position_ids   0  1  2  0  1   0
    labels         -  A1 A2  -  B1  -      (- = ignored: a prompt token, or the first of an example)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adapterops.config import TrainConfig
from tasks.records.conversation import conversation_of
from tasks.model.masks import IGNORE, conversation_ids


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


@dataclass
class Preflight:
    """What the approved corpus is to the base model's tokenizer, before any step is trained."""
    records: int = 0
    examples: int = 0
    trained_tokens: int = 0
    context_tokens: int = 0
    longest_tokens: int = 0
    longest_id: str | None = None
    over_max_length: int = 0
    truncated: int = 0
    quarantined: list[dict] = field(default_factory=list)    # {id, reason, tokens}
    untrained: list[dict] = field(default_factory=list)      # {id, reason}: no trained token (left, or cut, out)
    multi_turn: int = 0
    max_length: int = 0
    overlong: str = "truncate"

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("quarantined", "untrained")} | {
            "quarantined": len(self.quarantined), "untrained": len(self.untrained)}

    def lines(self) -> list[str]:
        """The preflight as a person reads it (counts only; no record text)."""
        out = [f"{self.examples} examples from {self.records} records ({self.multi_turn} multi-turn): "
               f"{self.trained_tokens} trained tokens, {self.context_tokens} context tokens",
               f"longest: {self.longest_tokens} tokens (record {self.longest_id}); train.max_length {self.max_length}"]
        if self.over_max_length:
            verb = "quarantined" if self.overlong == "quarantine" else "truncated"
            out.append(f"{self.over_max_length} over train.max_length: {verb} (train.overlong: {self.overlong})")
        if self.untrained:
            out.append(f"{len(self.untrained)} records with no trained token left out")
        return out


def prepare_examples(records: list[dict], tokenizer, train: TrainConfig) -> tuple[list[Example], Preflight]:
    """Every record's token ids with the loss on its trained assistant turns, and the preflight counts.

    An example over train.max_length is truncated (what fits is trained) or quarantined (left out, listed), as
    train.overlong says; one with no trained token left is left out and listed. Every record is counted once."""
    examples, report = [], Preflight(records=len(records), max_length=train.max_length, overlong=train.overlong)
    for index, record in enumerate(records):
        record_id = str(record.get("id", index))
        conversation = conversation_of(record)
        ids, labels = conversation_ids(tokenizer, conversation, train.prompt_template, record_id)
        if len(ids) > report.longest_tokens:
            report.longest_tokens, report.longest_id = len(ids), record_id
        if len(ids) > train.max_length:
            report.over_max_length += 1
            if train.overlong == "quarantine":
                report.quarantined.append({"id": record_id, "tokens": len(ids),
                                           "reason": f"{len(ids)} tokens, over train.max_length={train.max_length}"})
                continue
            report.truncated += 1
            ids, labels = ids[:train.max_length], labels[:train.max_length]
        trained = sum(label != IGNORE for label in labels)
        if not trained:
            report.untrained.append({"id": record_id, "reason": "no trained assistant token within train.max_length"
                                     if ids else "no trained assistant turn"})
            continue
        report.examples += 1
        report.multi_turn += not conversation.is_one_turn()
        report.trained_tokens += trained
        report.context_tokens += len(ids) - trained
        examples.append(Example(ids, labels))
    return examples, report


def tokenize_examples(records: list[dict], tokenizer, template: str, max_length: int) -> tuple[list[Example], int]:
    """Token ids with the loss on the assistant's turns (truncated at max_length); returns (examples, truncated)."""
    examples, report = prepare_examples(records, tokenizer, TrainConfig(prompt_template=template, max_length=max_length))
    return examples, report.truncated


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


RECORD_COLUMNS = ("id", "prompt", "completion", "messages", "tools")


def load_records(path) -> list[dict]:
    """The records of a corpus Parquet file: id, prompt, completion and, where stored, the conversation."""
    import pandas as pd

    frame = pd.read_parquet(path)
    frame = frame[[c for c in RECORD_COLUMNS if c in frame.columns]]
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def load_examples(path, tokenizer, train: TrainConfig) -> tuple[list[Example], int]:
    examples, report = prepare_examples(load_records(path), tokenizer, train)
    return examples, report.truncated
