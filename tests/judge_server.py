"""A small OpenAI-compatible judge for the tests: FastAPI's /v1/chat/completions in a subprocess on a free port.

What it answers is scripted over HTTP (POST /rules): the first rule whose `when` strings all occur in the
request's user message (and `answer_has` strings in the answer it is asked about) decides: `reply` (the assistant message's text), `better_if` (the pairwise side whose
answer holds that string), `sleep` (seconds before answering) or `status` (an HTTP error). It records every
call (GET /calls): the Authorization header, the model and the user message.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
STATE: dict = {"rules": [], "calls": []}
DEFAULT = '{"result": "no", "rationale": "no rule matched"}'


def side_with(text: str, marker: str) -> str:
    """A or B: the side of a pairwise request whose answer holds the marker (tie: both or neither)."""
    first = text.split("Answer A:\n", 1)[-1].split("\n\nAnswer B:\n", 1)[0]
    second = text.split("\n\nAnswer B:\n", 1)[-1]
    a, b = marker in first, marker in second
    return "A" if a and not b else "B" if b and not a else "tie"


@app.post("/rules")
async def set_rules(request: Request):
    STATE["rules"] = await request.json()
    STATE["calls"] = []
    return {"rules": len(STATE["rules"])}


@app.get("/calls")
async def calls():
    return STATE["calls"]


@app.get("/health")
async def health():
    return {"ok": True}


@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
    STATE["calls"].append({"authorization": request.headers.get("authorization"), "model": body.get("model"),
                           "user": user})
    answer = user.split("\n\nAnswer:\n", 1)[-1].split("\n\nExpected response:\n", 1)[0]
    rule = next((r for r in STATE["rules"] if all(s in user for s in r.get("when", []))
                 and all(s in answer for s in r.get("answer_has", []))), {})
    if rule.get("sleep"):
        await asyncio.sleep(rule["sleep"])
    if rule.get("status"):
        return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, status_code=rule["status"])
    reply = rule.get("reply", DEFAULT)
    if rule.get("better_if"):
        reply = json.dumps({"better": side_with(user, rule["better_if"]), "rationale": "scripted"})
    return {"id": "judge-1", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class JudgeServer:
    """The running server: its /v1 base URL, and its script and call log over HTTP."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + "/v1"

    def script(self, rules: list[dict]) -> None:
        httpx.post(self.url + "/rules", json=rules, timeout=10).raise_for_status()

    def calls(self) -> list[dict]:
        return httpx.get(self.url + "/calls", timeout=10).json()


@contextmanager
def running_judge():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "tests.judge_server:app", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "warning"], cwd=root,
                               env=os.environ | {"PYTHONPATH": str(root)})
    server = JudgeServer(port)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test judge server did not start (exit {process.poll()})")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
