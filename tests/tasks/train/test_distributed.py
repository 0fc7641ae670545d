"""The recipe under two processes (torchrun, as accelerate launch starts it): DDP on CPU with gloo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml


def test_two_processes_train_one_adapter_with_checkpoints(tmp_path, tiny_model_dir):
    pd.DataFrame([{"prompt": f"Ticket {i}: refund {i}", "completion": f"Triage: billing {i % 3}"} for i in range(16)]
                 ).to_parquet(tmp_path / "train.parquet")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "base_model": str(tiny_model_dir), "lora": {"r": 4, "alpha": 8},
        "train": {"max_steps": 4, "batch_size": 4, "max_length": 64, "warmup_steps": 1, "checkpoint_every": 2}}))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "tasks.train",
               str(tmp_path / "config.yaml"), "--data", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=Path(__file__).parents[3], env=os.environ | {"OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained 4 steps") == 1  # rank 0 reports and saves
    assert len(json.loads((tmp_path / "out" / "history.json").read_text())) == 4
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
