"""MLflow pyfunc model (logged as code, never pickled): base model by reference + the LoRA adapter.

Input, in MLflow's inputs / dataframe_split / dataframe_records / instances formats, either prompts (a `prompt`
column, or plain strings: the answers come back as strings) or conversations (a `messages` column of OpenAI chat
messages, system, user, assistant and tool, with an optional `tools` column of function definitions: each answer
comes back as an assistant message, with `tool_calls` in OpenAI's shape when the model calls a tool). Both are
rendered with the chat template stored with the adapter, as training rendered them.
params: max_new_tokens, temperature (0: greedy, the only decoding served), stop.
"""

from __future__ import annotations

import json

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

try:   # shipped with the registered model (code_paths); imported bare where AdapterOps is not installed
    from tasks.model.generate import DEFAULT_MAX_NEW_TOKENS, cut_at_stop, generate
    from tasks.model.prompts import conversation_token_ids, prompt_token_ids, use_adapter_template
    from tasks.model.tool_calls import parse_tool_calls, syntax_of
    from tasks.serve.base_location import base_model_location
except ImportError:   # pragma: no cover - only where AdapterOps is not installed
    from base_location import base_model_location
    from generate import DEFAULT_MAX_NEW_TOKENS, cut_at_stop, generate
    from prompts import conversation_token_ids, prompt_token_ids, use_adapter_template
    from tool_calls import parse_tool_calls, syntax_of

ROLES = ("system", "user", "assistant", "tool")


def _builtin_base():
    """The resolver of AdapterOps' built-in base model, where AdapterOps is installed; else None."""
    try:
        from adapterops.base_models import builtin_base_location
    except ImportError:   # pragma: no cover - only where AdapterOps is not installed
        return None
    return builtin_base_location


def _bad_input(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)   # the scoring server answers 400


def _rows(model_input) -> list:
    """The request's rows: a DataFrame's records, or the list's items."""
    if hasattr(model_input, "columns"):
        return model_input.to_dict("records")
    if isinstance(model_input, dict):    # {"inputs": {"messages": [...]}} arrives as a dict of columns
        columns = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in model_input.items()}
        width = max(len(v) for v in columns.values()) if columns else 0
        return [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(width)]
    return model_input.tolist() if hasattr(model_input, "tolist") else list(model_input)


def _plain(value):
    """numpy arrays and JSON text (a CSV or dataframe_split cell) as Python lists and dicts."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad_input("messages and tools given as text must be JSON") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) if not isinstance(v, str) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) if not isinstance(v, str) else v for v in value]
    return value


def conversation_of(row: dict) -> tuple[list[dict], list[dict] | None]:
    """(messages, tools) of one conversation row, checked: roles known, content text, ending before an answer."""
    messages, tools = _plain(row.get("messages")), row.get("tools")
    tools = None if tools is None or (isinstance(tools, float) and tools != tools) else _plain(tools)
    if not isinstance(messages, list) or not messages:
        raise _bad_input("messages must be a non-empty list of chat messages")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise _bad_input(f"messages[{i}] must be an object with role one of {', '.join(ROLES)}")
        content = message.get("content")
        if isinstance(content, list):   # OpenAI's text parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if content is not None and not isinstance(content, str):
            raise _bad_input(f"messages[{i}].content must be text")
        if content is None and not message.get("tool_calls"):
            raise _bad_input(f"messages[{i}] has no content")
        out.append({k: v for k, v in message.items() if v is not None} | {"content": content})
    if out[-1]["role"] == "assistant":
        raise _bad_input("the last message is the assistant's: send the conversation up to the turn to answer")
    if tools is not None and not isinstance(tools, list):
        raise _bad_input("tools must be a list of function definitions")
    return out, tools


def requests_of(model_input) -> tuple[str, list]:
    """("prompts", [str]) or ("conversations", [(messages, tools)]) of a request; a bad one raises a 400."""
    rows = _rows(model_input)
    if rows and all(isinstance(r, dict) and r.get("messages") is not None for r in rows):
        return "conversations", [conversation_of(r) for r in rows]
    return "prompts", prompts_of(model_input)


def prompts_of(model_input) -> list[str]:
    """The prompts of a request: a DataFrame's `prompt` column (or its only column), or a list of strings/records."""
    if hasattr(model_input, "columns"):
        if "prompt" not in model_input.columns and len(model_input.columns) != 1:
            raise _bad_input(f"expected a 'prompt' column or a 'messages' column, got {list(model_input.columns)}")
        column = model_input["prompt"] if "prompt" in model_input.columns else model_input.iloc[:, 0]
        rows = column.tolist()
    elif isinstance(model_input, dict):
        rows = list(model_input.get("prompt", next(iter(model_input.values()), [])))
    else:   # a list, or the scoring server's numpy array of {"inputs": [...]}
        items = model_input.tolist() if hasattr(model_input, "tolist") else list(model_input)
        rows = [v.get("prompt") if isinstance(v, dict) else v for v in items]
    values = []   # {"prompt": [a, b]} arrives as one row holding the list
    for row in rows:
        if isinstance(row, str):
            values.append(str(row))
        else:
            values.extend(row.tolist() if hasattr(row, "tolist") else row if isinstance(row, list) else [row])
    if not values:
        raise _bad_input("no prompts: send at least one non-empty prompt")
    if any(not isinstance(v, str) or not v.strip() for v in values):
        raise _bad_input("every prompt must be a non-empty string")
    return values


class AdapterModel(PythonModel):
    """Loads the base named in model_config and applies the adapter stored with this model, and its template."""

    def load_context(self, context):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = context.model_config
        path, revision = base_model_location(config, _builtin_base())
        self.template = config.get("serving.prompt_template", "{prompt}")
        self.tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        use_adapter_template(self.tokenizer, context.artifacts["adapter"], config)   # the rendering it was trained with
        self.syntax = syntax_of(getattr(self.tokenizer, "chat_template", None),
                                config.get("serving.tool_call_syntax", "auto"))
        base = AutoModelForCausalLM.from_pretrained(path, revision=revision)
        self.model = PeftModel.from_pretrained(base, context.artifacts["adapter"]).eval()

    def predict(self, context, model_input, params=None) -> list:
        params = params or {}
        kind, requests = requests_of(model_input)
        max_new = int(params.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
        if max_new < 1:
            raise _bad_input("max_new_tokens must be at least 1")
        if float(params.get("temperature") or 0.0) != 0.0:
            raise _bad_input("this model decodes greedily: send temperature 0 or leave it out")
        stop = params.get("stop")
        stop = [stop] if isinstance(stop, str) else list(stop or [])
        if kind == "prompts":
            ids = [prompt_token_ids(self.tokenizer, p, self.template) for p in requests]
        else:
            try:
                ids = [conversation_token_ids(self.tokenizer, m, t, self.template) for m, t in requests]
            except Exception as error:   # the template refused the conversation (raise_exception, a missing key)
                raise _bad_input(f"the conversation cannot be rendered: {error}") from None
        answers = [cut_at_stop(a.text, stop)[0] for a in generate(self.model, self.tokenizer, ids, max_new,
                                                                  adapter="default")]
        if kind == "prompts":
            return answers
        out = []
        for text in answers:
            content, calls = parse_tool_calls(text, self.syntax)
            out.append({"role": "assistant", "content": content or None if calls else content}
                       | ({"tool_calls": calls} if calls else {}))
        return out


mlflow.models.set_model(AdapterModel())
