"""The one prompt builder: training, evaluation and serving turn a prompt into token ids here.

Dependency-free on purpose: the registered MLflow model ships this file (code_paths) and imports it
as `prompts` where AdapterOps is not installed.
"""


def prompt_text(tokenizer, prompt: str, template: str) -> str:
    """The tokenizer's chat template when it has one, else the configured prompt template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return template.format(prompt=prompt)


def prompt_token_ids(tokenizer, prompt: str, template: str) -> list[int]:
    """BOS, then the rendered prompt's ids without other special tokens: what the model sees before it answers."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(prompt_text(tokenizer, prompt, template), add_special_tokens=False)["input_ids"]


def conversation_token_ids(tokenizer, messages: list[dict], tools: list[dict] | None, template: str) -> list[int]:
    """BOS, then the conversation so far rendered by the tokenizer's chat template with the assistant's turn
    opened: what the model sees before it writes the next assistant message. Without a chat template only a
    single user message can be rendered (by `template`, as `prompt_token_ids` does)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=False, add_generation_prompt=True)
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        return bos + tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(messages) != 1 or messages[0].get("role") != "user" or tools:
        raise ValueError("this model has no chat template: only a single user message can be rendered")
    return prompt_token_ids(tokenizer, messages[0]["content"], template)
