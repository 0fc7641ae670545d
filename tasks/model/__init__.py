"""The base model and what every later stage does with it: load it (base_model, attention), render a
prompt into token ids (prompts) and decode answers, several adapters in one batch (generate). Training,
evaluation and serving share these, so they render and decode alike.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.model.base_model import detect_device, load_base_model
from tasks.model.generate import generate
from tasks.model.prompts import prompt_token_ids

__all__ = ["detect_device", "generate", "load_base_model", "prompt_token_ids"]
