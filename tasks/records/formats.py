"""Input formats of a record and their reading into one Conversation, with a named reason when a row cannot be one.

Formats: OpenAI chat (`messages`, optional `tools`, `parallel_tool_calls`; TRL's conversational shape is the
same), ShareGPT (`conversations` of {from, value}, optional `system` and `tools`), Alpaca (`instruction`,
`input`, `output`, optional `system` and `history`), and prompt/completion (text columns as mapped by
`columns.*`, or TRL's conversational prompt/completion: lists of messages). Pure: no file is read here.
"""

from __future__ import annotations

import json
from tasks.records.conversation import ROLES, Conversation, Message, ToolCall

FORMAT_NAMES = {"openai": "OpenAI chat (messages)", "sharegpt": "ShareGPT (conversations)",
                "alpaca": "Alpaca (instruction/output)", "prompt_completion": "prompt/completion"}
MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id", "weight", "name"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "model": "assistant", "bing": "assistant", "bard": "assistant", "system": "system",
                  "function_call": "assistant", "observation": "tool", "tool": "tool", "function": "tool"}
TOOL_CALL_KEYS = {"id", "type", "function", "index"}


class Malformed(Exception):
    """A row that cannot be a conversation: `kind` is the reason code, the message says where and what."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def row_format(row: dict, prompt_column: str = "prompt") -> str | None:
    """The format one row is in, by its keys (None: none recognised)."""
    if _present(row.get("messages")):
        return "openai"
    if _present(row.get("conversations")):
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if prompt_column in row:
        return "prompt_completion"
    if "messages" in row:                  # present but null or empty: still a chat row, malformed
        return "openai"
    if "conversations" in row:
        return "sharegpt"
    return None


def _present(value) -> bool:
    """Not null, NaN or empty text (arrays and lists count as present even when empty: malformed, not absent)."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    return not (isinstance(value, str) and value == "")


def conversation_from(row: dict, fmt: str, prompt_column: str = "prompt", completion_column: str = "completion") \
        -> Conversation:
    """The row, in format `fmt`, as a checked Conversation; raises Malformed naming the reason."""
    if fmt == "openai":
        conversation = Conversation(messages=tuple(_openai_messages(_json_field(row, "messages"))),
                                    tools=_tools(row.get("tools")))
    elif fmt == "sharegpt":
        conversation = _sharegpt(row)
    elif fmt == "alpaca":
        conversation = _alpaca(row)
    else:
        return _prompt_completion(row, prompt_column, completion_column)
    check_conversation(conversation)
    return conversation


def _json_field(row: dict, key: str, what: str = "a list of messages"):
    """row[key], decoded when it is JSON text (CSV cells, some exports); Malformed when missing or empty."""
    value = row.get(key)
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else None
        except json.JSONDecodeError as error:
            raise Malformed("messages_not_a_list", f"{key} is text that is not JSON ({error.msg} at column "
                                                   f"{error.colno}); it must be {what}") from None
    if hasattr(value, "tolist"):           # numpy arrays from Parquet / pandas
        value = value.tolist()
    if not _present(value) or (isinstance(value, (list, tuple)) and not value):
        raise Malformed("no_messages", f"{key} is missing or empty; a record needs {what}")
    if not isinstance(value, (list, tuple)):
        raise Malformed("messages_not_a_list", f"{key} is {_kind(value)}, expected {what}")
    return list(value)


def _kind(value) -> str:
    return {dict: "an object", str: "text", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__)


def _plain(value):
    """Typed rows (Parquet, HF) give every struct all keys, absent ones as None: drop those, decode arrays."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _text(value, where: str) -> str | None:
    """Message content as text: a string, or OpenAI content parts of type text joined; other kinds are Malformed."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        if all(p.get("type") == "text" and isinstance(p.get("text"), str) for p in value):
            return "".join(p["text"] for p in value)
        kinds = sorted({str(p.get("type")) for p in value if p.get("type") != "text"})
        raise Malformed("unsupported_content", f"{where} has content parts of type {kinds}; only text is trained")
    raise Malformed("wrong_type", f"{where} content is {_kind(value)}, expected text")


def _openai_messages(items: list) -> list[Message]:
    messages = []
    for number, item in enumerate(items, start=1):
        where = f"message {number}"
        item = _plain(item)
        if not isinstance(item, dict):
            raise Malformed("message_not_an_object", f"{where} is {_kind(item)}, expected an object with role and content")
        unknown = sorted(set(item) - MESSAGE_KEYS)
        if unknown:
            raise Malformed("unknown_key", f"{where} has key(s) {unknown}; a message has role, content, tool_calls, "
                                           f"tool_call_id and weight")
        role = item.get("role")
        if not role:
            raise Malformed("missing_role", f"{where} has no role")
        if role not in ROLES:
            raise Malformed("unknown_role", f"{where} has role {str(role)[:40]!r}; use system, user, assistant or tool")
        calls = tuple(_tool_call(call, f"{where} tool call {i}") for i, call in enumerate(item.get("tool_calls") or (), 1))
        if calls and role != "assistant":
            raise Malformed("unknown_key", f"{where} ({role}) has tool_calls; only assistant messages call tools")
        weight = item.get("weight")
        if weight is not None:
            if role != "assistant":
                raise Malformed("bad_weight", f"{where} ({role}) has a weight; only assistant turns are weighted")
            if weight not in (0, 1) or isinstance(weight, bool):
                raise Malformed("bad_weight", f"{where} has weight {weight!r}; use 0 (not trained) or 1")
            weight = int(weight)
        content = _text(item.get("content"), where)
        if (content is None or (not content.strip() and role != "assistant")) and not calls:
            raise Malformed("missing_content", f"{where} ({role}) has no content")
        if role == "assistant" and not calls and not content.strip():
            raise Malformed("missing_content", f"{where} (assistant) is empty")
        call_id = item.get("tool_call_id")
        messages.append(Message(role=role, content=content, tool_calls=calls,
                                tool_call_id=None if call_id is None else str(call_id), weight=weight))
    return messages


def _tool_call(call, where: str) -> ToolCall:
    if not isinstance(call, dict):
        raise Malformed("bad_tool_call", f"{where} is {_kind(call)}, expected {{id, type, function}}")
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    name, arguments = function.get("name"), function.get("arguments", "{}")
    if not isinstance(name, str) or not name:
        raise Malformed("bad_tool_call", f"{where} has no function name")
    if isinstance(arguments, (dict, list)):
        arguments = json.dumps(arguments, ensure_ascii=False)
    if not isinstance(arguments, str):
        raise Malformed("tool_arguments_not_json", f"{where} ({name}) arguments are {_kind(arguments)}, expected JSON text")
    try:
        json.loads(arguments)
    except json.JSONDecodeError as error:
        raise Malformed("tool_arguments_not_json", f"{where} ({name}) arguments are not valid JSON ({error.msg} at "
                                                   f"column {error.colno})") from None
    return ToolCall(id=str(call.get("id") or ""), name=name, arguments=arguments)


def _tools(value) -> tuple[dict, ...]:
    if not _present(value):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise Malformed("bad_tools", f"tools is text that is not JSON ({error.msg})") from None
    value = _plain(value)
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise Malformed("bad_tools", f"tools is {_kind(value)}, expected a list of function definitions")
    return tuple(value)


def check_conversation(conversation: Conversation) -> None:
    """Turn order, tool calls bound to results, and something to train; raises Malformed naming the first problem.

    A conversation may end on the assistant's tool calls (the target is the call, as in OpenAI's function-calling
    fine-tuning examples); a call followed by anything but its result is a call without a result.
    """
    messages = conversation.messages
    open_calls: dict[str, int] = {}
    previous = None
    for number, message in enumerate(messages, start=1):
        if message.role == "system" and number != 1:
            raise Malformed("turn_order", f"message {number} is a system message; the system message comes first")
        if message.role == "user" and previous == "user":
            raise Malformed("turn_order", f"messages {number - 1} and {number} are two user turns with no assistant "
                                          f"turn between; merge them or add the reply")
        if message.role == "user" and open_calls:
            break                                           # reported below as a call without a result
        if message.role == "tool":
            if message.tool_call_id is None or message.tool_call_id not in open_calls:
                raise Malformed("tool_result_unmatched", f"message {number} is a tool result for call id "
                                                         f"{message.tool_call_id!r}, which no earlier assistant call has")
            del open_calls[message.tool_call_id]
        elif message.role == "assistant" and open_calls:
            break
        for call in message.tool_calls:
            if not call.id:
                raise Malformed("bad_tool_call", f"message {number} calls {call.name} with no call id")
            open_calls[call.id] = number
        previous = message.role
    if open_calls and not all(number == len(messages) for number in open_calls.values()):
        call_id, number = next(iter(open_calls.items()))
        raise Malformed("tool_call_without_result", f"message {number} calls a tool (id {call_id!r}) whose result "
                                                    f"never follows; add the tool message")
    if messages and messages[-1].role == "user":
        raise Malformed("turn_order", f"the conversation ends on a user turn (message {len(messages)}); the last "
                                      f"assistant turn must answer it")
    if messages and messages[-1].role == "tool":
        raise Malformed("turn_order", f"the conversation ends on a tool result (message {len(messages)}); add the "
                                      f"assistant's answer")
    if not conversation.trained_turns():
        raise Malformed("no_assistant_turn", "no assistant turn to train (none, or all with weight 0)")


def _sharegpt(row: dict) -> Conversation:
    items = _json_field(row, "conversations", "a list of {from, value} turns")
    messages: list[Message] = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append(Message(role="system", content=row["system"]))
    pending: list[str] = []
    for number, item in enumerate(items, start=1):
        where = f"turn {number}"
        item = _plain(item)
        if not isinstance(item, dict):
            raise Malformed("message_not_an_object", f"{where} is {_kind(item)}, expected {{from, value}}")
        unknown = sorted(set(item) - {"from", "value", "weight"})
        if unknown:
            raise Malformed("unknown_key", f"{where} has key(s) {unknown}; a ShareGPT turn has from and value")
        speaker = item.get("from")
        if not speaker:
            raise Malformed("missing_role", f"{where} has no `from`")
        role = SHAREGPT_ROLES.get(str(speaker).lower())
        if role is None:
            raise Malformed("unknown_role", f"{where} is from {str(speaker)[:40]!r}; use human, gpt, system, "
                                            f"function_call or observation")
        value = _text(item.get("value"), where)
        if value is None or not value.strip():
            raise Malformed("missing_content", f"{where} ({speaker}) has no value")
        weight = item.get("weight")
        if weight is not None and (role != "assistant" or weight not in (0, 1)):
            raise Malformed("bad_weight", f"{where} has weight {weight!r}; only assistant turns take 0 or 1")
        if speaker == "function_call":
            try:
                call = json.loads(value)
            except json.JSONDecodeError as error:
                raise Malformed("tool_arguments_not_json", f"{where} (function_call) is not JSON ({error.msg})") from None
            call_id = f"call_{number}"
            arguments = call.get("arguments", {}) if isinstance(call, dict) else None
            tool = _tool_call({"id": call_id, "function": {"name": call.get("name") if isinstance(call, dict) else None,
                                                           "arguments": arguments}}, where)
            pending.append(call_id)
            messages.append(Message(role="assistant", content=None, tool_calls=(tool,), weight=weight))
        elif role == "tool":
            messages.append(Message(role="tool", content=value, tool_call_id=pending.pop(0) if pending else None))
        else:
            messages.append(Message(role=role, content=value, weight=weight))
    return Conversation(messages=tuple(messages), tools=_tools(row.get("tools")))


def _alpaca(row: dict) -> Conversation:
    messages: list[Message] = []
    if isinstance(row.get("system"), str) and row["system"].strip():
        messages.append(Message(role="system", content=row["system"]))
    history = row.get("history")
    if isinstance(history, str):
        try:
            history = json.loads(history) if history.strip() else None
        except json.JSONDecodeError:
            raise Malformed("messages_not_a_list", "history is text that is not JSON; it must be [[question, answer], ...]") from None
    history = _plain(history) or []
    if not isinstance(history, list):
        raise Malformed("messages_not_a_list", f"history is {_kind(history)}, expected [[question, answer], ...]")
    for number, pair in enumerate(history, start=1):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p.strip() for p in pair)):
            raise Malformed("missing_content", f"history entry {number} is not a [question, answer] pair of texts")
        messages += [Message(role="user", content=pair[0]), Message(role="assistant", content=pair[1])]
    instruction = _text(row.get("instruction"), "instruction")
    extra = _text(row.get("input"), "input")
    output = _text(row.get("output"), "output")
    if not instruction or not instruction.strip():
        raise Malformed("missing_content", "instruction is empty")
    if not output or not output.strip():
        raise Malformed("missing_content", "output is empty; there is no assistant turn to train")
    prompt = instruction + (f"\n\n{extra}" if extra and extra.strip() else "")
    messages += [Message(role="user", content=prompt), Message(role="assistant", content=output)]
    return Conversation(messages=tuple(messages))


def _prompt_completion(row: dict, prompt_column: str, completion_column: str) -> Conversation:
    """Text prompt and completion (the one-turn case), or TRL's conversational prompt/completion lists."""
    prompt, completion = row.get(prompt_column), row.get(completion_column)
    if hasattr(prompt, "tolist"):
        prompt = prompt.tolist()
    if hasattr(completion, "tolist"):
        completion = completion.tolist()
    if not isinstance(prompt, list):
        raise Malformed("wrong_type", f"{prompt_column} is {_kind(prompt)}, expected text or a list of messages")
    before = _openai_messages(prompt)
    after = _openai_messages(completion if isinstance(completion, list) else
                             [{"role": "assistant", "content": completion}])
    # The prompt's own assistant turns are context: TRL trains on the completion only.
    before = [m.model_copy(update={"weight": 0}) if m.role == "assistant" else m for m in before]
    conversation = Conversation(messages=tuple(before + after), tools=_tools(row.get("tools")))
    check_conversation(conversation)
    return conversation


def is_conversational_prompt(row: dict, prompt_column: str) -> bool:
    """TRL's conversational prompt/completion: the prompt is a list of message objects."""
    value = row.get(prompt_column)
    value = value.tolist() if hasattr(value, "tolist") else value
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) for m in value)


def content_digest(conversation: Conversation) -> str:
    """A stable id from a conversation's content (messages, weights and tools): `h` + 16 hex digits of sha256."""
    import hashlib

    payload = json.dumps({"messages": [m.openai() | ({"weight": m.weight} if m.weight is not None else {})
                                       for m in conversation.messages], "tools": list(conversation.tools)},
                         ensure_ascii=False, sort_keys=True)
    return "h" + hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def describe(fmt: str | None) -> str:
    return FORMAT_NAMES.get(fmt or "", "unrecognised")

