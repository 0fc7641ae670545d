"""Evaluation turn by turn: cases from conversations, tool-use scorers, and the one-turn case unchanged."""

import json

import numpy as np
import pandas as pd

from adapterops.config import ScorerSpec
from tasks.evaluate.run import slice_labels
from tasks.evaluate.scorers import build_scorers, calls_view, score_answers
from tasks.evaluate.turns import eval_cases, has_conversations
from tasks.records.conversation import Conversation, Message, ToolCall, stored_columns

CALL = ToolCall(id="c1", name="lookup_order", arguments=json.dumps({"order_id": "A-1", "channel": "web"}))
CONVERSATION = Conversation(messages=(
    Message(role="system", content="Policy."), Message(role="user", content="Where is A-1?"),
    Message(role="assistant", content=None, tool_calls=(CALL,)),
    Message(role="tool", tool_call_id="c1", content='{"status": "lost"}'),
    Message(role="assistant", content="Triage: shipping | priority: high"),
    Message(role="user", content="Thanks"), Message(role="assistant", content="Triage: other | priority: low")))
RECORDS = pd.DataFrame([
    {"id": "p1", "source": "web", "prompt": "My invoice is wrong", "completion": "Triage: billing | priority: normal",
     "messages": None, "tools": None},
    {"id": "c1", "source": "chat", **stored_columns(CONVERSATION)}])


def test_the_last_turn_or_every_turn_is_a_case_given_the_true_history():
    last = eval_cases(RECORDS, "last")
    assert list(last["case"]) == ["p1", "c1#6"]
    one = last.iloc[0]
    assert (one["prompt"], one["completion"]) == ("My invoice is wrong", "Triage: billing | priority: normal")
    assert json.loads(one["history"]) == [{"role": "user", "content": "My invoice is wrong"}]
    every = eval_cases(RECORDS, "all")
    assert list(every["case"]) == ["p1", "c1#2", "c1#4", "c1#6"]
    tool_turn = every.iloc[1]
    assert [m["role"] for m in json.loads(tool_turn["history"])] == ["system", "user"]
    assert json.loads(tool_turn["reference_calls"])[0]["function"]["name"] == "lookup_order"
    assert list(every["turns"]) == ["1", "1", "1", "2"]
    assert list(every["tool_use"]) == ["no tool", "calls a tool", "after a tool result", "after a tool result"]
    assert every.iloc[2]["prompt"] == "Where is A-1?" and every.iloc[3]["prompt"] == "Thanks"
    assert has_conversations(every) and not has_conversations(eval_cases(RECORDS.iloc[:1], "all"))
    # the judged turn alone carries the loss; the earlier assistant turns are context
    assert every.iloc[2]["_conversation"].trained_turns() == [4]
    labels = slice_labels(["turns", "tool_use"], every, [])
    assert labels["tool_use"][1] == "calls a tool"


def tool_scores(answer: str, reference_calls: list[dict]) -> dict:
    specs = [ScorerSpec(kind="tool_name"), ScorerSpec(kind="tool_arguments_json"), ScorerSpec(kind="tool_arguments")]
    cases = pd.DataFrame({"prompt": ["p"], "completion": [""], "reference_calls": [json.dumps(reference_calls)]})
    return {k: float(v[0]) for k, v in score_answers(build_scorers(specs), cases, [answer], "hermes").items()}


def test_tool_scorers_judge_the_name_the_json_and_each_argument():
    want = [CALL.openai()]
    right = '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-1", "channel": "web"}}</tool_call>'
    assert tool_scores(right, want) == {"tool_name": 1.0, "tool_arguments_json": 1.0, "tool_arguments": 1.0}
    half = '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "A-2", "channel": "web"}}</tool_call>'
    assert tool_scores(half, want)["tool_arguments"] == 0.5
    wrong_tool = '<tool_call>{"name": "lookup_account", "arguments": {"order_id": "A-1"}}</tool_call>'
    assert tool_scores(wrong_tool, want) == {"tool_name": 0.0, "tool_arguments_json": 1.0, "tool_arguments": 0.0}
    broken = '<tool_call>{"name": "lookup_order", "arguments": {order_id: A-1}</tool_call>'
    assert tool_scores(broken, want) == {"tool_name": 0.0, "tool_arguments_json": 0.0, "tool_arguments": 0.0}
    assert tool_scores("Triage: other", []) == {"tool_name": 1.0, "tool_arguments_json": 1.0, "tool_arguments": 1.0}
    assert tool_scores(right, [])["tool_name"] == 0.0    # a call where none was due


def test_text_scorers_read_the_answer_without_its_tool_calls_and_one_turn_scores_are_unchanged():
    spec = ScorerSpec(kind="regex_match", name="format", pattern=r"^Triage: \w+")
    cases = eval_cases(RECORDS, "last")
    answers = ["Triage: billing | priority: normal", '<tool_call>{"name": "x", "arguments": {}}</tool_call>Triage: other']
    scores = score_answers(build_scorers([spec]), cases, answers, "hermes")
    assert scores["format"].tolist() == [1.0, 1.0]
    plain = score_answers(build_scorers([spec]), RECORDS[["prompt", "completion"]], answers[:1])
    assert np.array_equal(plain["format"], scores["format"][:1])
    assert calls_view([], 0) == '{"calls": [], "attempted": 0}'
