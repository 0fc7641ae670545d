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
