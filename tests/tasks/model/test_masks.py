"""Assistant-only labels from the chat template rendered prefix by prefix, on two real template styles
(ChatML with tools, as Qwen2.5 writes it, and Llama-3), the tiny model's own template, and a template that fails."""

import json
from pathlib import Path

import pytest

from adapterops.config import TrainConfig
from adapterops.errors import AdapterOpsError
from tasks.records.conversation import Conversation, Message, ToolCall, stored_columns
from tasks.model.masks import IGNORE, conversation_ids
from tasks.model.prompts import canonical_messages, canonical_tools
from tasks.train.sft_data import collate_packed, prepare_examples

TEMPLATES = Path(__file__).parent / "templates"
TOOLS = ({"type": "function", "function": {"name": "lookup_order", "description": "Find an order",
                                           "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}},)
ARGS = json.dumps({"order_id": "A-1042"})
SUPPORT = Conversation(messages=(
    Message(role="system", content="You are the support desk. Refunds need a manager."),
    Message(role="user", content="Where is my order A-1042?"),
    Message(role="assistant", content=None, tool_calls=(ToolCall(id="c1", name="lookup_order", arguments=ARGS),)),
    Message(role="tool", tool_call_id="c1", content='{"status": "shipped"}'),
    Message(role="assistant", content="It shipped yesterday.", weight=0),
    Message(role="user", content="It arrived broken, I want a refund."),
    Message(role="assistant", content="Triage: refund | priority: high"),
), tools=TOOLS)


def tokenizer_with(tiny_model_dir, template: str, specials: list[str], **tokens):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": specials} | tokens)
    tokenizer.chat_template = template
    return tokenizer


def trained_runs(tokenizer, ids, labels) -> list[str]:
    """The labelled tokens as text, one string per contiguous run."""
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_chatml_with_tools_trains_exactly_the_assistant_turns_and_skips_weight_zero(tiny_model_dir):
    tokenizer = tokenizer_with(tiny_model_dir, (TEMPLATES / "qwen2_5.jinja").read_text(), ["<|im_start|>", "<|im_end|>"])
    ids, labels = conversation_ids(tokenizer, SUPPORT, "{prompt}", "r1")
    assert trained_runs(tokenizer, ids, labels) == [
        # the tool call, its arguments an object (the JSON text parsed, as Qwen2.5's system prompt asks for
        # <args-json-object>; not the text quoted again by tojson), and its end-of-turn token ...
        '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-1042"}}\n</tool_call><|im_end|>',
        # ... "It shipped yesterday." has weight 0: untrained; the final decision is trained
        "Triage: refund | priority: high<|im_end|>"]
    assert ids[0] == tokenizer.bos_token_id     # the template renders none: BOS comes first, as in training before
    text = tokenizer.decode(ids[1:])
    canonical = canonical_messages(SUPPORT.openai()), canonical_tools(list(TOOLS))   # what serving renders too
    assert text == tokenizer.apply_chat_template(canonical[0], tools=canonical[1], tokenize=False).rstrip("\n")
    for context in ("Refunds need a manager", "Where is my order", "shipped\"}", "It shipped yesterday", "broken"):
        assert context in text and all(context not in run for run in trained_runs(tokenizer, ids, labels))


def test_llama3_trains_content_and_eot_and_keeps_one_bos(tiny_model_dir):
    tokenizer = tokenizer_with(tiny_model_dir, (TEMPLATES / "llama3.jinja").read_text(),
                               ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], bos_token="<|begin_of_text|>")
    conversation = Conversation(messages=(
        Message(role="system", content="Policy: be brief."), Message(role="user", content="Hi"),
        Message(role="assistant", content="Hello! "), Message(role="user", content="Bye"),
        Message(role="assistant", content="Goodbye.")))
    ids, labels = conversation_ids(tokenizer, conversation, "{prompt}")
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert trained_runs(tokenizer, ids, labels) == ["Hello!<|eot_id|>", "Goodbye.<|eot_id|>"]
    assert labels[0] == IGNORE


def test_tiny_models_template_keeps_the_one_turn_rendering_and_renders_system_and_tools(tiny_model_dir):
    from transformers import AutoTokenizer

    from tasks.model.prompts import prompt_token_ids
    from tasks.model.tool_calls import parse_tool_calls

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.chat_template
    one = Conversation(messages=(Message(role="user", content="My invoice is wrong"),
                                 Message(role="assistant", content="Triage: billing")))
    ids, labels = conversation_ids(tokenizer, one, TrainConfig().prompt_template)
    old_prompt = prompt_token_ids(tokenizer, "My invoice is wrong", "### Ticket\n{prompt}\n### Response\n")
    old_completion = tokenizer("Triage: billing", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert ids == old_prompt + old_completion      # what training built before the template existed
    assert labels == [IGNORE] * len(old_prompt) + old_completion
    plain = tokenizer.__class__.from_pretrained(tiny_model_dir)
    plain.chat_template = None
    assert old_prompt == prompt_token_ids(plain, "My invoice is wrong", "### Ticket\n{prompt}\n### Response\n")

    ids, labels = conversation_ids(tokenizer, SUPPORT, "{prompt}")
    runs = trained_runs(tokenizer, ids, labels)
    assert runs[1] == "Triage: refund | priority: high</s>"
    text, calls = parse_tool_calls(runs[0].removesuffix("</s>"), "hermes")
    assert calls[0]["function"] == {"name": "lookup_order", "arguments": ARGS}
    rendered = tokenizer.decode(ids)
    assert "### System\nYou are the support desk." in rendered and '"lookup_order"' in rendered.split("### System")[0]


def test_a_template_that_rewrites_earlier_turns_is_refused_naming_it_and_the_turn(tiny_model_dir):
    # the number of messages at the top: every later turn changes the rendering of the earlier ones
    counting = "Turns: {{ messages | length }}\n{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    tokenizer = tokenizer_with(tiny_model_dir, counting, [])
    with pytest.raises(AdapterOpsError) as error:
        conversation_ids(tokenizer, SUPPORT, "{prompt}", "r7")
    message = str(error.value)
    assert "chat template" in message and "sha256:" in message and str(tiny_model_dir) in message
    assert "message 2 (assistant) of record r7" in message
    # the last assistant turn only rendered (as some reasoning templates do): refused at the first one
    last_only = ("{% for m in messages %}{% if m.role != 'assistant' or loop.last %}{{ m.role }}: {{ m.content }}\n"
                 "{% endif %}{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    with pytest.raises(AdapterOpsError, match=r"message 2 \(assistant\)"):
        conversation_ids(tokenizer_with(tiny_model_dir, last_only, []), SUPPORT, "{prompt}", "r7")


def test_a_base_without_a_chat_template_refuses_a_conversation_but_trains_one_turn(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = None
    with pytest.raises(AdapterOpsError, match="has no chat template"):
        conversation_ids(tokenizer, SUPPORT, "{prompt}", "r1")
    one = Conversation(messages=(Message(role="user", content="a"), Message(role="assistant", content="b")))
    ids, labels = conversation_ids(tokenizer, one, "Q: {prompt}\nA: ")
    assert tokenizer.decode([i for i, l in zip(ids, labels) if l != IGNORE]) == "b</s>"


def test_preflight_counts_tokens_and_quarantines_or_truncates_what_is_too_long(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = [{"id": "one", "prompt": "short ticket", "completion": "Triage: billing"},
               {"id": "conv", **stored_columns(SUPPORT)},
               {"id": "long", "prompt": "word " * 400, "completion": "Triage: other"},
               {"id": "none", **stored_columns(Conversation(messages=(
                   Message(role="user", content="hi"), Message(role="assistant", content="x", weight=0))))}]
    examples, report = prepare_examples(records, tokenizer, TrainConfig(max_length=512, overlong="quarantine"))
    assert report.records == 4 and report.examples == 2 and report.multi_turn == 1
    assert [q["id"] for q in report.quarantined] == ["long"] and report.truncated == 0
    assert [u["id"] for u in report.untrained] == ["none"]
    assert report.examples + len(report.quarantined) + len(report.untrained) == report.records   # every record counted
    assert report.longest_id == "long" and report.longest_tokens > 512 and report.over_max_length == 1
    assert report.trained_tokens == sum(sum(l != IGNORE for l in e.labels) for e in examples)
    assert report.context_tokens == sum(len(e.input_ids) for e in examples) - report.trained_tokens
    examples, report = prepare_examples(records, tokenizer, TrainConfig(max_length=512))
    assert report.examples == 2 and report.truncated == 1 and not report.quarantined   # the long one's answer is cut off
    assert [u["id"] for u in report.untrained] == ["long", "none"]
    assert any("over train.max_length: truncated" in line for line in report.lines())


def test_packing_never_splits_a_conversation_across_rows(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = [{"id": str(i), **stored_columns(SUPPORT)} for i in range(3)] + \
              [{"id": f"p{i}", "prompt": f"ticket {i}", "completion": "ok"} for i in range(5)]
    examples, _ = prepare_examples(records, tokenizer, TrainConfig())
    capacity = max(len(e.input_ids) for e in examples) + 10
    batch = collate_packed(examples, tokenizer.pad_token_id, capacity)
    rows = batch["input_ids"].tolist()
    positions = batch["position_ids"].tolist()
    for example in examples:   # each example lies whole, in one row, positions 0..n-1
        n = len(example.input_ids)
        found = [(r, at) for r, row in enumerate(rows) for at in range(len(row) - n + 1)
                 if row[at:at + n] == example.input_ids and positions[r][at:at + n] == list(range(n))]
        assert found, "an example was split across rows"
        r, at = found[0]
        assert batch["labels"][r, at + 1:at + n].tolist() == example.labels[1:]


def test_a_clients_key_order_and_argument_spacing_render_as_the_stored_record(tiny_model_dir):
    """Serving renders a request as training rendered the stored record: tool definitions in any key order, tool
    call arguments in any JSON spacing (what staging's template parity compares over /tokenize)."""
    from transformers import AutoTokenizer

    from tasks.model.prompts import conversation_token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    stored = stored_columns(SUPPORT)   # the corpus's form: keys sorted
    history = json.loads(stored["messages"])[:4]
    client = [dict(m) for m in SUPPORT.openai()[:4]]
    client[2] = client[2] | {"tool_calls": [{"type": "function", "id": "c1",
                                             "function": {"arguments": '{"order_id":"A-1042"}', "name": "lookup_order"}}]}
    client_tools = [{"function": {"parameters": {"properties": {"order_id": {"type": "string"}}, "type": "object"},
                                  "name": "lookup_order", "description": "Find an order"}, "type": "function"}]
    trained = conversation_token_ids(tokenizer, history, json.loads(stored["tools"]), "{prompt}")
    assert conversation_token_ids(tokenizer, client, list(TOOLS), "{prompt}") == trained
    assert conversation_token_ids(tokenizer, client, client_tools, "{prompt}") == trained
    assert "lookup_order" in tokenizer.decode(trained) and "A-1042" in tokenizer.decode(trained)
