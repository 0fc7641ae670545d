"""Resume after a hard kill: the finished adapter and loss curve match an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

from tasks.train.checkpoints import latest_checkpoint

RECORDS = [{"prompt": f"Ticket {i}: my invoice {i * 7} is wrong", "completion": f"Triage: billing | priority: {i % 3}"}
           for i in range(24)]
STEPS = 40


@pytest.fixture()
def recipe(tmp_path, tiny_model_dir):
    data = tmp_path / "train.parquet"
    pd.DataFrame(RECORDS).to_parquet(data)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "base_model": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
        "train": {"max_steps": STEPS, "batch_size": 4, "max_length": 96, "warmup_steps": 2, "checkpoint_every": 5}}))

    def start(out: Path, resume: bool = False) -> subprocess.Popen:
        command = [sys.executable, "-m", "tasks.train", str(config), "--data", str(data), "--out", str(out)]
        return subprocess.Popen(command + (["--resume"] if resume else []), cwd=Path(__file__).parents[3],
                                env=os.environ | {"OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    return start, config, data


def finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output.decode()[-2000:]


def test_sigkill_then_resume_matches_an_uninterrupted_run(recipe, tmp_path):
    start, config, data = recipe
    finish(start(tmp_path / "straight"))   # a process like the interrupted one: same thread count, same float order

    interrupted = tmp_path / "interrupted"
    process = start(interrupted)
    while latest_checkpoint(interrupted / "checkpoints") is None and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = latest_checkpoint(interrupted / "checkpoints")
    assert killed_at is not None and killed_at.name != f"step-{STEPS:06d}" and not (interrupted / "adapter").exists()

    finish(start(interrupted, resume=True))

    straight_curve = json.loads((tmp_path / "straight" / "history.json").read_text())
    resumed_curve = json.loads((interrupted / "history.json").read_text())
    assert len(resumed_curve) == len(straight_curve) == STEPS
    assert [h["loss"] for h in resumed_curve] == pytest.approx([h["loss"] for h in straight_curve], abs=1e-6)
    straight = load_file(str(tmp_path / "straight" / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(interrupted / "adapter" / "adapter_model.safetensors"))
    assert straight.keys() == resumed.keys()
    assert all((straight[k] - resumed[k]).abs().max() <= 1e-6 for k in straight)


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_model_dir, tmp_path):
    from adapterops.config import LoraConfig, TrainConfig
    from adapterops.errors import AdapterOpsError
    from adapterops.refs import BaseModelRef
    from tasks.model.base_model import load_base_model
    from tasks.train.recipe import train_lora, wrap_with_lora
    from tasks.train.sft_data import tokenize_examples

    train = TrainConfig(max_steps=2, batch_size=2, max_length=96, checkpoint_every=1)
    lora = {"lora": {"r": 4, "alpha": 8}}
    runs = ((train, lora, False), (train.model_copy(update={"batch_size": 3}), lora, True),
            (train, {"lora": {"r": 4, "alpha": 64}}, True))          # same shapes, other LoRA scaling
    for settings, recipe, resume in runs:
        model, tokenizer = load_base_model(BaseModelRef("tiny", str(tiny_model_dir), "x"))
        examples, _ = tokenize_examples(RECORDS, tokenizer, train.prompt_template, train.max_length)
        model = wrap_with_lora(model, LoraConfig(**recipe["lora"]), seed=train.seed)
        if not resume:
            train_lora(model, tokenizer, examples, settings, checkpoints=tmp_path, resume=False, recipe=recipe)
            assert latest_checkpoint(tmp_path).name == "step-000002" and len(list(tmp_path.iterdir())) == 2
            continue
        with pytest.raises(AdapterOpsError, match="without --resume"):
            train_lora(model, tokenizer, examples, settings, checkpoints=tmp_path, resume=True, recipe=recipe)
