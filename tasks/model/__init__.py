"""The base model and what every later stage does with it: load it (base_model, attention), render a prompt
or a conversation into token ids (prompts), label a conversation's trained assistant tokens (masks), decode
answers, several adapters in one batch (generate), and read tool calls back from an answer (tool_calls). Training, evaluation and serving share these, so they
render and decode alike.

The names below are the stage's public face: flows and commands import them from here.
"""

from tasks.model.base_model import detect_device, load_base_model
from tasks.model.generate import generate
from tasks.model.masks import conversation_ids, trained_pieces
from tasks.model.prompts import conversation_token_ids, prompt_token_ids, template_digest
from tasks.model.tool_calls import parse_tool_calls

__all__ = ["conversation_ids", "conversation_token_ids", "detect_device", "generate", "load_base_model",
           "parse_tool_calls", "prompt_token_ids", "template_digest", "trained_pieces"]
