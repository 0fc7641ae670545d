"""adapterops serve in process (FastAPI's TestClient): two adapters on one base, bad requests, a full queue, swaps."""

import threading

import mlflow
import pytest
from fastapi.testclient import TestClient

from adapterops.config import ServeConfig
from tests.serve.adapters import register_adapter

SETTINGS = ServeConfig(cpu_threads=0, max_new_tokens=8, max_tokens_limit=32, max_prompt_tokens=64, max_batch=8, max_queue=8)
CHAT = {"messages": [{"role": "user", "content": "I was charged twice for my invoice"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from tasks.serve.follower import build_server

    register_adapter("svc-alpha", 1, tiny_model_dir, "production")
    register_adapter("svc-beta", 2, tiny_model_dir, "production")
    app, follower, batcher = build_server(["svc-alpha", "svc-beta"], ["production", "staging"], SETTINGS, follow=False)
    with TestClient(app) as client:
        yield client, follower, batcher
    batcher.stop()


def chat(client, model, **extra):
    response = client.post("/v1/chat/completions", json=CHAT | {"model": model} | extra)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_adapters_answer_from_one_base_and_a_mixed_batch_equals_each_alone(server):
    client, follower, _ = server
    alpha, beta = chat(client, "svc-alpha"), chat(client, "svc-beta")
    assert alpha["system_fingerprint"] == "svc-alpha/1" and beta["system_fingerprint"] == "svc-beta/1"
    assert alpha["choices"][0]["message"]["content"] != beta["choices"][0]["message"]["content"]
    assert chat(client, "svc-alpha/1")["choices"] == alpha["choices"]
    assert alpha["usage"]["completion_tokens"] <= 8 and alpha["object"] == "chat.completion"

    from tasks.model.generate import generate
    from tasks.model.prompts import prompt_token_ids

    pool = follower.pool
    slots = [pool.acquire(m) for m in ("svc-alpha", "svc-beta")]
    for slot in slots:
        pool.release(slot)
    names = [slot.adapter for slot in slots]
    ids = prompt_token_ids(pool.tokenizer, CHAT["messages"][0]["content"], pool.prompt_template)
    mixed = generate(pool.model, pool.tokenizer, [ids, ids], 8, adapter=names)
    alone = [generate(pool.model, pool.tokenizer, [ids], 8, adapter=name)[0] for name in names]
    assert [a.text for a in mixed] == [a.text for a in alone] == [alpha["choices"][0]["message"]["content"],
                                                                  beta["choices"][0]["message"]["content"]]

    completion = client.post("/v1/completions", json={"model": "svc-beta", "prompt": ["a", CHAT["messages"][0]["content"]],
                                                       "max_tokens": 8}).json()
    assert [c["index"] for c in completion["choices"]] == [0, 1]
    assert completion["choices"][1]["text"] == beta["choices"][0]["message"]["content"]


def test_models_lists_versions_aliases_and_corpus_digests(server):
    client, _, _ = server
    rows = {row["id"]: row for row in client.get("/v1/models").json()["data"]}
    assert set(rows) == {"svc-alpha", "svc-beta", "svc-alpha/1", "svc-beta/1"}
    assert rows["svc-alpha"]["alias"] == "production" and rows["svc-alpha"]["version"] == "1"
    assert rows["svc-beta"]["corpus_digest"] == "sha256:test-svc-beta-2" and rows["svc-beta"]["base_model"] == "tiny-llama"
    assert client.get("/health").json()["status"] == "ok"


BAD = [
    ("invalid json", b"{not json", 400, None),
    ("not an object", b"[1, 2]", 400, None),
    ("no model", {"messages": CHAT["messages"]}, 400, "model"),
    ("model not a string", CHAT | {"model": 3}, 400, "model"),
    ("unknown model", CHAT | {"model": "nobody"}, 404, "model"),
    ("unknown alias", CHAT | {"model": "svc-alpha@staging"}, 404, "model"),
    ("unknown version", CHAT | {"model": "svc-alpha/99"}, 404, "model"),
    ("no messages", {"model": "svc-alpha", "messages": []}, 400, "messages"),
    ("messages not a list", {"model": "svc-alpha", "messages": "hi"}, 400, "messages"),
    ("message without content", {"model": "svc-alpha", "messages": [{"role": "user"}]}, 400, "messages.0.content"),
    ("unknown role", {"model": "svc-alpha", "messages": [{"role": "boss", "content": "hi"}]}, 400, "messages.0.role"),
    ("empty content", {"model": "svc-alpha", "messages": [{"role": "user", "content": "  "}]}, 400, "messages"),
    ("assistant last", {"model": "svc-alpha", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
    ("max_tokens a string", CHAT | {"model": "svc-alpha", "max_tokens": "8"}, 400, "max_tokens"),
    ("max_tokens zero", CHAT | {"model": "svc-alpha", "max_tokens": 0}, 400, "max_tokens"),
    ("too many tokens asked", CHAT | {"model": "svc-alpha", "max_tokens": 33}, 400, "max_tokens"),
    ("prompt too long", {"model": "svc-alpha", "messages": [{"role": "user", "content": "word " * 200}]}, 400, "prompt"),
    ("temperature out of range", CHAT | {"model": "svc-alpha", "temperature": 3}, 400, "temperature"),
    ("n beyond serve.max_n", CHAT | {"model": "svc-alpha", "n": 99}, 400, "n"),
    ("system message not first", {"model": "svc-alpha", "messages": [{"role": "user", "content": "hi"},
                                                                      {"role": "system", "content": "be nice"}]},
     400, "messages.1.role"),
    ("tool message without its call id", {"model": "svc-alpha", "messages": [{"role": "tool", "content": "{}"}]},
     400, "messages.0.tool_call_id"),
    ("stop not strings", CHAT | {"model": "svc-alpha", "stop": [1]}, 400, "stop"),
]


@pytest.mark.parametrize("body,status,param", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_chat_requests_get_an_openai_shaped_4xx(server, body, status, param):
    client, _, _ = server
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.post("/v1/chat/completions", **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert chat(client, "svc-alpha")["choices"]   # the server still answers


@pytest.mark.parametrize("prompt", [[], [""], ["ok", 3], None])
def test_bad_completion_prompts_get_400(server, prompt):
    client, _, _ = server
    response = client.post("/v1/completions", json={"model": "svc-alpha", "prompt": prompt})
    assert response.status_code == 400 and response.json()["error"]["param"].startswith("prompt")


def test_unknown_routes_answer_in_the_error_shape(server):
    client, _, _ = server
    assert client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    assert client.get("/v1/chat/completions").status_code == 405


def test_a_full_queue_answers_429_at_once_and_the_queued_requests_still_finish(server):
    from tasks.serve.app import create_app
    from tasks.serve.engine import Batcher, Job

    _, follower, _ = server
    pool = follower.pool
    stalled = Batcher(pool, max_batch=2, max_queue=2)   # not started: nothing drains until we say so
    ids = pool.tokenizer("hello")["input_ids"]
    queued = [stalled.submit(Job(pool.acquire("svc-alpha"), ids, 4)) for _ in range(2)]
    with TestClient(create_app(pool, stalled, SETTINGS)) as client:
        response = client.post("/v1/chat/completions", json=CHAT | {"model": "svc-beta"})
    assert response.status_code == 429 and response.json()["error"]["code"] == "queue_full"
    stalled.start()
    assert all(f.result(timeout=60).new_tokens <= 4 for f in queued)
    stalled.stop()


def test_an_alias_move_swaps_in_and_the_old_adapter_stays_until_its_requests_finish(server, tiny_model_dir):
    client, follower, _ = server
    pool = follower.pool
    before = chat(client, "svc-alpha")
    v2 = register_adapter("svc-alpha", 3, tiny_model_dir)
    mlflow.MlflowClient().set_registered_model_alias("svc-alpha", "staging", v2)
    follower.sync()
    assert chat(client, "svc-alpha@staging")["system_fingerprint"] == f"svc-alpha/{v2}"

    held = pool.acquire("svc-alpha")            # a request in flight on v1
    mlflow.MlflowClient().set_registered_model_alias("svc-alpha", "production", v2)
    follower.sync()
    after = chat(client, "svc-alpha")
    assert after["system_fingerprint"] == f"svc-alpha/{v2}" and after["choices"] != before["choices"]
    assert held.adapter in pool.model.peft_config      # still attached for the request that holds it
    assert ("svc-alpha", "1") not in pool.loaded       # but no longer routed: new requests never reach it
    pool.release(held)
    pool.collect()
    assert held.adapter not in pool.model.peft_config
    assert sum(name.endswith(f"_v{v2}") for name in pool.model.peft_config) == 1   # two aliases, one copy
    again = chat(client, "svc-alpha/1")                # asked for by number, the old version loads on demand
    assert again["system_fingerprint"] == "svc-alpha/1" and again["choices"] == before["choices"]


def test_a_poll_that_cannot_read_the_registry_keeps_serving(server):
    client, follower, _ = server

    class Broken:
        def get_model_version_by_alias(self, *args):
            raise RuntimeError("registry down")

    working, follower.client = follower.client, Broken()
    try:
        follower.sync()
    finally:
        follower.client = working
    assert "registry down" in client.get("/health").json()["registry"]["error"]
    assert chat(client, "svc-beta")["choices"]


def test_requests_from_many_threads_all_answer(server):
    client, _, _ = server
    results, errors = [], []

    def send(model):
        try:
            results.append(chat(client, model)["system_fingerprint"].split("/")[0])
        except Exception as error:   # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=send, args=(m,)) for m in ["svc-alpha", "svc-beta"] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results) == ["svc-alpha"] * 4 + ["svc-beta"] * 4
