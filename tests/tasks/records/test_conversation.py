import json

from tasks.records.conversation import Conversation, Message, ToolCall, conversation_of, role_tagged_text, stored_columns


def test_a_prompt_completion_record_is_the_one_turn_case_and_stores_no_conversation_columns():
    record = {"prompt": "I was charged twice", "completion": "triage: billing"}
    conversation = conversation_of(record)
    assert [m.role for m in conversation.messages] == ["user", "assistant"] and conversation.is_one_turn()
    assert stored_columns(conversation) == {"prompt": "I was charged twice", "completion": "triage: billing",
                                            "messages": None, "tools": None}


def test_a_multi_turn_conversation_round_trips_through_its_stored_columns():
    call = ToolCall(id="c1", name="lookup_order", arguments='{"order_id": "A-17"}')
    conversation = Conversation(messages=(
        Message(role="system", content="Be brief."), Message(role="user", content="Where is A-17?"),
        Message(role="assistant", content=None, tool_calls=(call,)),
        Message(role="tool", content='{"status": "shipped"}', tool_call_id="c1"),
        Message(role="assistant", content="It shipped.", weight=1)),
        tools=({"type": "function", "function": {"name": "lookup_order", "parameters": {}}},))
    columns = stored_columns(conversation)
    assert columns["prompt"] == "Where is A-17?" and columns["completion"] == "It shipped."
    assert json.loads(columns["messages"])[2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert conversation_of(columns) == conversation
    assert conversation.system == "Be brief." and conversation.trained_turns() == [2, 4]
    assert role_tagged_text(conversation).splitlines()[2] == 'assistant: lookup_order({"order_id": "A-17"})'
