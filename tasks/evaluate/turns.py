"""Evaluation cases from conversations: each judged assistant turn, generated from the true history before it.

A held-out record is one case per judged assistant turn (all of them, or the last, as the contract's
evaluation section says). A case carries its history (the messages before the turn), its reference (the
turn's text and tool calls), and the conversation slices: the number of user turns so far and the tool use.
A prompt/completion record is one case with the columns it always had, so one-turn results stay as they were.
"""

from __future__ import annotations

import json

import pandas as pd

from tasks.records.conversation import Conversation, Message, conversation_of

TURNS_SLICE, TOOLS_SLICE = "turns", "tool_use"
CASE_COLUMNS = ("case", "turn", "history", "tools", "reference_calls", TURNS_SLICE, TOOLS_SLICE)


def judged_turns(conversation: Conversation, which: str) -> list[int]:
    """Indices of the assistant messages judged: every one (`all`) or the last (`last`)."""
    turns = [i for i, m in enumerate(conversation.messages) if m.role == "assistant"]
    return turns if which == "all" else turns[-1:]


def tool_use(history: list[Message], reference: Message) -> str:
    if reference.tool_calls:
        return "calls a tool"
    if any(m.role == "tool" for m in history):
        return "after a tool result"
    return "no tool"


def turn_conversation(conversation: Conversation, turn: int) -> Conversation:
    """The conversation up to `turn` with only that turn trained: its loss is the turn's loss given the history."""
    messages = [m.model_copy(update={"weight": 0}) if m.role == "assistant" else m for m in conversation.messages[:turn]]
    messages.append(conversation.messages[turn].model_copy(update={"weight": None}))
    return Conversation(messages=tuple(messages), tools=conversation.tools)


def eval_cases(records: pd.DataFrame, which: str = "last") -> pd.DataFrame:
    """One row per judged turn: the record's columns, `prompt` (the last user message before the turn),
    `completion` (the turn's text), and CASE_COLUMNS. Records without an assistant turn give no case."""
    rows = []
    for record in records.to_dict("records"):
        conversation = conversation_of(record)
        for turn in judged_turns(conversation, which):
            history, reference = list(conversation.messages[:turn]), conversation.messages[turn]
            user = next((m for m in reversed(history) if m.role == "user"), None)
            one = conversation.is_one_turn()
            rows.append(record | {
                "prompt": user.content if user else "", "completion": reference.content or "",
                "case": str(record.get("id")) if one else f"{record.get('id')}#{turn}", "turn": turn,
                "history": json.dumps([m.openai() for m in history], ensure_ascii=False),
                "tools": json.dumps(list(conversation.tools), ensure_ascii=False) if conversation.tools else None,
                "reference_calls": json.dumps([c.openai() for c in reference.tool_calls], ensure_ascii=False),
                TURNS_SLICE: str(sum(m.role == "user" for m in history)),
                TOOLS_SLICE: tool_use(history, reference), "_conversation": turn_conversation(conversation, turn)})
    return pd.DataFrame(rows).reset_index(drop=True) if rows else records.iloc[0:0]


def has_conversations(cases: pd.DataFrame) -> bool:
    """Whether any case comes from more than a plain prompt/completion record (then the conversation slices apply)."""
    return any(not c.is_one_turn() for c in cases["_conversation"])
