"""Formats at ingest, on files shaped as other tools write them: each becomes conversations with no mapping."""

import json

import pandas as pd
import pytest

from adapterops.config import Columns, InputsConfig
from adapterops.errors import AdapterOpsError
from tasks.curate.ingest import parse_csv, parse_jsonl
from tasks.curate.inputs import ingest_files, route_splits
from tasks.records.conversation import conversation_of


def jsonl(*rows) -> bytes:
    return "\n".join(json.dumps(row) for row in rows).encode()


def conversations(result) -> list:
    return [conversation_of(record) for record in result.records]


# OpenAI's fine-tuning guide, as published: function calling (the target is the call), and weights per turn.
OPENAI_TOOLS = {
    "messages": [
        {"role": "user", "content": "What is the weather in San Francisco?"},
        {"role": "assistant", "tool_calls": [{"id": "call_id", "type": "function", "function": {
            "name": "get_current_weather", "arguments": "{\"location\": \"San Francisco, USA\", \"format\": \"celsius\"}"}}]},
    ],
    "parallel_tool_calls": False,
    "tools": [{"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and country, eg. San Francisco, USA"},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location", "format"]}}}],
}
OPENAI_WEIGHTS = {"messages": [
    {"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."},
    {"role": "user", "content": "What's the capital of France?"},
    {"role": "assistant", "content": "Paris", "weight": 0},
    {"role": "user", "content": "Can you be more sarcastic?"},
    {"role": "assistant", "content": "Paris, as if everyone doesn't know that already.", "weight": 1}]}
OPENAI_TOOL_RESULT = {"messages": [
    {"role": "system", "content": "You are a support agent."},
    {"role": "user", "content": "Where is order SO-1?"},
    {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "lookup_order", "arguments": "{\"order_id\": \"SO-1\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\": \"delayed\"}"},
    {"role": "assistant", "content": "Your order is delayed."}]}


def test_an_openai_fine_tuning_chat_file_becomes_conversations_with_hashed_ids():
    result = parse_jsonl(jsonl(OPENAI_TOOLS, OPENAI_WEIGHTS, OPENAI_TOOL_RESULT), "chat.jsonl", Columns())
    assert result.quarantine == [] and result.record_format == "OpenAI chat (messages)"
    tools, weights, lookup = conversations(result)
    assert tools.messages[1].tool_calls[0].name == "get_current_weather"
    assert tools.tools[0]["function"]["parameters"]["required"] == ["location", "format"]
    assert weights.system.startswith("Marv") and weights.trained_turns() == [4]
    assert [m.role for m in lookup.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert lookup.messages[3].tool_call_id == "call_1"
    assert all(r["id"].startswith("h") for r in result.records)
    assert any("content hashes" in note for note in result.notes)
    assert result.records[2]["prompt"] == "Where is order SO-1?"            # the last user turn
    assert result.records[2]["completion"] == "Your order is delayed."      # the last assistant turn


def test_hashed_ids_are_stable_and_an_exact_copy_gets_a_suffix_for_dedup_to_remove():
    first = parse_jsonl(jsonl(OPENAI_WEIGHTS, OPENAI_WEIGHTS), "a.jsonl", Columns())
    again = parse_jsonl(jsonl(OPENAI_WEIGHTS), "b.jsonl", Columns(id="hash"))
    ids = [r["id"] for r in first.records]
    assert ids[1] == ids[0] + "-2" and again.records[0]["id"] == ids[0]


def test_a_sharegpt_file_with_system_and_tool_turns():
    row = {"conversations": [
        {"from": "system", "value": "You triage support tickets."},
        {"from": "human", "value": "My invoice is wrong."},
        {"from": "function_call", "value": "{\"name\": \"lookup_account\", \"arguments\": {\"account\": \"A1\"}}"},
        {"from": "observation", "value": "{\"plan\": \"basic\"}"},
        {"from": "gpt", "value": "Triage: billing"}],
        "tools": "[{\"name\": \"lookup_account\", \"parameters\": {}}]"}
    plain = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    result = parse_jsonl(jsonl(row, plain), "sharegpt.jsonl", Columns())
    assert result.quarantine == []
    conversation = conversations(result)[0]
    assert [m.role for m in conversation.messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = conversation.messages[2].tool_calls[0]
    assert call.name == "lookup_account" and json.loads(call.arguments) == {"account": "A1"}
    assert conversation.messages[3].tool_call_id == call.id
    assert result.records[1]["messages"] is None         # a plain exchange is the one-turn case


def test_an_alpaca_file_with_system_and_history():
    row = {"instruction": "And the second invoice?", "input": "Invoice 2", "output": "Also refunded.",
           "system": "You are a billing agent.", "history": [["Was invoice 1 refunded?", "Yes, on Monday."]]}
    result = parse_jsonl(jsonl(row), "alpaca.jsonl", Columns())
    conversation = conversations(result)[0]
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("system", "You are a billing agent."), ("user", "Was invoice 1 refunded?"), ("assistant", "Yes, on Monday."),
        ("user", "And the second invoice?\n\nInvoice 2"), ("assistant", "Also refunded.")]


def test_trl_conversational_and_conversational_prompt_completion():
    # TRL's documented examples: conversational language modeling and conversational prompt-completion.
    lm = {"messages": [{"role": "user", "content": "What color is the sky?"},
                       {"role": "assistant", "content": "It is blue."}]}
    pc = {"prompt": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "Blue?"},
                     {"role": "user", "content": "Sure?"}],
          "completion": [{"role": "assistant", "content": "It is blue."}]}
    messages = parse_jsonl(jsonl(lm), "trl.jsonl", Columns())
    assert messages.records[0]["messages"] is None      # one user + one assistant turn: the one-turn case
    assert (messages.records[0]["prompt"], messages.records[0]["completion"]) == ("What color is the sky?", "It is blue.")
    result = parse_jsonl(jsonl(pc), "trl_pc.jsonl", Columns())
    conversation = conversations(result)[0]
    assert conversation.trained_turns() == [3]            # the prompt's assistant turn is context, not trained


def test_a_csv_with_a_json_messages_column():
    messages = json.dumps(OPENAI_TOOL_RESULT["messages"]).replace('"', '""')
    data = f'id,source,messages\nc1,chat,"{messages}"\nc2,chat,"[not json"\n'.encode()
    result = parse_csv(data, "export.csv", Columns())
    assert [r["id"] for r in result.records] == ["c1"]
    assert conversations(result)[0].messages[2].tool_calls[0].name == "lookup_order"
    assert result.quarantine[0]["reason"].startswith("messages_not_a_list")
    assert result.lines == 2


def test_a_parquet_file_of_typed_messages(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": "p1", **OPENAI_TOOL_RESULT}, {"id": "p2", **OPENAI_WEIGHTS}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "chat.parquet")      # every struct gets every key
    result = ingest_files([tmp_path / "chat.parquet"], Columns(), tmp_path / "stage")
    assert (result.kept, result.quarantined) == (2, 0)
    records = pd.read_parquet(result.records).to_dict("records")
    assert [conversation_of(r) for r in records][1].trained_turns() == [4]
    assert result.files[0]["records_format"] == "OpenAI chat (messages)"


def test_the_ingest_table_counts_quarantined_rows_by_reason(tmp_path):
    bad = [{"id": "b1", "messages": [{"role": "user", "content": "hi"}]},
           {"id": "b2", "messages": [{"role": "user", "content": "hi"}]}, {"id": "b3", "messages": []}]
    (tmp_path / "chat.jsonl").write_bytes(jsonl({"id": "g", **OPENAI_WEIGHTS}, *bad))
    result = ingest_files([tmp_path / "chat.jsonl"], Columns(), tmp_path / "stage")
    assert result.files[0]["reasons"] == "turn_order 2, no_messages 1"
    assert result.input == result.kept + result.quarantined == 4


def test_a_dataset_dict_with_no_split_mapped_to_train_is_one_line_naming_inputs_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train_sft": Dataset.from_list([OPENAI_WEIGHTS])}).save_to_disk(str(tmp_path / "d"))
    with pytest.raises(AdapterOpsError, match=r"no split .* mapped to train.*inputs.splits.*train_sft: train"):
        route_splits([str(tmp_path / "d")], InputsConfig())
    train, _, notes = route_splits([str(tmp_path / "d")], InputsConfig(splits={"train_sft": "train"}))
    assert train == [f"{tmp_path / 'd'}#train_sft"] and "(inputs.splits)" in notes[0]


def test_a_dataset_dict_without_ids_curates_its_train_split_and_offers_test_as_the_evaluation_set(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "helpdesk"
    DatasetDict({"train": Dataset.from_list([OPENAI_TOOL_RESULT, OPENAI_WEIGHTS]),
                 "test": Dataset.from_list([{"messages": OPENAI_WEIGHTS["messages"][:2] + [
                     {"role": "assistant", "content": "Paris."}]}])}
                ).save_to_disk(str(folder))
    train, evaluation, notes = route_splits([str(folder)], InputsConfig())
    assert train == [f"{folder}#train"] and evaluation == [f"{folder}#test"]
    assert "test → eval" in notes[0] and "default" in notes[0]
    ingested = ingest_files(train, Columns(), tmp_path / "stage")
    assert ingested.kept == 2 and any("content hashes" in n for n in ingested.notes)
    held = ingest_files(evaluation, Columns(), tmp_path / "eval")
    assert held.kept == 1 and pd.read_parquet(held.records)["id"].str.startswith("h").all()
    only_train, none, _ = route_splits([str(folder)], InputsConfig(splits={"train": "train"}))
    assert only_train == [f"{folder}#train"] and none == []


# --- whole-file problems: one line naming the fix, before any row -------------------------------------------

def test_an_unrecognised_format_is_one_line_naming_the_fix():
    with pytest.raises(AdapterOpsError, match=r"unrecognised record format.*\['body', 'ticket'\].*columns.prompt"):
        parse_jsonl(jsonl({"ticket": "1", "body": "hi"}), "odd.jsonl", Columns())


def test_a_chat_file_read_as_prompt_completion_is_one_line_naming_the_fix():
    with pytest.raises(AdapterOpsError, match="read as prompt/completion.*OpenAI chat.*inputs.format: auto"):
        parse_jsonl(jsonl(OPENAI_WEIGHTS), "chat.jsonl", Columns(), inputs=InputsConfig(format="prompt_completion"))


def test_an_id_column_no_row_has_is_one_line_naming_the_fix():
    with pytest.raises(AdapterOpsError, match="no row has the id column 'ticket_id'.*columns.id: hash"):
        parse_jsonl(jsonl(OPENAI_WEIGHTS), "chat.jsonl", Columns(id="ticket_id"))


def test_a_file_mixing_formats_says_so_once_and_quarantines_the_minority_rows():
    sharegpt = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
    result = parse_jsonl(jsonl(OPENAI_WEIGHTS, OPENAI_TOOL_RESULT, sharegpt), "mixed.jsonl", Columns())
    assert len(result.records) == 2 and [q["reason"].split(":")[0] for q in result.quarantine] == ["mixed_format"]
    assert [n for n in result.notes if "mixes formats" in n] and len(result.notes) == 2   # + hashed ids
