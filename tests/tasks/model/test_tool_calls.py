import json

import pytest

from tasks.model.tool_calls import parse_tool_calls


def test_hermes_calls_are_read_into_openai_shape_and_removed_from_the_text():
    text = 'Let me check.<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-17"}}</tool_call>'
    content, calls = parse_tool_calls(text)
    assert content == "Let me check."
    assert calls == [{"id": "call_0", "type": "function",
                      "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "A-17"})}}]


def test_a_malformed_call_stays_text_and_no_syntax_reads_none():
    text = '<tool_call>{"name": "lookup_order", "arguments": {</tool_call>'
    assert parse_tool_calls(text) == (text, [])
    assert parse_tool_calls('<tool_call>{"name": "x"}</tool_call>', "none")[1] == []
    with pytest.raises(ValueError, match="unknown tool-call syntax"):
        parse_tool_calls("x", "llama9")
