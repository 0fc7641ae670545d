"""Tool calls in generated text: the syntax a template family writes them in, read back into OpenAI's shape.

Dependency-free on purpose, like prompts.py: serving and evaluation read answers the same way. `hermes`
(ChatML templates of the Qwen / Hermes family) writes each call as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`; `none` reads no calls.
"""

from __future__ import annotations

import json
import re

SYNTAXES = ("hermes", "none")
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_tool_calls(text: str, syntax: str = "hermes", id_prefix: str = "call") -> tuple[str, list[dict]]:
    """(the text without its tool calls, the calls as OpenAI tool_calls dicts with JSON-text arguments).

    A call that is not valid JSON or has no name stays in the text: it is not a call the caller could run.
    """
    if syntax == "none":
        return text, []
    if syntax != "hermes":
        raise ValueError(f"unknown tool-call syntax {syntax!r}; use one of {', '.join(SYNTAXES)}")
    calls, kept, end = [], [], 0
    for match in _HERMES.finditer(text):
        try:
            body = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            continue
        kept.append(text[end:match.start()])
        end = match.end()
        arguments = body.get("arguments", {})
        calls.append({"id": f"{id_prefix}_{len(calls)}", "type": "function",
                      "function": {"name": body["name"],
                                   "arguments": arguments if isinstance(arguments, str)
                                   else json.dumps(arguments, ensure_ascii=False)}})
    kept.append(text[end:])
    return "".join(kept).strip() if calls else text, calls


def syntax_of(template: str | None, configured: str = "auto") -> str:
    """The tool-call syntax a template family writes (as vLLM's --tool-call-parser names it): the configured one,
    or for `auto` hermes when the template speaks of <tool_call>, else none."""
    if configured != "auto":
        return configured
    return "hermes" if template and "<tool_call>" in template else "none"


def attempted_calls(text: str, syntax: str) -> int:
    """How many calls the text tries to make, parseable or not (a malformed one is still an attempt)."""
    return text.count("<tool_call>") if syntax == "hermes" else 0
