"""`mlflow models serve -m models:/NAME@production` over HTTP: MLflow's documented request formats and params."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.adapters import register_adapter

MODEL = "svc-mlflow"
PROMPTS = ["I was charged twice", "Where is my refund?"]


@pytest.fixture(scope="module")
def scoring_url(tiny_model_dir, tmp_path_factory):
    from tasks.serve.process import REPO, free_port

    register_adapter(MODEL, 21, tiny_model_dir, "production")
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)   # mlflow execs uvicorn from PATH
    env = os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    log = open(tmp_path_factory.mktemp("mlflow-serve") / "serve.log", "wb")
    process = subprocess.Popen([str(Path(bin_dir) / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@production",
                                "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, Path(log.name).read_text()[-2000:]
            assert time.monotonic() < deadline, Path(log.name).read_text()[-2000:]
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def invoke(url, body):
    return httpx.post(f"{url}/invocations", json=body, timeout=120)


def test_every_documented_input_format_answers_the_same(scoring_url):
    params = {"max_new_tokens": 6}
    bodies = [{"inputs": PROMPTS}, {"instances": [{"prompt": p} for p in PROMPTS]},
              {"dataframe_records": [{"prompt": p} for p in PROMPTS]},
              {"dataframe_split": {"columns": ["prompt"], "data": [[p] for p in PROMPTS]}}]
    answers = []
    for body in bodies:
        response = invoke(scoring_url, body | {"params": params})
        assert response.status_code == 200, (body, response.text)
        answers.append(response.json()["predictions"])
    assert all(a == answers[0] for a in answers) and len(answers[0]) == 2 and all(answers[0])


def test_params_are_honoured(scoring_url):
    short = invoke(scoring_url, {"inputs": PROMPTS[:1], "params": {"max_new_tokens": 2}}).json()["predictions"][0]
    longer = invoke(scoring_url, {"inputs": PROMPTS[:1], "params": {"max_new_tokens": 10}}).json()["predictions"][0]
    assert longer.startswith(short) and len(longer) > len(short)
    stop = longer[len(short):len(short) + 2]
    stopped = invoke(scoring_url, {"inputs": PROMPTS[:1], "params": {"max_new_tokens": 10, "stop": [stop]}})
    assert stopped.json()["predictions"][0] == longer[:longer.find(stop)]


@pytest.mark.parametrize("body", [{"inputs": []}, {"inputs": [""]}, {"instances": [{"prompt": "  "}]},
                                  {"inputs": PROMPTS, "params": {"temperature": 0.7}}],
                         ids=["no prompts", "empty prompt", "blank prompt", "sampling"])
def test_bad_input_answers_4xx(scoring_url, body):
    response = invoke(scoring_url, body)
    assert 400 <= response.status_code < 500, response.text


CONVERSATION = [{"role": "system", "content": "House policy: refunds need a manager."},
                {"role": "user", "content": "My parcel is lost"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"id": "A"}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": '{"status": "lost"}'},
                {"role": "user", "content": "And now?"}]
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]


def test_a_conversation_with_system_history_and_tools_is_answered_as_an_assistant_message(scoring_url):
    answers = []
    for body in ({"dataframe_records": [{"messages": CONVERSATION, "tools": TOOLS}]},
                 {"instances": [{"messages": CONVERSATION, "tools": TOOLS}]}):
        response = invoke(scoring_url, body | {"params": {"max_new_tokens": 6}})
        assert response.status_code == 200, (body, response.text)
        answers.append(response.json()["predictions"])
    assert answers[0] == answers[1] and answers[0][0]["role"] == "assistant"
    refused = invoke(scoring_url, {"dataframe_records": [{"messages": CONVERSATION[:3]}]})
    assert refused.status_code == 400 and "assistant" in refused.text
