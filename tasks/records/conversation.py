"""One conversation record: what every input format becomes and every later stage reads.

A record stores a conversation in two canonical columns beside today's five: `messages`, OpenAI chat JSON
(a list of {role, content, tool_calls, tool_call_id, weight}), and `tools`, the request's JSON-schema function
definitions. `prompt` and `completion` keep the last user message and the last assistant message (the turn a
one-turn scorer or contract expectation judges). A plain prompt/completion record is the one-turn case: it
stores neither column (both null), so its digest and everything computed from it stay what they were.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ROLES = ("system", "user", "assistant", "tool")
CONVERSATION_FIELDS = ("messages", "tools")


class ToolCall(BaseModel):
    """An assistant's call of a tool: its id (a tool result names it), the function and its JSON arguments."""
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str
    arguments: str = Field(description="The arguments as JSON text, as OpenAI sends them.")

    def openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = Field(None, description="tool messages: the call this is the result of.")
    weight: Literal[0, 1] | None = Field(None, description="assistant messages: 0 leaves the turn untrained.")

    def openai(self) -> dict:
        """The message as OpenAI's chat API and chat templates take it (no empty optional keys)."""
        out: dict = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class Conversation(BaseModel):
    """A system message (optional, first), then user / assistant / tool turns, and the tools the request offered."""
    model_config = ConfigDict(frozen=True, extra="forbid")
    messages: tuple[Message, ...]
    tools: tuple[dict, ...] = ()

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None

    def trained_turns(self) -> list[int]:
        """Indices of the assistant messages whose tokens carry the loss (weight 1 or unset)."""
        return [i for i, m in enumerate(self.messages) if m.role == "assistant" and m.weight != 0]

    def openai(self, upto: int | None = None) -> list[dict]:
        """messages[:upto] as OpenAI chat dicts (the history before turn `upto`)."""
        return [m.openai() for m in self.messages[:upto]]

    def last(self, role: str) -> Message | None:
        return next((m for m in reversed(self.messages) if m.role == role), None)

    def is_one_turn(self) -> bool:
        """A user message and an assistant reply with no system, tools or weights: a plain prompt/completion record."""
        return (len(self.messages) == 2 and [m.role for m in self.messages] == ["user", "assistant"]
                and not self.tools and not self.messages[1].tool_calls and self.messages[1].weight is None)


def one_turn(prompt: str, completion: str | None) -> Conversation:
    """A prompt/completion record as a conversation: the user's prompt and, if any, the assistant's completion."""
    messages = [Message(role="user", content=prompt)]
    if completion is not None:
        messages.append(Message(role="assistant", content=completion))
    return Conversation(messages=tuple(messages))


def conversation_of(record: dict) -> Conversation:
    """The conversation a stored record holds: its `messages` and `tools` columns, else prompt → completion."""
    stored = record.get("messages")
    if stored is None or (isinstance(stored, float) and stored != stored):      # null, or NaN from pandas
        return one_turn(record["prompt"], record.get("completion"))
    tools = record.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else []
    return Conversation(messages=tuple(_message(m) for m in json.loads(stored)), tools=tuple(tools))


def _message(data: dict) -> Message:
    calls = tuple(ToolCall(id=c["id"], name=c["function"]["name"], arguments=c["function"]["arguments"])
                  for c in data.get("tool_calls") or ())
    return Message(role=data["role"], content=data.get("content"), tool_calls=calls,
                   tool_call_id=data.get("tool_call_id"), weight=data.get("weight"))


def stored_columns(conversation: Conversation) -> dict:
    """The record columns of a conversation: messages/tools JSON (null for the one-turn case), prompt, completion."""
    user, assistant = conversation.last("user"), conversation.last("assistant")
    columns = {"prompt": user.content if user else None, "completion": assistant.content if assistant else None,
               "messages": None, "tools": None}
    if not conversation.is_one_turn():
        columns["messages"] = json.dumps([m.openai() | ({"weight": m.weight} if m.weight is not None else {})
                                          for m in conversation.messages], ensure_ascii=False, sort_keys=True)
        columns["tools"] = json.dumps(list(conversation.tools), ensure_ascii=False, sort_keys=True) \
            if conversation.tools else None
    return columns


def role_tagged_text(conversation: Conversation) -> str:
    """The whole conversation as text, each message tagged with its role (tool calls as name + arguments):
    what dedup, the leakage check and PII scan compare for a multi-turn record."""
    lines = []
    for message in conversation.messages:
        parts = [message.content or ""] + [f"{call.name}({call.arguments})" for call in message.tool_calls]
        lines.append(f"{message.role}: " + " ".join(p for p in parts if p))
    return "\n".join(lines)


CUSTOMER_ROLES = ("user", "tool")


def customer_side_text(record: dict) -> str:
    """A stored record's user and tool turns, role-tagged as role_tagged_text tags them: what the customer (and the
    tools) said, without the system prompt and the answers every record of a corpus shares in kind."""
    stored = record.get("messages")
    if stored is None or (isinstance(stored, float) and stored != stored):      # one-turn: the prompt
        return f"user: {record['prompt']}" if record.get("prompt") is not None else ""
    # read straight from the stored JSON (no model per message: the watch reads 100k of these); the same text
    # role_tagged_text writes for these turns, which carry no tool calls
    lines = [f"{m['role']}: {m.get('content') or ''}" for m in json.loads(stored) if m.get("role") in CUSTOMER_ROLES]
    return "\n".join(lines)
