"""A real `adapterops serve` subprocess: API keys (environment and hashed file, per model, revoked while it runs),
/metrics and the access log, health, hostile bodies (20 MB, chunked, deeply nested) and a graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import openai
import psutil
import pytest
import yaml

from tasks.serve.api_keys import create_key, revoke_key
from tests.serve.adapters import register_adapter

ALPHA, BETA = "proc-alpha", "proc-beta"
ENV_KEY, ALPHA_KEY = "env-key-for-everything", "env-key-for-alpha"
TICKET = [{"role": "user", "content": "The app crashes when I open settings"}]


@pytest.fixture(scope="module")
def server(tiny_model_dir, workspace, tmp_path_factory):
    from tasks.serve.process import ServerProcess

    folder = tmp_path_factory.mktemp("serve-process")
    register_adapter(ALPHA, 31, tiny_model_dir, "production")
    register_adapter(BETA, 32, tiny_model_dir, "production")
    keys_file = folder / "api-keys.json"
    file_key = create_key(keys_file, "billing-app", [])
    config = folder / "serve.yaml"
    config.write_text(yaml.safe_dump({"serve": {"api_keys_file": str(keys_file), "max_body_bytes": 1_000_000,
                                                "grace_seconds": 60, "cpu_threads": 1}}))
    process = ServerProcess([ALPHA, BETA], ["production"], 30, folder / "serve.log", config_path=config,
                            env={"ADAPTEROPS_API_KEYS": f"{ENV_KEY},{ALPHA_KEY}={ALPHA}"}, stop_timeout=90)
    try:
        process.wait_healthy(180)
        yield process, keys_file, file_key
    finally:
        process.stop()


def sdk(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


def test_keys_guard_every_model_and_a_revoked_key_stops_working_while_the_server_runs(server):
    process, keys_file, file_key = server
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk(process, "not-a-key").chat.completions.create(model=ALPHA, messages=TICKET, max_tokens=2)
    assert refused.value.code == "invalid_api_key"
    assert httpx.post(f"{process.url}/v1/chat/completions", json={"model": ALPHA, "messages": TICKET}).status_code == 401
    assert sdk(process, ENV_KEY).chat.completions.create(model=BETA, messages=TICKET, max_tokens=2).choices
    assert sdk(process, file_key).chat.completions.create(model=ALPHA, messages=TICKET, max_tokens=2).choices

    limited = sdk(process, ALPHA_KEY)
    assert limited.chat.completions.create(model=ALPHA, messages=TICKET, max_tokens=2).choices
    with pytest.raises(openai.PermissionDeniedError):
        limited.chat.completions.create(model=BETA, messages=TICKET, max_tokens=2)
    assert {m.model_name for m in limited.models.list()} == {ALPHA}

    revoke_key(keys_file, "billing-app")
    with pytest.raises(openai.AuthenticationError):
        sdk(process, file_key).chat.completions.create(model=ALPHA, messages=TICKET, max_tokens=2)
    assert httpx.get(f"{process.url}/health/live").status_code == 200       # probes need no key
    assert httpx.get(f"{process.url}/health/ready").json()["status"] == "ready"
    log = process.log_path.read_text()
    assert ENV_KEY not in log and file_key not in log and ALPHA_KEY not in log


def test_metrics_count_requests_tokens_and_latency_per_model_and_the_access_log_has_one_line_each(server):
    process, _, _ = server
    client = sdk(process, ENV_KEY)
    answer = client.chat.completions.create(model=ALPHA, messages=TICKET, max_tokens=3)
    list(client.chat.completions.create(model=ALPHA, messages=TICKET, max_tokens=3, stream=True))
    assert httpx.get(f"{process.url}/metrics").status_code == 401
    page = httpx.get(f"{process.url}/metrics", headers={"Authorization": f"Bearer {ENV_KEY}"}).text

    def value(name: str, **labels) -> float:
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        found = [float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
                 if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())]
        assert found, f"no {name}{{{wanted}}} in /metrics"
        return sum(found)

    ok = value("adapterops_requests_total", model=ALPHA, version="1", endpoint="/v1/chat/completions", status="200")
    assert ok >= 2
    assert value("adapterops_requests_total", model="-", status="401") >= 1
    assert value("adapterops_completion_tokens_total", model=ALPHA, version="1") >= answer.usage.completion_tokens
    assert value("adapterops_prompt_tokens_total", model=ALPHA, version="1") >= 2 * answer.usage.prompt_tokens
    assert value("adapterops_request_seconds_count", model=ALPHA, version="1") >= 2
    assert value("adapterops_time_to_first_token_seconds_count", model=ALPHA, version="1") >= 1
    assert value("adapterops_queue_depth", model=BETA, version="1") == 0
    assert value("adapterops_running_requests", model=ALPHA, version="1") == 0
    assert value("adapterops_adapter_loaded", model=BETA, version="1") == 1

    lines = [json.loads(line[line.index("{"):]) for line in process.log_path.read_text().splitlines()
             if "adapterops.serve.access" in line]
    served = [line for line in lines if line.get("served") == f"{ALPHA}/1" and line["status"] == 200]
    assert len(served) >= 2 and {line["stream"] for line in served} == {True, False}
    assert all(line["completion_tokens"] >= 1 and "seconds" in line and line["key"] for line in served)
    assert "open settings" not in process.log_path.read_text()     # no prompt text unless serve.log_prompts


def test_hostile_bodies_are_refused_without_blocking_the_server_or_its_memory(server):
    process, _, _ = server
    headers = {"Authorization": f"Bearer {ENV_KEY}", "Content-Type": "application/json"}
    huge = b'{"model": "proc-alpha", "messages": [{"role": "user", "content": "' + b"x" * 20_000_000 + b'"}]}'
    rss_before = psutil.Process(process.process.pid).memory_info().rss
    statuses, health = [], []

    def send(body):
        statuses.append(httpx.post(f"{process.url}/v1/chat/completions", content=body, headers=headers,
                                   timeout=120).status_code)

    def chunked():
        def parts():
            for start in range(0, len(huge), 1 << 20):
                yield huge[start:start + (1 << 20)]
        try:
            statuses.append(httpx.post(f"{process.url}/v1/chat/completions", content=parts(), headers=headers,
                                       timeout=120).status_code)
        except httpx.HTTPError:       # the server may close the connection once it has answered 413
            statuses.append(413)

    senders = [threading.Thread(target=send, args=(huge,)) for _ in range(4)] + [threading.Thread(target=chunked)]
    for sender in senders:
        sender.start()
    while any(s.is_alive() for s in senders):
        health.append(httpx.get(f"{process.url}/health", timeout=1.0).status_code)   # the bound: 1 s
    for sender in senders:
        sender.join()
    assert statuses == [413] * 5 and set(health) <= {200}
    rss_after = psutil.Process(process.process.pid).memory_info().rss
    assert rss_after - rss_before < 100_000_000, f"RSS grew by {(rss_after - rss_before) / 1e6:.0f} MB"

    nested = httpx.post(f"{process.url}/v1/chat/completions", content=b"[" * 100_000 + b"]" * 100_000, headers=headers)
    assert nested.status_code == 400 and nested.json()["error"]["code"] == "invalid_json"
    deep = {"model": ALPHA, "messages": TICKET, "metadata": json.loads("[" * 200 + "]" * 200)}
    assert httpx.post(f"{process.url}/v1/chat/completions", json=deep, headers=headers).status_code == 400
    assert "Traceback" not in process.log_path.read_text()


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(server):
    process, _, _ = server
    body = {"model": ALPHA, "messages": TICKET, "max_tokens": 120, "stream": True, "temperature": 1.0, "seed": 5}
    lines = []
    with httpx.stream("POST", f"{process.url}/v1/chat/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {ENV_KEY}"}) as raw:
        for line in filter(None, raw.iter_lines()):
            lines.append(line)
            if len(lines) == 3:
                process.process.send_signal(signal.SIGTERM)
    assert lines[-1] == "data: [DONE]" and len(lines) > 5   # the stream in flight ran to its end
    assert process.process.wait(timeout=90) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{process.url}/health", timeout=2)
    assert "Traceback" not in process.log_path.read_text()


def test_sigint_stops_like_sigterm(tiny_model_dir, workspace, tmp_path):
    from tasks.serve.process import ServerProcess

    register_adapter("proc-gamma", 33, tiny_model_dir, "production")
    with ServerProcess(["proc-gamma"], ["production"], 30, tmp_path / "serve.log", stop_timeout=90) as process:
        process.wait_healthy(180)
        body = {"model": "proc-gamma", "messages": TICKET, "max_tokens": 120, "stream": True, "temperature": 1.0, "seed": 6}
        lines = []
        with httpx.stream("POST", f"{process.url}/v1/chat/completions", json=body, timeout=120,
                          headers=process.headers) as raw:
            for line in filter(None, raw.iter_lines()):
                lines.append(line)
                if len(lines) == 3:
                    process.process.send_signal(signal.SIGINT)
        assert lines[-1] == "data: [DONE]" and len(lines) > 5
        assert process.process.wait(timeout=90) == 0
        assert "Traceback" not in process.log_path.read_text()
