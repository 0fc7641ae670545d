"""Many adapters on one base: loaded on demand, at most serve.max_loaded attached (least recently used retired
after its requests finish), mixed batches across adapters, and hot swaps that never answer from the replaced
weights once the swap is done (under concurrent load, checked by each version's answer fingerprint)."""

from __future__ import annotations

import threading
import time

import mlflow
import pytest
from fastapi.testclient import TestClient

from adapterops.config import ServeConfig
from tests.serve.adapters import register_adapter

SETTINGS = ServeConfig(cpu_threads=0, max_new_tokens=6, max_tokens_limit=16, max_batch=8, max_queue=64, max_loaded=2)
TICKET = [{"role": "user", "content": "Please close my account"}]
NAMES = ["many-0", "many-1", "many-2"]


def ask(http, model: str) -> dict:
    response = http.post("/v1/chat/completions", json={"model": model, "messages": TICKET, "max_tokens": 6})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def many(tiny_model_dir):
    from tasks.serve import build_server

    for seed, name in enumerate(NAMES, start=40):
        register_adapter(name, seed, tiny_model_dir, "production")
    app, follower, batcher = build_server(NAMES, ["production"], SETTINGS, follow=False)
    with TestClient(app) as http:
        yield http, follower, batcher
    batcher.stop()


def test_any_registered_version_loads_on_demand_and_at_most_max_loaded_stay_attached(many):
    http, follower, _ = many
    pool = follower.pool
    assert len(pool.loaded) == 2                       # the third waits for its first request
    first = {name: ask(http, name) for name in NAMES}
    assert {a["system_fingerprint"] for a in first.values()} == {f"{n}/1" for n in NAMES}
    assert len(pool.loaded) <= 2 and pool.evictions >= 1
    assert len(pool.model.peft_config) <= 3            # at most one retired adapter left (peft keeps one)
    again = {name: ask(http, name) for name in reversed(NAMES)}   # evicted ones come back, same answers
    assert all(again[n]["choices"] == first[n]["choices"] for n in NAMES)

    held = pool.acquire("many-0")                      # in flight on many-0 while two others are loaded
    ask(http, "many-1")
    ask(http, "many-2")
    assert ("many-0", "1") not in pool.loaded and held.adapter in pool.model.peft_config
    pool.release(held)
    pool.collect()
    assert held.adapter not in pool.model.peft_config
    assert http.post("/v1/chat/completions", json={"model": "many-9", "messages": TICKET}).status_code == 404


def test_requests_for_different_adapters_share_a_batch(many, monkeypatch):
    from tasks.serve.decoding import Decoder

    http, follower, _ = many
    solo = {name: ask(http, name)["choices"][0]["message"]["content"] for name in NAMES[:2]}
    batches, step = [], Decoder.step

    def recording(self):
        batches.append({r.slot.model_name for r in self.rows})
        time.sleep(0.05)     # let the other requests join the running batch
        return step(self)

    monkeypatch.setattr(Decoder, "step", recording)
    answers, threads = [], [threading.Thread(target=lambda n=n: answers.append((n, ask(http, n))))
                            for n in NAMES[:2] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(len(b) > 1 for b in batches), batches
    assert all(a["choices"][0]["message"]["content"] == solo[n] for n, a in answers)


def test_a_hot_swap_under_load_never_answers_from_the_replaced_version_once_done(many, tiny_model_dir):
    http, follower, _ = many
    model, client = "swap-under-load", mlflow.MlflowClient()
    v1 = register_adapter(model, 51, tiny_model_dir, "production")
    v2 = register_adapter(model, 52, tiny_model_dir)
    follower.pool.names.add(model)
    expected = {v1: ask(http, model)["choices"][0]["message"]["content"]}
    seen, stop, errors = [], threading.Event(), []

    def load():
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = ask(http, model)
                seen.append((started, answer["system_fingerprint"], answer["choices"][0]["message"]["content"]))
            except Exception as error:   # noqa: BLE001 - collected and asserted below
                errors.append(error)

    def swap_to(version: str) -> float:
        client.set_registered_model_alias(model, "production", version)
        follower.sync()
        return time.monotonic()           # the swap is done: every request from now on must see `version`

    def answers_after(moment: float, count: int) -> list:
        deadline = time.monotonic() + 120
        while len(after := [s for s in list(seen) if s[0] > moment]) < count:
            assert time.monotonic() < deadline and not errors, errors[:1]
            time.sleep(0.05)
        return after

    senders = [threading.Thread(target=load) for _ in range(4)]
    for sender in senders:
        sender.start()
    try:
        answers_after(0, 4)
        to_v2 = swap_to(v2)
        after_v2 = answers_after(to_v2, 8)
        to_v1 = swap_to(v1)                # a rollback: v1's adapter was deleted and loads afresh
        after_v1 = answers_after(to_v1, 8)
    finally:
        stop.set()
        for sender in senders:
            sender.join()
    expected[v2] = ask(http, f"{model}/{v2}")["choices"][0]["message"]["content"]
    assert expected[v1] != expected[v2] and not errors
    assert {(fp, text) for _, fp, text in after_v2 if _ < to_v1} == {(f"{model}/{v2}", expected[v2])}
    assert {(fp, text) for _, fp, text in after_v1} == {(f"{model}/{v1}", expected[v1])}
    assert {text for _, _, text in seen} <= set(expected.values())     # nothing from a half-swapped model
