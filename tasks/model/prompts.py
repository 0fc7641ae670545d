"""The one prompt builder: training, evaluation and serving turn a prompt or a conversation into token ids here.

Dependency-free on purpose: the registered MLflow model ships this file (code_paths) and imports it
as `prompts` where AdapterOps is not installed.
"""

import hashlib
import json

TEMPLATE_FILE = "chat_template.jinja"   # the chat template an adapter was trained with, stored beside its weights


def template_digest(template: str | None) -> str:
    """The digest that names a chat template (what the training key and the adapter version record)."""
    return "sha256:" + hashlib.sha256((template or "").encode("utf-8")).hexdigest()


def prompt_text(tokenizer, prompt: str, template: str) -> str:
    """The tokenizer's chat template when it has one, else the configured prompt template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return template.format(prompt=prompt)


def text_token_ids(tokenizer, text: str) -> list[int]:
    """BOS (unless the rendering starts with it, as Llama-3's template does), then the text's ids without other
    special tokens added."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    return ids if bos is None or (ids and ids[0] == bos) else [bos] + ids


def prompt_token_ids(tokenizer, prompt: str, template: str) -> list[int]:
    """BOS, then the rendered prompt's ids without other special tokens: what the model sees before it answers."""
    return text_token_ids(tokenizer, prompt_text(tokenizer, prompt, template))


def canonical_tools(tools: list[dict] | None) -> list[dict] | None:
    """Tool definitions with their keys sorted at every level: the form the corpus stores them in, whatever order
    a client sent them in (a template's `tojson` writes keys as given, so order changes the ids)."""
    return [json.loads(json.dumps(tool, sort_keys=True)) for tool in tools] if tools else None


def canonical_messages(messages: list[dict]) -> list[dict]:
    """Messages with each tool call's arguments as an object (parsed from the JSON text OpenAI sends; text that is
    not JSON is kept): how chat templates take them, the same whether a record or a client's request holds them."""
    out = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            message = dict(message, tool_calls=[_parsed_call(call) for call in calls])
        out.append(message)
    return out


def _parsed_call(call: dict) -> dict:
    function = call.get("function")
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if not isinstance(arguments, str):
        return call
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return call
    return dict(call, function=dict(function, arguments=parsed))


def conversation_text(tokenizer, messages: list[dict], tools: list[dict] | None = None,
                      add_generation_prompt: bool = True) -> str:
    """The conversation rendered by the tokenizer's chat template (with the assistant's turn opened), from its
    canonical form (`canonical_messages`, `canonical_tools`): training, evaluation and serving render alike."""
    return tokenizer.apply_chat_template(canonical_messages(messages), tools=canonical_tools(tools), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def conversation_token_ids(tokenizer, messages: list[dict], tools: list[dict] | None, template: str) -> list[int]:
    """BOS, then the conversation so far rendered by the tokenizer's chat template with the assistant's turn
    opened: what the model sees before it writes the next assistant message. Without a chat template only a
    single user message can be rendered (by `template`, as `prompt_token_ids` does)."""
    if getattr(tokenizer, "chat_template", None):
        return text_token_ids(tokenizer, conversation_text(tokenizer, messages, tools))
    if len(messages) != 1 or messages[0].get("role") != "user" or tools:
        raise ValueError("this model has no chat template: only a single user message can be rendered")
    return prompt_token_ids(tokenizer, messages[0]["content"], template)


def adapter_template(adapter_dir, config: dict | None = None) -> str:
    """The chat template an adapter was trained with: its chat_template.jinja beside the weights, else
    serving.chat_template in its MLmodel config; empty when it has none (trained before templates were stored,
    or a base without one: the base tokenizer's own, if any, is used)."""
    import os

    path = os.path.join(str(adapter_dir), TEMPLATE_FILE)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    return str((config or {}).get("serving.chat_template") or "")


def use_adapter_template(tokenizer, adapter_dir, config: dict | None = None) -> str | None:
    """Give the tokenizer the chat template stored with an adapter (its training rendering, `adapter_template`);
    returns it, or None when the adapter has none stored (the tokenizer keeps its own)."""
    template = adapter_template(adapter_dir, config)
    if template:
        tokenizer.chat_template = template
    return template or None
