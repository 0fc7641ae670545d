"""A real `adapterops serve` subprocess follows promotions and rollbacks while requests keep running."""

import threading
import time

import httpx
import mlflow

from tests.serve.adapters import register_adapter

MODEL = "svc-swap"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Where is my refund?"}], "max_tokens": 6}


def test_a_rollback_takes_effect_in_the_running_server_with_no_failed_request(tiny_model_dir, workspace, tmp_path):
    from tasks.release.registry import move_production
    from tasks.serve.process import ServerProcess

    client = mlflow.MlflowClient()
    v1 = register_adapter(MODEL, 11, tiny_model_dir)
    v2 = register_adapter(MODEL, 12, tiny_model_dir)
    move_production(client, client.get_registered_model(MODEL), v1, "promote", "test", "first")
    for version in (v1, v2):
        client.set_model_version_tag(MODEL, version, "release.decision", "promoted")

    seen, failures, stop = [], [], threading.Event()

    def keep_asking(http):
        while not stop.is_set():
            try:
                response = http.post("/v1/chat/completions", json=BODY, timeout=60)
                if response.status_code != 200:
                    failures.append(response.text)
                else:
                    seen.append((time.monotonic(), response.json()["system_fingerprint"]))
            except httpx.HTTPError as error:
                failures.append(repr(error))

    def answered_by(version: str, since: float) -> None:
        deadline = time.monotonic() + 120   # this machine is shared: one answer can take seconds
        while not any(t > since and fp == f"{MODEL}/{version}" for t, fp in list(seen)):
            assert time.monotonic() < deadline, f"no answer from v{version}; last answers: {seen[-3:]}"
            time.sleep(0.1)

    def routes_to(http, version: str, limit: float) -> None:
        """The server sends new requests to `version` within `limit` seconds (what /v1/models reports)."""
        deadline = time.monotonic() + limit
        while http.get("/v1/models").json()["data"][0]["version"] != version:
            assert time.monotonic() < deadline, f"production still routes to an old version after {limit} s"
            time.sleep(0.1)

    with ServerProcess([MODEL], ["production"], 0.5, tmp_path / "serve.log") as server:
        server.wait_healthy(120)
        with httpx.Client(base_url=server.url) as http:
            senders = [threading.Thread(target=keep_asking, args=(http,)) for _ in range(2)]
            for sender in senders:
                sender.start()
            try:
                answered_by(v1, 0)
                move_production(client, client.get_registered_model(MODEL), v2, "promote", "test", "second")
                routes_to(http, v2, 10)
                answered_by(v2, time.monotonic())
                move_production(client, client.get_registered_model(MODEL), v1, "rollback", "test",
                                "the answers got worse")   # who may roll back: tests/integrity/test_release_authority.py
                routes_to(http, v1, 10)
                answered_by(v1, time.monotonic())
            except AssertionError as error:
                raise AssertionError(f"{error}\nserver: {server.tail(30)}") from None
            finally:
                stop.set()
                for sender in senders:
                    sender.join()
            assert http.get("/v1/models").json()["data"][0]["version"] == v1
    assert not failures, failures[:3]
    assert len(seen) >= 3
