"""The OpenAI-compatible HTTP API of `adapterops serve`: /v1/chat/completions, /v1/completions, /v1/models, /health.

Every bad request answers a 4xx in OpenAI's error shape {"error": {"message", "type", "param", "code"}};
nothing a client sends can stop the server.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from adapterops.config import ServeConfig
from tasks.model.generate import cut_at_stop
from tasks.model.prompts import conversation_token_ids, prompt_token_ids
from tasks.serve.engine import AdapterPool, Batcher, NotLoaded, QueueFull


class ApiError(Exception):
    """A request the server refuses, answered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")   # OpenAI clients send fields we do not use (user, top_p, ...)
    model: StrictStr = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float | StrictInt | None = Field(None, ge=0, le=2)
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool | None = None
    n: StrictInt | None = Field(None, ge=1)


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart]


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)


class CompletionRequest(_Request):
    prompt: StrictStr | list[StrictStr]


def _union_member(part) -> bool:
    """pydantic names the union member tried in an error's location (stop.str, stop.list[str]): not a field."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part)


def parse_body(raw: bytes, schema: type[_Request]) -> _Request:
    """The request body validated against schema, or an ApiError naming the field at fault."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    try:
        request = schema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not _union_member(p)) or None
        raise ApiError(400, f"{param}: {first['msg']}", param=param, code="invalid_value") from None
    if request.stream:
        raise ApiError(400, "Streaming is not supported; send stream: false.", param="stream", code="unsupported_value")
    if (request.n or 1) != 1:
        raise ApiError(400, "Only n = 1 is supported.", param="n", code="unsupported_value")
    if request.temperature:
        raise ApiError(400, "This server decodes greedily: send temperature 0 or leave it out.", param="temperature",
                       code="unsupported_value")
    return request


def chat_prompt(messages: list[Message]) -> str:
    """The prompt of a chat request: one user message, as the adapter was trained (single-turn prompts)."""
    if len(messages) != 1 or messages[0].role != "user":
        raise ApiError(400, "Send exactly one message with role 'user': the adapters are trained on single-turn "
                            "prompts and render them with their own template.", param="messages", code="invalid_value")
    content = messages[0].content
    text = content if isinstance(content, str) else "".join(part.text for part in content)
    if not text.strip():
        raise ApiError(400, "The user message is empty.", param="messages", code="invalid_value")
    return text


def completion_prompts(prompt: str | list[str]) -> list[str]:
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not prompts or any(not p.strip() for p in prompts):
        raise ApiError(400, "Every prompt must be a non-empty string.", param="prompt", code="invalid_value")
    return prompts


def create_app(pool: AdapterPool, batcher: Batcher, settings: ServeConfig, status: dict | None = None):
    """The FastAPI app over a pool and its batcher; `status` (registry poll state) is shown by /health."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="AdapterOps serve", docs_url=None, redoc_url=None)
    status = status if status is not None else {}

    @app.exception_handler(ApiError)
    async def _api_error(_, error: ApiError):
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def _http_error(_, error: HTTPException):
        return JSONResponse(ApiError(error.status_code, str(error.detail), code="not_found" if error.status_code == 404
                                     else None).body(), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_, error: Exception):
        return JSONResponse(ApiError(500, f"Generation failed: {type(error).__name__}", kind="server_error").body(),
                            status_code=500)

    async def generate(request: _Request, prompts: list[str]) -> tuple[list, object]:
        max_new = request.max_completion_tokens or request.max_tokens or settings.max_new_tokens
        if max_new > settings.max_tokens_limit:
            raise ApiError(400, f"max_tokens is {max_new}; this server generates at most {settings.max_tokens_limit}.",
                           param="max_tokens", code="invalid_value")
        ids = [prompt_token_ids(pool.tokenizer, p, pool.prompt_template) for p in prompts]
        if (longest := max(len(i) for i in ids)) > settings.max_prompt_tokens:
            raise ApiError(400, f"The prompt is {longest} tokens; this server takes at most {settings.max_prompt_tokens}.",
                           param="prompt", code="context_length_exceeded")
        futures, slot = [], None
        try:
            for row in ids:
                try:
                    slot = pool.acquire(request.model)
                except NotLoaded as error:
                    raise ApiError(404, str(error), param="model", code="model_not_found") from None
                try:
                    futures.append(batcher.submit(slot, row, max_new))
                except QueueFull as error:
                    pool.release(slot)
                    raise ApiError(429, str(error), code="queue_full", kind="rate_limit_error") from None
            answers = [await asyncio.wrap_future(f) for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()   # a job not yet started is dropped; the worker releases its slot
            raise
        stop = [request.stop] if isinstance(request.stop, str) else request.stop
        finished = []
        for row, answer in zip(ids, answers):
            text, stopped = cut_at_stop(answer.text, stop)
            reason = "stop" if stopped or answer.new_tokens < max_new else "length"
            finished.append((text, reason, len(row), answer.new_tokens))
        return finished, slot

    def envelope(kind: str, request: _Request, slot, choices: list[dict], finished: list) -> dict:
        prompt_tokens, completion_tokens = sum(f[2] for f in finished), sum(f[3] for f in finished)
        return {"id": f"{kind}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()), "model": request.model,
                "system_fingerprint": f"{slot.model_name}/{slot.version}", "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    @app.post("/v1/chat/completions")
    async def chat_completions(http: Request):
        request = parse_body(await http.body(), ChatRequest)
        finished, slot = await generate(request, [chat_prompt(request.messages)])
        choices = [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
                   for text, reason, _, _ in finished]
        return envelope("chat.completion", request, slot, choices, finished)

    @app.post("/v1/completions")
    async def completions(http: Request):
        request = parse_body(await http.body(), CompletionRequest)
        finished, slot = await generate(request, completion_prompts(request.prompt))
        choices = [{"index": i, "text": text, "finish_reason": reason, "logprobs": None}
                   for i, (text, reason, _, _) in enumerate(finished)]
        return envelope("text_completion", request, slot, choices, finished)

    # --- /tokenize (vLLM's shape): what this server renders a conversation into; staging's template parity ---
    @app.post("/tokenize")
    async def tokenize(http: Request):
        try:
            data = json.loads(await http.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
        messages, tools = (data.get("messages"), data.get("tools")) if isinstance(data, dict) else (None, None)
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "Send messages: a non-empty list of chat messages.", param="messages", code="invalid_value")
        if tools is not None and not isinstance(tools, list):
            raise ApiError(400, "tools must be a list of function definitions.", param="tools", code="invalid_value")
        try:
            ids = conversation_token_ids(pool.tokenizer, messages, tools, pool.prompt_template)
        except Exception as error:   # the template refused them (jinja raise_exception, a missing key): the client's
            raise ApiError(400, f"The messages cannot be rendered: {error}", param="messages", code="invalid_value") from None
        return {"tokens": ids, "count": len(ids), "max_model_len": settings.max_prompt_tokens}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"object": "model", "owned_by": "adapterops", "created": 0,
                                            "base_model": pool.base_name, "base_revision": pool.base_revision} | row
                                           for row in pool.listing()]}

    @app.get("/health")
    async def health():
        return {"status": "ok", "base_model": pool.base_name, "base_revision": pool.base_revision,
                "queued": batcher.depth(), "models": [row["id"] for row in pool.listing()]} | status

    return app
