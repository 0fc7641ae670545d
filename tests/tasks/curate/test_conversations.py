"""Curation over whole conversations: PII in every message and tool argument, dedup and leakage over the
role-tagged text, and contract expectations on the derived columns."""

import json

import pandas as pd

from adapterops.config import DedupConfig
from tasks.curate.pii import apply_policy
from tasks.curate.split import leaking_train_ids
from tasks.curate.validate import run_contract, with_derived_columns
from tasks.dedup.clusters import dedup_records
from tasks.records.contract import Contract, contract_problems
from tasks.records.conversation import Conversation, Message, ToolCall, conversation_of, stored_columns
from tasks.records.pii_detect import PiiPolicy

SYSTEM = "House policy: triage every ticket as billing, shipping or access; never promise refunds over 100 EUR."


def conversation(first: str, later: str, order: str = "SO-12345", answer: str = "Triage: shipping | priority: normal",
                 arguments: dict | None = None) -> Conversation:
    return Conversation(messages=(
        Message(role="system", content=SYSTEM),
        Message(role="user", content=first),
        Message(role="assistant", content="Could you give me the order number, please?"),
        Message(role="user", content=later),
        Message(role="assistant", tool_calls=(ToolCall(id="c1", name="lookup_order",
                                                       arguments=json.dumps(arguments or {"order_id": order})),)),
        Message(role="tool", tool_call_id="c1", content='{"status": "lost in transit"}'),
        Message(role="assistant", content=answer)), tools=({"type": "function", "function": {"name": "lookup_order"}},))


def record(record_id: str, conv: Conversation, **extra) -> dict:
    return {"id": record_id, "source": "chat", "timestamp": "2026-01-01T00:00:00", **stored_columns(conv), **extra}


def test_pii_is_found_and_redacted_in_every_message_and_in_tool_call_arguments():
    conv = conversation("My parcel never came.", "It is order SO-1, mail me at dana.k@example.com",
                        arguments={"order_id": "SO-1", "contact": {"email": "dana.k@example.com"}})
    scan = apply_policy([record("r1", conv)], PiiPolicy(email="redact"))
    assert scan.counts["email"] == {"found": 2, "records": 1}
    clean = conversation_of(scan.records[0])
    assert "dana.k@example.com" not in scan.records[0]["messages"]
    assert clean.messages[3].content.endswith("[EMAIL]")
    assert json.loads(clean.messages[4].tool_calls[0].arguments) == {"order_id": "SO-1", "contact": {"email": "[EMAIL]"}}
    assert scan.records[0]["prompt"] == clean.messages[3].content          # the copy follows the message


def test_pii_in_an_earlier_turn_quarantines_the_conversation_under_a_quarantine_policy():
    conv = conversation("My card 4111 1111 1111 1111 was charged", "Order SO-1")
    scan = apply_policy([record("r1", conv)], PiiPolicy())
    assert scan.records == [] and scan.quarantine[0]["reason"] == "pii: card"
    assert "4111" not in scan.quarantine[0]["raw"] and "message 2 (user)" in scan.quarantine[0]["raw"]


def test_dedup_compares_the_whole_conversation_not_only_its_last_turns():
    a = conversation("My parcel never came and I need it for a wedding next Saturday, it had the rings.",
                     "The order is SO-12345.")
    b = conversation("I was charged twice for my subscription this month and the invoice shows a plan we never had.",
                     "The order is SO-12345.")
    assert (a.messages[-1], a.last("user")) == (b.messages[-1], b.last("user"))   # same prompt and completion
    records = pd.DataFrame([record("a", a), record("b", b), record("a-copy", a)])
    result = dedup_records(records, DedupConfig())
    assert set(result.loc[result["kept"], "id"]) == {"a", "b"}
    assert result.set_index("id").loc["a-copy", "kind"] == "exact"


def test_the_leakage_check_compares_whole_conversations():
    held = conversation("My parcel never came and I need it for a wedding next Saturday.", "The order is SO-12345.")
    train = pd.DataFrame([record("t1", held), record("t2", conversation(
        "My parcel never came and I need it for a wedding next Saturday.",
        "Actually I want to cancel my whole account and get every invoice refunded now.",
        answer="Triage: billing | priority: high"))])
    leaks = leaking_train_ids(train, pd.DataFrame([record("h1", held)]), DedupConfig())
    assert leaks == {"t1": "h1"}


def test_derived_columns_for_conversations_and_the_one_turn_case():
    frame = pd.DataFrame([record("c", conversation("Lost parcel", "SO-1")),
                          {"id": "p", "source": "email", "timestamp": "t", "prompt": "Hi", "completion": "Triage: x",
                           "messages": None, "tools": None}])
    derived = with_derived_columns(frame).set_index("id")
    assert derived.loc["c", "system_prompt"] == SYSTEM and pd.isna(derived.loc["p", "system_prompt"])
    assert derived.loc["c", "first_user_message"] == "Lost parcel" and derived.loc["p", "first_user_message"] == "Hi"
    assert derived.loc["c", "last_assistant_message"].startswith("Triage: shipping")
    assert (derived.loc["c", "turns"], derived.loc["p", "turns"]) == (2, 1)
    assert (derived.loc["c", "tools_used"], derived.loc["p", "tools_used"]) == ("lookup_order", "")


def test_a_contract_can_require_the_final_turn_format_and_a_turn_limit_on_conversations():
    data = {"name": "conv", "version": 1, "description": "d", "scope": "s", "owners": ["dana.k"],
            "schema": {"id": {}, "prompt": {}},
            "expectations": [
                {"type": "expect_column_values_to_match_regex",
                 "kwargs": {"column": "last_assistant_message", "regex": "^Triage: "}},
                {"type": "expect_column_values_to_be_between", "kwargs": {"column": "turns", "max_value": 2}}]}
    assert contract_problems(data, "conv.yaml") == []
    long = Conversation(messages=tuple(m for _ in range(3) for m in (Message(role="user", content="again?"),
                                                                       Message(role="assistant", content="Triage: x"))))
    frame = pd.DataFrame([record("ok", conversation("Lost parcel", "SO-1")),
                          record("bad_final", conversation("Lost parcel", "SO-1", answer="Sure, done.")),
                          record("too_long", long)])
    run = run_contract(frame, Contract.model_validate(data))
    assert set(run.failing) == {"bad_final", "too_long"}
    assert run.failing["bad_final"] == ["expect_column_values_to_match_regex(last_assistant_message)"]


def test_the_demo_export_passes_the_conversation_contract_and_every_row_is_accounted_for(tmp_path):
    from pathlib import Path

    from adapterops.config import Columns
    from adapterops.demo_data import write_demo_data
    from tasks.curate import ingest_files, pii_file, validate_file
    from tasks.records import load_contract

    train, _ = write_demo_data(tmp_path / "demo", 200, 2026)
    contract = load_contract(str(Path(__file__).resolve().parents[3] / "data_contracts" / "support_conversations.yaml"))
    ingested = ingest_files([train], Columns(), tmp_path / "stage")
    pii = pii_file(ingested.records, contract, tmp_path / "stage")
    validated = validate_file(pii.records, contract, tmp_path / "stage")
    contract_rows = pd.read_parquet(tmp_path / "stage" / "contract_quarantine.parquet")
    assert contract_rows["reason"].str.contains("last_assistant_message").any()   # the short final "Triage: billing"
    assert ingested.input == validated.kept + ingested.quarantined + pii.quarantined + validated.quarantined
    assert ingested.files[0]["records_format"] == "OpenAI chat (messages)"
