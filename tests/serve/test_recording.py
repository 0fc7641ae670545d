"""A real `adapterops serve` process records what production sees, through the official `openai` client: PII redacted
before anything is stored, the sampling rate honoured exactly, feedback stored for authenticated callers only, and a
dead store (every write failing as a full disk does) never fails a request: the drops are counted in /metrics."""

from __future__ import annotations

import time

import httpx
import openai
import pandas as pd
import pytest
import yaml

from tasks.serve.api_keys import create_key
from tests.serve.adapters import CHAT_TEMPLATE, register_adapter

pytestmark = pytest.mark.slow     # two server processes start (about a minute here)

MODEL = "recorded-adapter"
EMAIL, PHONE = "dana.k@example.com", "+44 20 7946 0958"


def start(folder, name: str, record: dict, env: dict | None = None):
    from tasks.serve.process import ServerProcess

    keys_file = folder / f"{name}-keys.json"
    key = create_key(keys_file, "support-app", [])
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"serve": {"api_keys_file": str(keys_file), "cpu_threads": 1,
                                                "record": {"folder": str(folder / name), "flush_seconds": 0.2}
                                                | record}}))
    return ServerProcess([MODEL], ["production"], 30, folder / f"{name}.log", config_path=config, env=env), key


@pytest.fixture(scope="module")
def servers(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recording")
    register_adapter(MODEL, 41, tiny_model_dir, "production", chat_template=CHAT_TEMPLATE)
    half, half_key = start(folder, "half", {"sample_rate": 0.5})
    dead, dead_key = start(folder, "dead", {}, env={"ADAPTEROPS_WRITE_FAILS_AT": "traffic-write"})
    try:
        half.wait_healthy(240)
        dead.wait_healthy(240)
        yield {"half": (half, half_key, folder / "half"), "dead": (dead, dead_key, folder / "dead")}
    finally:
        half.stop()
        dead.stop()


def client(process, key) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{process.url}/v1", api_key=key, max_retries=0, timeout=120)


def stored(folder, kind: str, expected: int, seconds: float = 30) -> pd.DataFrame:
    deadline = time.monotonic() + seconds
    while True:
        files = sorted((folder / kind).glob("date=*/*.parquet"))
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
        if len(frame) >= expected or time.monotonic() > deadline:
            return frame
        time.sleep(0.2)


def metric(process, key: str, line_start: str) -> float:
    text = httpx.get(f"{process.url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


def test_half_of_the_requests_are_recorded_with_their_pii_redacted_and_the_callers_key_name(servers):
    process, key, folder = servers["half"]
    sdk = client(process, key)
    answers = []
    for k in range(8):
        ticket = f"Ticket {k}: my invoice is wrong, write to {EMAIL} or call {PHONE}"
        if k % 2:
            answers.append(sdk.chat.completions.create(model=MODEL, messages=[
                {"role": "system", "content": "Acme Support triage."}, {"role": "user", "content": ticket}],
                max_tokens=6))
        else:
            parts = list(sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": ticket}],
                                                     max_tokens=6, stream=True))
            answers.append(parts[0])
    records = stored(folder, "records", 4)
    time.sleep(1)       # nothing more arrives: exactly every second request
    records = stored(folder, "records", 4)
    assert len(records) == 4
    assert set(records["id"]) == {a.id for a in answers[1::2]}     # systematic: requests 2, 4, 6, 8
    text = " ".join(records["messages"].fillna("").tolist() + records["prompt"].tolist())
    assert EMAIL not in text and PHONE not in text and "[EMAIL]" in text and "[PHONE]" in text
    assert (records["redacted"] >= 2).all()
    row = records.iloc[0]
    assert row["model_name"] == MODEL and row["alias"] == "production" and row["version"]
    assert row["key"] == "support-app" and key not in records.to_json()
    assert row["latency_seconds"] > 0
    usage = {a.id: a.usage for a in answers[1::2]}        # the recorded counts are the ones the caller was billed
    for _, recorded in records.iterrows():
        billed = usage[recorded["id"]]
        assert recorded["prompt_tokens"] == billed.prompt_tokens > 0
        assert recorded["completion_tokens"] == billed.completion_tokens
    assert metric(process, key, 'adapterops_records_written_total{kind="records"}') == 4


def test_feedback_needs_a_key_and_is_stored_beside_the_records_with_pii_redacted(servers):
    process, key, folder = servers["half"]
    body = {"response_id": "chatcmpl-123", "verdict": "bad", "corrected_answer": "Triage: billing | priority: normal",
            "note": f"customer {EMAIL} complained"}
    refused = httpx.post(f"{process.url}/v1/feedback", json=body)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.post(f"{process.url}/v1/feedback", json=body | {"verdict": "meh"},
                       headers={"Authorization": f"Bearer {key}"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "verdict"
    accepted = client(process, key).post("/feedback", body=body, cast_to=httpx.Response)
    assert accepted.status_code == 202 and accepted.json()["id"].startswith("fb-")
    feedback = stored(folder, "feedback", 1)
    assert len(feedback) == 1
    row = feedback.iloc[0]
    assert (row["response_id"], row["verdict"], row["key"]) == ("chatcmpl-123", "bad", "support-app")
    assert row["corrected_answer"] == body["corrected_answer"] and row["note"] == "customer [EMAIL] complained"


def test_a_dead_store_never_fails_a_request_and_the_drops_are_counted_and_logged_once(servers):
    process, key, folder = servers["dead"]
    sdk = client(process, key)
    for k in range(5):
        answer = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"help {k}"}],
                                             max_tokens=4)
        assert answer.choices[0].message.content is not None
    deadline = time.monotonic() + 30
    while metric(process, key, 'adapterops_records_dropped_total{kind="records",reason="store_error"}') < 5:
        assert time.monotonic() < deadline, process.tail(20)
        time.sleep(0.2)
    assert metric(process, key, 'adapterops_records_written_total{kind="records"}') == 0
    assert not list(folder.glob("records/date=*/*.parquet"))
    log = process.log_path.read_text()
    assert log.count("recording dropped") == 1 and "No space left on device" in log
