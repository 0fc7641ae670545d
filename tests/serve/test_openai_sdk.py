"""The official `openai` SDK against `adapterops serve` over real HTTP (uvicorn in a thread of this process, so
the engine can be inspected): streaming, sampling, conversations with tools, errors, models."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from adapterops.config import ServeConfig
from tests.serve.adapters import CHAT_TEMPLATE, register_adapter

SETTINGS = ServeConfig(cpu_threads=0, max_new_tokens=12, max_tokens_limit=200, max_prompt_tokens=512, max_batch=8,
                       max_queue=16, max_n=3)
TICKET = [{"role": "user", "content": "I was charged twice for my invoice"}]
MODEL = "sdk-chat"


def serve_in_thread(app):
    """A uvicorn server for app on a free loopback port; (url, server, thread)."""
    import uvicorn

    from tasks.serve import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="module")
def served(tiny_model_dir):
    from tasks.serve import build_server

    register_adapter(MODEL, 21, tiny_model_dir, "production", chat_template=CHAT_TEMPLATE)
    app, follower, batcher = build_server([MODEL], ["production"], SETTINGS, follow=False)
    url, server, thread = serve_in_thread(app)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    yield client, follower.pool, batcher, url
    server.should_exit = True
    thread.join(timeout=30)
    batcher.stop()


def test_a_streamed_chat_equals_the_non_streamed_answer_and_ends_with_usage(served):
    client, pool, _, url = served
    whole = client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=12)
    chunks = list(client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content and text
    finished = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finished == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])

    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=120,
                      json={"model": MODEL, "messages": TICKET, "max_tokens": 4, "stream": True}) as raw:
        lines = [line for line in raw.iter_lines() if line]
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    assert "usage" not in json.loads(lines[-2][6:])     # no usage chunk unless stream_options asks


def test_a_streamed_completion_equals_the_non_streamed_one(served):
    client, _, _, _ = served
    whole = client.completions.create(model=MODEL, prompt="My refund has not arrived", max_tokens=10)
    parts = list(client.completions.create(model=MODEL, prompt="My refund has not arrived", max_tokens=10, stream=True))
    assert "".join(p.choices[0].text for p in parts) == whole.choices[0].text
    assert parts[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_usage_counts_are_the_tokenizers_and_greedy_answers_are_the_evaluations(served):
    from tasks.model.generate import generate
    from tasks.model.prompts import conversation_token_ids

    client, pool, _, _ = served
    answer = client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=12, logprobs=True, top_logprobs=2)
    ids = conversation_token_ids(pool.tokenizer, TICKET, None, pool.prompt_template)
    slot = pool.acquire(MODEL)
    pool.release(slot)
    reference = generate(pool.model, pool.tokenizer, [ids], 12, adapter=slot.adapter)[0]
    assert answer.usage.prompt_tokens == len(ids)
    assert answer.usage.completion_tokens == reference.new_tokens == len(answer.choices[0].logprobs.content)
    assert answer.choices[0].message.content == reference.text
    for entry in answer.choices[0].logprobs.content:   # greedy: the chosen token is the most likely one
        assert len(entry.top_logprobs) == 2 and entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)


def test_sampling_with_a_seed_repeats_and_top_p_narrows_to_the_greedy_answer(served):
    client, _, _, _ = served
    ask = lambda **kw: client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=16, **kw)
    first, again = ask(temperature=1.5, seed=7), ask(temperature=1.5, seed=7)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.choices[0].message.content != ask(temperature=1.5, seed=8).choices[0].message.content
    three = ask(temperature=1.5, seed=7, n=3)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert three.choices[0].message.content == first.choices[0].message.content
    assert len({c.message.content for c in three.choices}) > 1
    assert three.usage.prompt_tokens == first.usage.prompt_tokens     # the prompt is counted once
    greedy = ask(temperature=0).choices[0].message.content
    assert ask(temperature=1.0, top_p=1e-6, seed=3).choices[0].message.content == greedy


def test_stop_and_max_completion_tokens_end_the_answer(served):
    client, _, _, _ = served
    full = client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=16).choices[0].message.content
    assert len(full) > 6
    stop = full[4:6]
    cut = client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=16, stop=[stop])
    assert cut.choices[0].message.content == full[:full.find(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=MODEL, messages=TICKET, max_tokens=16, stop=stop, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == full[:full.find(stop)]
    short = client.chat.completions.create(model=MODEL, messages=TICKET, max_completion_tokens=3)
    assert short.usage.completion_tokens <= 3
    if short.usage.completion_tokens == 3:
        assert short.choices[0].finish_reason == "length"


CONVERSATION = [
    {"role": "system", "content": "You triage support tickets. Look orders up before you answer."},
    {"role": "user", "content": "Where is my order?"},
    {"role": "assistant", "content": "Which order number?"},
    {"role": "user", "content": "A17"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{\"order_id\": \"A17\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"status\": \"shipped\"}"},
]
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Find an order by its id.",
                                           "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}}]


class Scripted:
    """The model made to write `text`, then EOS: a forward hook on the output head forces each next token."""

    def __init__(self, pool, text: str):
        self.ids = pool.tokenizer(text, add_special_tokens=False)["input_ids"] + [pool.tokenizer.eos_token_id]
        self.step = 0
        self.handle = pool.model.get_base_model().lm_head.register_forward_hook(self.force)

    def force(self, _module, inputs, output):
        if inputs[0].shape[1] > 1:     # the prompt's forward pass: the script starts again
            self.step = 0
        forced = output.clone()
        forced[:, -1, :] = -1e4
        forced[:, -1, self.ids[min(self.step, len(self.ids) - 1)]] = 1e4
        self.step += 1
        return forced

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_a_conversation_with_tools_renders_with_the_adapters_template_and_returns_tool_calls(served):
    from tasks.model.prompts import conversation_token_ids

    client, pool, _, _ = served
    answer = client.chat.completions.create(model=MODEL, messages=CONVERSATION, tools=TOOLS, max_tokens=8)
    rendered = [dict(m, tool_calls=[dict(c, function=dict(c["function"], arguments=json.loads(c["function"]["arguments"])))
                                    for c in m["tool_calls"]]) if m.get("tool_calls") else m for m in CONVERSATION]
    rendered = [{k: ("" if k == "content" and v is None else v) for k, v in m.items()} for m in rendered]
    ids = conversation_token_ids(pool.tokenizer, rendered, TOOLS, pool.prompt_template)
    assert answer.usage.prompt_tokens == len(ids)
    assert "lookup_order" in pool.tokenizer.decode(ids) and "<|im_start|>tool" in pool.tokenizer.decode(ids)

    call = '<tool_call>{"name": "lookup_order", "arguments": {"order_id": "B2"}}</tool_call>'
    with Scripted(pool, "Checking. " + call):
        made = client.chat.completions.create(model=MODEL, messages=CONVERSATION[:4], tools=TOOLS, max_tokens=150)
        streamed = list(client.chat.completions.create(model=MODEL, messages=CONVERSATION[:4], tools=TOOLS,
                                                       max_tokens=150, stream=True))
        plain = client.chat.completions.create(model=MODEL, messages=CONVERSATION[:4], max_tokens=150)
    choice = made.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == \
        [("lookup_order", {"order_id": "B2"})]
    deltas = [c.choices[0].delta for c in streamed if c.choices]
    assert "".join(d.content or "" for d in deltas).strip() == "Checking."
    calls = [t for d in deltas for t in (d.tool_calls or [])]
    assert [(t.function.name, json.loads(t.function.arguments)) for t in calls] == [("lookup_order", {"order_id": "B2"})]
    assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert plain.choices[0].message.tool_calls is None and call in plain.choices[0].message.content   # no tools sent


def test_errors_arrive_as_the_sdks_own_exception_classes_with_openais_body(served):
    client, _, _, _ = served
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nobody", messages=TICKET)
    assert missing.value.code == "model_not_found" and missing.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=f"{MODEL}/99", messages=TICKET)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=TICKET, temperature=5)
    assert bad.value.body["param"] == "temperature" and bad.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=TICKET, n=4)   # serve.max_n is 3 here
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "assistant", "content": "hi"}])


def test_a_full_queue_is_the_sdks_rate_limit_error(served):
    from fastapi.testclient import TestClient

    from tasks.serve.app import create_app
    from tasks.serve.engine import Batcher, Job

    _, pool, _, _ = served
    stalled = Batcher(pool, max_batch=1, max_queue=1)     # not started: nothing drains
    stalled.submit(Job(pool.acquire(MODEL), pool.tokenizer("hello")["input_ids"], 2))
    with TestClient(create_app(pool, stalled, SETTINGS)) as http:
        limited = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)
        with pytest.raises(openai.RateLimitError) as full:
            limited.chat.completions.create(model=MODEL, messages=TICKET)
    assert full.value.code == "queue_full"
    stalled.start()
    stalled.stop()


def test_models_list_and_retrieve(served):
    client, _, _, _ = served
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids and f"{MODEL}/1" in ids
    assert client.models.retrieve(MODEL).id == MODEL and client.models.retrieve(MODEL).owned_by == "adapterops"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody")


def test_a_client_that_disconnects_mid_stream_frees_its_slot(served, monkeypatch):
    _, pool, batcher, url = served
    jobs, submit = [], batcher.submit
    monkeypatch.setattr(batcher, "submit", lambda job: (jobs.append(job), submit(job))[1])
    body = {"model": MODEL, "messages": TICKET, "max_tokens": 200, "stream": True, "temperature": 1.0, "seed": 1}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as raw:
        for line in raw.iter_lines():
            if '"content": "' in line and '"content": ""' not in line:
                break                                  # one token read, then the client goes away
    deadline = time.monotonic() + 60
    while batcher.running or any(s.inflight for s in pool.loaded.values()):
        assert time.monotonic() < deadline, "the abandoned stream still holds its slot"
        time.sleep(0.05)
    assert [j.reason for j in jobs] == ["cancelled"] and len(jobs[0].tokens) < 200
    assert openai.OpenAI(base_url=f"{url}/v1", api_key="unused").chat.completions.create(
        model=MODEL, messages=TICKET, max_tokens=2).choices


def test_the_tool_call_parser_follows_the_template_family_unless_configured():
    from tasks.serve.app import tool_call_parser

    assert tool_call_parser("auto", CHAT_TEMPLATE) == "hermes"
    assert tool_call_parser("auto", "{{ messages[0].content }}") == "none" and tool_call_parser("auto", None) == "none"
    assert tool_call_parser("none", CHAT_TEMPLATE) == "none" and tool_call_parser("hermes", None) == "hermes"


def test_streamed_logprobs_are_the_non_streamed_ones_chunk_by_chunk(served):
    """Each chunk carries the logprobs of the tokens it adds; together they are the non-streamed answer's."""
    client, _, _, _ = served
    asked = {"model": MODEL, "messages": TICKET, "max_tokens": 12, "logprobs": True, "top_logprobs": 2}
    whole = client.chat.completions.create(**asked).choices[0].logprobs.content
    chunks = [c for c in client.chat.completions.create(**asked, stream=True) if c.choices]
    streamed = [entry for c in chunks if c.choices[0].logprobs for entry in c.choices[0].logprobs.content]
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in whole] and whole
    assert sum(1 for c in chunks if c.choices[0].logprobs) > 1            # spread over the stream, not at its end

    prompt = {"model": MODEL, "prompt": "My refund has not arrived", "max_tokens": 10, "logprobs": 2}
    full = client.completions.create(**prompt).choices[0].logprobs
    parts = [p.choices[0].logprobs for p in client.completions.create(**prompt, stream=True) if p.choices[0].logprobs]
    assert [t for p in parts for t in p.tokens] == full.tokens
    assert [o for p in parts for o in p.text_offset] == full.text_offset
    assert [lp for p in parts for lp in p.token_logprobs] == pytest.approx(full.token_logprobs)
