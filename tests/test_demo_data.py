import json

from adapterops.config import Columns
from adapterops.demo_data import demo_lines, generate_conversations, generate_records, write_demo_data
from tasks.curate.ingest import parse_jsonl
from tasks.records.conversation import conversation_of


def test_generator_is_deterministic_for_a_seed():
    assert demo_lines(200, 5) == demo_lines(200, 5)
    assert demo_lines(200, 5) != demo_lines(200, 6)


def test_demo_export_plants_the_problems_curation_must_handle():
    lines = demo_lines(200, 5)
    parsed = []
    malformed = 0
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            malformed += 1
    assert malformed == 1
    texts = [json.dumps(r["messages"]) for r in parsed]
    assert len(set(texts)) < len(texts)                           # exact copies
    assert any("@example.com" in t for t in texts)                # PII
    assert any(r["messages"][-1]["content"] == "" for r in parsed)   # invalid rows
    assert len({r["id"] for r in parsed}) == len(parsed)
    ingested = parse_jsonl("\n".join(lines).encode(), "demo.jsonl", Columns())
    reasons = {q["reason"].split(":")[0] for q in ingested.quarantine}
    assert {"malformed_json", "turn_order", "unknown_role", "tool_result_unmatched", "tool_arguments_not_json",
            "missing_content"} <= reasons                          # malformed conversations, each quarantined


def test_demo_conversations_have_a_system_prompt_several_turns_and_tool_calls_that_decide():
    conversations = [conversation_of({"messages": json.dumps(r["messages"]), "tools": json.dumps(r.get("tools", []))})
                     for r in generate_conversations(400, 7)]
    assert all(c.system and "Triage" in c.system for c in conversations)
    turns = {sum(m.role == "user" for m in c.messages) for c in conversations}
    assert turns == {1, 2, 3, 4}
    called = [c for c in conversations if any(m.tool_calls for m in c.messages)]
    assert 0.15 < len(called) / len(conversations) < 0.35
    assert {call.name for c in called for m in c.messages for call in m.tool_calls} == {"lookup_order", "lookup_account"}
    # the decision follows the tool's result: the same lookup leads to different queues
    decided = {(c.messages[-2].content.split('"status": "')[1].split('"')[0], c.messages[-1].content.split(" |")[0])
               for c in called}
    assert {("payment_failed", "Triage: billing"), ("lost_by_carrier", "Triage: shipping"),
            ("locked_after_failed_logins", "Triage: access")} <= decided
    assert all(c.messages[-1].role == "assistant" and c.messages[-1].content.startswith("Triage: ") for c in conversations)


def test_eval_file_is_separate_from_training_ids(tmp_path):
    train, evaluation = write_demo_data(tmp_path, 100, 3)
    lines = evaluation.read_text().splitlines()
    eval_ids = {json.loads(line)["id"] for line in lines if line.endswith("}")}
    assert len(eval_ids) == len(lines) - 1          # one planted malformed line
    assert all(i.startswith("E") for i in eval_ids)
    assert not eval_ids & {r["id"] for r in generate_conversations(100, 3)}
    assert generate_records(5, 0)[0]["prompt"]      # the one-turn tickets the tiny tokenizer is trained on stay
