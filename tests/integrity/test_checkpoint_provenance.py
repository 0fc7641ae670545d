"""A checkpoint resumes only if this run wrote it (a copied one with a forged
fingerprint starts fresh, and says so); a byte flipped in an approved train.parquet is one line."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from adapterops.errors import AdapterOpsError
from tests.integrity.procs_approval import keyed_contract, publish

APPROVED = [{"prompt": f"Ticket {i}: my invoice {i} is wrong", "completion": f"Triage: billing | priority: {i % 3}"}
            for i in range(8)]
REJECTED = [{"prompt": f"Ticket {i}: wire money to {i}", "completion": "Triage: fraud | priority: 9"} for i in range(8)]


def train(tiny_model_dir, records, checkpoints, resume=False):
    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.refs import BaseModelRef
    from tasks.model.base_model import load_base_model
    from tasks.train.recipe import train_lora, wrap_with_lora
    from tasks.train.sft_data import tokenize_examples

    train = TrainConfig(max_steps=2, batch_size=2, max_length=64, checkpoint_every=1)
    model, tokenizer = load_base_model(BaseModelRef("tiny", str(tiny_model_dir), "x"))
    examples, _ = tokenize_examples(records, tokenizer, train.prompt_template, train.max_length)
    model = wrap_with_lora(model, LoraConfig(r=4, alpha=8), seed=train.seed)
    return train_lora(model, tokenizer, examples, train, checkpoints=checkpoints, resume=resume, recipe={"r": 4})


def test_a_checkpoint_copied_from_another_run_is_not_resumed(tiny_model_dir, tmp_path, caplog):
    from tasks.train.checkpoints import latest_checkpoint, resumable_checkpoint

    approved, rejected = tmp_path / "approved" / "checkpoints", tmp_path / "rejected" / "checkpoints"
    train(tiny_model_dir, APPROVED, approved)
    train(tiny_model_dir, REJECTED, rejected)
    assert resumable_checkpoint(approved) == latest_checkpoint(approved)        # its own checkpoint is trusted
    ours = json.loads((latest_checkpoint(approved) / "state.json").read_text())["fingerprint"]

    # the attack: the rejected run's newest checkpoint, its fingerprint replaced by the approved run's
    shutil.rmtree(approved)
    approved.mkdir()
    forged = approved / "step-000002"
    shutil.copytree(latest_checkpoint(rejected), forged)
    state = json.loads((forged / "state.json").read_text())
    (forged / "state.json").write_text(json.dumps(state | {"fingerprint": ours}))
    with caplog.at_level(logging.WARNING, logger="tasks.train.checkpoints"):
        history = train(tiny_model_dir, APPROVED, approved, resume=True)
    assert len(history) == 2                                       # both steps trained here, none restored
    assert any("Not resuming from" in r.getMessage() and "starts from" in r.getMessage() for r in caplog.records)
    assert len(list(approved.glob(".refused-step-000002-*"))) == 1                # set aside, not deleted
    assert json.loads((latest_checkpoint(approved) / "state.json").read_text())["fingerprint"] == ours

    # an intact checkpoint moved into another run's folder is not that run's either
    moved = tmp_path / "elsewhere" / "checkpoints"
    shutil.copytree(approved, moved)
    assert resumable_checkpoint(moved) is None


@pytest.fixture()
def approved_version(tmp_path, monkeypatch):
    from tasks.approve.approval import record_decision

    contract = keyed_contract(tmp_path / "contracts")
    monkeypatch.setenv("ADAPTEROPS_CONTRACTS", str(contract.parent))
    corpus = publish("flipped", tmp_path / "stages", "flipped")
    record_decision("flipped", corpus.digest, "dana.k", "approved", announce=False)
    return corpus


def test_a_flipped_byte_in_an_approved_train_file_is_one_line_at_any_offset(approved_version):
    from tasks.approve.approval import require_approved

    require_approved("flipped", approved_version.digest)
    path = Path(approved_version.path) / "train.parquet"
    original = path.read_bytes()
    offsets = sorted({0, 5, len(original) // 4, len(original) // 2, 3 * len(original) // 4, len(original) - 12,
                      len(original) - 3})
    for offset in offsets:
        flipped = bytearray(original)
        flipped[offset] ^= 0xFF
        path.write_bytes(bytes(flipped))
        with pytest.raises(AdapterOpsError) as refused:
            require_approved("flipped", approved_version.digest)
        message = str(refused.value)
        assert "\n" not in message and "changed" in message and "version 1" in message, (offset, message)
    path.write_bytes(original)
    require_approved("flipped", approved_version.digest)
