"""The MLflow pyfunc model takes conversations: system, history, tool results and tools, rendered with the template
stored with the adapter; tool calls come back in OpenAI's shape."""

import json
import sys

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from tests.serve.adapters import register_adapter

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
MESSAGES = [{"role": "system", "content": "House policy: refunds need a manager."},
            {"role": "user", "content": "Where is order A-1?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "lost"}'},
            {"role": "user", "content": "So what now?"}]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    from adapterops.tiny_model import CHAT_TEMPLATE

    planted = CHAT_TEMPLATE.replace("### System", "### House policy")   # the adapter's own rendering, not the base's
    version = register_adapter("svc-pyfunc-chat", 7, tiny_model_dir, chat_template=planted)
    return mlflow.pyfunc.load_model(f"models:/svc-pyfunc-chat/{version}"), planted


def test_a_conversation_is_rendered_with_the_adapters_template_and_answered_as_a_message(loaded):
    from tasks.model.prompts import conversation_token_ids

    model, planted = loaded
    inner = model.unwrap_python_model()
    assert inner.tokenizer.chat_template == planted and inner.syntax == "hermes"
    answers = model.predict(pd.DataFrame([{"messages": MESSAGES, "tools": TOOLS}]), params={"max_new_tokens": 6})
    assert answers[0]["role"] == "assistant" and isinstance(answers[0]["content"], str)
    ids = conversation_token_ids(inner.tokenizer, MESSAGES, TOOLS, inner.template)
    assert "### House policy" in inner.tokenizer.decode(ids)
    # the same conversation as records and as JSON text (a CSV cell) answers the same
    same = model.predict([{"messages": MESSAGES, "tools": TOOLS}], params={"max_new_tokens": 6})
    text = model.predict(pd.DataFrame([{"messages": json.dumps(MESSAGES), "tools": json.dumps(TOOLS)}]),
                         params={"max_new_tokens": 6})
    assert answers == same == text
    assert isinstance(model.predict(["Where is my refund?"], params={"max_new_tokens": 4})[0], str)   # prompts as before


def test_tool_calls_come_back_in_openai_shape(loaded, monkeypatch):
    from tasks.model.generate import Generated

    model, _ = loaded
    inner = model.unwrap_python_model()
    module = sys.modules[type(inner).__module__]
    said = 'Let me check.<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-1"}}</tool_call>'
    monkeypatch.setattr(module, "generate", lambda *a, **k: [Generated(said, 20)])
    (answer,) = model.predict([{"messages": MESSAGES[:2], "tools": TOOLS}])
    assert answer == {"role": "assistant", "content": "Let me check.", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1"}'}}]}


@pytest.mark.parametrize("messages,error", [
    ([], "non-empty list"), ([{"role": "robot", "content": "x"}], "role one of"),
    (MESSAGES[:3], "the last message is the assistant's"), ([{"role": "user"}], "has no content")])
def test_a_bad_conversation_is_refused(loaded, messages, error):
    model, _ = loaded
    with pytest.raises(MlflowException, match=error):
        model.predict(pd.DataFrame([{"messages": messages}]))
