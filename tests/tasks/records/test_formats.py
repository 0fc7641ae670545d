"""Each malformed-conversation kind is quarantined with its named reason, and the counts add up."""

import json

import pytest

from adapterops.config import Columns
from tasks.curate.ingest import parse_jsonl

USER = {"role": "user", "content": "Where is my order?"}
ASSISTANT = {"role": "assistant", "content": "Triage: shipping"}


def call(call_id="c1", arguments='{"order_id": "SO-1"}'):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": "lookup_order", "arguments": arguments}}]}


def result(call_id="c1"):
    return {"role": "tool", "tool_call_id": call_id, "content": '{"status": "late"}'}


GOOD = {"id": "good", "messages": [{"role": "system", "content": "House policy."}, USER, call(), result(), ASSISTANT]}

# kind -> the bad record (its messages, or the whole line when not an object)
MALFORMED = {
    "not_an_object": ["a", "list"],
    "no_messages": {"messages": []},
    "messages_not_a_list": {"messages": {"role": "user", "content": "hi"}},
    "missing_role": {"messages": [{"content": "hi"}, ASSISTANT]},
    "missing_content": {"messages": [{"role": "user"}, ASSISTANT]},
    "unknown_role": {"messages": [{"role": "customer", "content": "hi"}, ASSISTANT]},
    "unknown_key": {"messages": [{**USER, "mood": "angry"}, ASSISTANT]},
    "no_assistant_turn": {"messages": [USER, {**ASSISTANT, "weight": 0}]},
    "turn_order:system": {"messages": [USER, {"role": "system", "content": "policy"}, ASSISTANT]},
    "turn_order:two_users": {"messages": [USER, USER, ASSISTANT]},
    "turn_order:ends_on_user": {"messages": [USER, ASSISTANT, USER]},
    "tool_result_unmatched": {"messages": [USER, call("c1"), result("c9"), ASSISTANT]},
    "tool_call_without_result": {"messages": [USER, call("c1"), ASSISTANT]},
    "tool_arguments_not_json": {"messages": [USER, call(arguments="{order: SO-1"), result(), ASSISTANT]},
    "bad_weight": {"messages": [USER, {**ASSISTANT, "weight": 0.5}]},
    "mixed_format": {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_each_malformed_kind_is_quarantined_with_its_reason_and_the_counts_add_up(kind):
    bad = MALFORMED[kind]
    bad_line = json.dumps({"id": "bad", **bad} if isinstance(bad, dict) else bad)
    lines = [json.dumps(GOOD), bad_line, json.dumps({**GOOD, "id": "good2"})]
    out = parse_jsonl("\n".join(lines).encode(), "chat.jsonl", Columns())
    assert [r["id"] for r in out.records] == ["good", "good2"]
    assert len(out.quarantine) == 1
    quarantined = out.quarantine[0]
    assert quarantined["reason"].split(":")[0] == kind.split(":")[0]
    assert quarantined["input_line"] == 2 and quarantined["stage"] == "ingest"
    assert out.lines == len(out.records) + len(out.quarantine) == 3
    if kind not in ("not_an_object", "mixed_format"):
        assert quarantined["id"] == "bad"                     # the row is named by its id and line
        assert "message" in quarantined["reason"] or "assistant" in quarantined["reason"] \
            or "messages" in quarantined["reason"]


def test_a_conversation_may_end_on_the_assistant_tool_call_it_trains():
    out = parse_jsonl(json.dumps({"id": "x", "messages": [USER, call()]}).encode(), "chat.jsonl", Columns())
    assert out.quarantine == [] and len(out.records) == 1
