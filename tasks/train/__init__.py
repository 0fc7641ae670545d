"""LoRA training: records → examples and batches (sft_data), the recipe (recipe), checkpoints, and the
MLflow run that registers the adapter (run); `python -m tasks.train` runs the recipe alone.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.train.checkpoints import latest_checkpoint
from tasks.train.recipe import apply_template
from tasks.train.run import load_adapter_ref, reusable_version, train_adapter, train_run_dir, truncation_note
from tasks.train.sft_data import load_records, prepare_examples

__all__ = [
    "apply_template", "latest_checkpoint", "load_adapter_ref", "load_records", "prepare_examples", "reusable_version",
    "train_adapter", "train_run_dir", "truncation_note",
]
