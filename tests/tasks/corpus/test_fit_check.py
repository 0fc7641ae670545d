"""The fit check: a corpus whose replies quote prices, dates and URLs of their own (or answer one prompt two ways)
is flagged with examples; the demo's stable corpus passes (order numbers it repeats come from the conversation)."""

from __future__ import annotations

import json

import pandas as pd

from adapterops.config import FitCheckConfig
from adapterops.demo_data import generate_conversations
from tasks.corpus.fit_check import check_fit, fit_lines, volatile_facts
from tasks.records.conversation import conversation_of, stored_columns

PLANTED = " The Pro plan now costs $49.99 per month until 2027-01-31, see https://acme.example/pricing."


def demo(count: int = 300, seed: int = 11) -> pd.DataFrame:
    rows = []
    for r in generate_conversations(count, seed):
        conversation = conversation_of({"messages": json.dumps(r["messages"]), "prompt": None,
                                        "tools": json.dumps(r["tools"]) if r.get("tools") else None})
        rows.append({"id": r["id"], **stored_columns(conversation)})
    return pd.DataFrame(rows)


def planted(frame: pd.DataFrame, every: int) -> pd.DataFrame:
    frame = frame.copy()
    for i in range(0, len(frame), every):
        messages = json.loads(frame.at[i, "messages"])
        messages[-1]["content"] += PLANTED
        frame.at[i, "messages"] = json.dumps(messages)
        frame.at[i, "completion"] = messages[-1]["content"]
    return frame


def test_the_demo_corpus_is_stable_behaviour_and_fits():
    result = check_fit(demo(), FitCheckConfig())
    assert result["fits"] and result["verdict"].startswith("A fine-tune fits: 0% of replies")
    assert result["volatile"]["turns"] > 300 and result["volatile"]["carrying"] == 0


def test_planted_prices_dates_and_urls_are_flagged_with_examples():
    result = check_fit(planted(demo(), 2), FitCheckConfig())      # every second conversation
    assert not result["fits"]
    volatile = result["volatile"]
    assert 0.2 < volatile["share"] < 0.45 and set(volatile["kinds"]) == {"price", "date", "url"}
    assert "serve those from retrieval" in result["verdict"] and "price" in result["verdict"]
    assert "$49.99" in volatile["examples"][0]["facts"]["price"]
    text = "\n".join(fit_lines(result))
    assert "Does not fit" in text and "acme\\.example" in text      # record text escaped for markdown


def test_facts_the_conversation_gave_are_not_volatile_and_disagreeing_answers_are_found():
    assert volatile_facts("Order SO-12345 ships today", "user: where is order SO-12345?") == {}
    assert volatile_facts("Order SO-99999 ships today", "user: where is my order?") == {
        "order_or_account": ["Order SO-99999"]}
    frame = demo(120, 12)
    twins = frame.iloc[:10].copy()
    twins["id"] = twins["id"] + "-again"
    for i in twins.index:
        messages = json.loads(twins.at[i, "messages"])
        messages[-1]["content"] = "Triage: spam | priority: low | team: Nobody\nReply: We cannot help you."
        twins.at[i, "messages"] = json.dumps(messages)
    result = check_fit(pd.concat([frame, twins], ignore_index=True), FitCheckConfig())
    assert result["conflicts"]["disagreeing"] >= 20 and not result["fits"]
    assert "settle them" in result["verdict"]
