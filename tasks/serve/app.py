"""The OpenAI-compatible HTTP API of `adapterops serve`: /v1/chat/completions and /v1/completions (streamed or
not, greedy or sampled), /tokenize (the ids a chat request renders into), /v1/models, /v1/feedback (a caller's
verdict on an answer), /metrics and /health (/health/live, /health/ready). Answered requests are offered to the
traffic recorder (tasks/serve/recording.py), which never slows or fails them.

Every bad request answers a 4xx in OpenAI's error shape {"error": {"message", "type", "param", "code"}};
nothing a client sends can stop the server: bodies beyond serve.max_body_bytes answer 413 before they are
read, JSON is parsed off the event loop and its nesting is limited (400).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from itertools import accumulate
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from adapterops.config import ServeConfig
from tasks.model.prompts import conversation_token_ids, prompt_token_ids
from tasks.model.tool_calls import parse_tool_calls
from tasks.serve.choices import TOOL_CALL_MARKERS, ChoiceText
from tasks.serve.decoding import Sampling
from tasks.serve.engine import AdapterPool, Batcher, Job, NotLoaded, QueueFull, parse_model
from tasks.serve.metrics import Exchange, ServeMetrics, access_log
from tasks.serve.recording import FEEDBACK, RECORDS, Recorder

log = logging.getLogger("adapterops.serve")


INLINE_PARSE_BYTES = 64 * 1024   # bodies up to this size are parsed on the event loop, larger ones in a thread


class ApiError(Exception):
    """A request the server refuses, answered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")   # OpenAI clients send fields we do not use (user, metadata, ...)
    model: StrictStr = Field(min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: float | StrictInt | None = Field(None, ge=0, le=2)
    top_p: float | StrictInt | None = Field(None, gt=0, le=1)
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    n: StrictInt | None = Field(None, ge=1)


class TextPart(BaseModel):
    type: Literal["text"]
    text: StrictStr


class FunctionCall(BaseModel):
    name: StrictStr
    arguments: StrictStr


class ToolCall(BaseModel):
    id: StrictStr
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: StrictStr | None = None
    name: StrictStr | None = None


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: StrictStr = Field(min_length=1)
    description: StrictStr | None = None
    parameters: dict | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: FunctionDef


class ChatRequest(_Request):
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Any = None
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, ge=0, le=20)


class TokenizeRequest(BaseModel):
    """/tokenize: the messages (and tools) of a chat completion, rendered exactly as one would be."""
    model_config = ConfigDict(extra="allow")
    model: StrictStr | None = None
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None


class CompletionRequest(_Request):
    prompt: StrictStr | list[StrictStr]
    logprobs: StrictInt | None = Field(None, ge=0, le=5)


class FeedbackRequest(BaseModel):
    """POST /v1/feedback: a caller's verdict on one answer, by the `id` the answer came with."""
    model_config = ConfigDict(extra="forbid")
    response_id: StrictStr = Field(min_length=1, max_length=200)
    verdict: Literal["good", "bad"]
    corrected_answer: StrictStr | None = Field(None, max_length=100_000)
    note: StrictStr | None = Field(None, max_length=10_000)


def _union_member(part) -> bool:
    """pydantic names the union member tried in an error's location (stop.str, stop.list[str]): not a field."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part)


def json_depth(data) -> int:
    """How deeply lists and objects nest (iteratively: a hostile body cannot exhaust the stack here)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def parse_body(raw: bytes, schema: type[BaseModel], max_depth: int = 64):
    """The request body validated against schema, or an ApiError naming the field at fault (a worker thread
    runs this: a large body never blocks the event loop)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, f"The request body nests deeper than {max_depth} levels.", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    if json_depth(data) > max_depth:
        raise ApiError(400, f"The request body nests deeper than {max_depth} levels.", code="invalid_json")
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if not _union_member(p)) or None
        raise ApiError(400, f"{param}: {first['msg']}", param=param, code="invalid_value") from None


def _text(content) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else "".join(part.text for part in content)


def chat_messages(messages: list[Message]) -> list[dict]:
    """The conversation as the chat template takes it: system first, user / assistant / tool turns, tool calls
    with parsed arguments; refused (400) when it does not end on a user or tool turn to answer."""
    rendered = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        if m.content is None and not (role == "assistant" and m.tool_calls):
            raise ApiError(400, f"messages.{i}.content: Field required (only an assistant message with tool_calls may "
                                "omit it).", param=f"messages.{i}.content", code="invalid_value")
        if role == "system" and i:
            raise ApiError(400, "A system message may only come first.", param=f"messages.{i}.role", code="invalid_value")
        row: dict = {"role": role, "content": _text(m.content)}
        if m.tool_calls:
            if role != "assistant":
                raise ApiError(400, "Only assistant messages carry tool_calls.", param=f"messages.{i}.tool_calls",
                               code="invalid_value")
            calls = []
            for call in m.tool_calls:
                try:
                    arguments = json.loads(call.function.arguments)
                except ValueError:
                    raise ApiError(400, f"Tool call {call.id!r}: arguments are not valid JSON.",
                                   param=f"messages.{i}.tool_calls", code="invalid_value") from None
                calls.append({"id": call.id, "type": "function",
                              "function": {"name": call.function.name, "arguments": arguments}})
            row["tool_calls"] = calls
        if role == "tool":
            if not m.tool_call_id:
                raise ApiError(400, "A tool message needs the tool_call_id it answers.", param=f"messages.{i}.tool_call_id",
                               code="invalid_value")
            row["tool_call_id"] = m.tool_call_id
        if role == "user" and not row["content"].strip():
            raise ApiError(400, "A user message is empty.", param="messages", code="invalid_value")
        rendered.append(row)
    if rendered[-1]["role"] not in ("user", "tool"):
        raise ApiError(400, "The last message must be the user's (or a tool result) for the assistant to answer.",
                       param="messages", code="invalid_value")
    return rendered


def completion_prompts(prompt: str | list[str]) -> list[str]:
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not prompts or any(not p.strip() for p in prompts):
        raise ApiError(400, "Every prompt must be a non-empty string.", param="prompt", code="invalid_value")
    return prompts


def tool_call_parser(configured: str, chat_template: str | None) -> str:
    """The tool-call syntax to read: as configured, or for `auto` the one the chat template writes."""
    if configured != "auto":
        return configured
    return "hermes" if chat_template and "<tool_call>" in chat_template else "none"


def sampling_of(request: _Request, settings: ServeConfig, logprobs: int | None, index: int) -> Sampling:
    temperature = settings.default_temperature if request.temperature is None else float(request.temperature)
    seed = None if request.seed is None else request.seed + index   # n choices: reproducible, not identical
    return Sampling(temperature, 1.0 if request.top_p is None else float(request.top_p), seed, logprobs)


class _Generation:
    """One request's choices in flight: their jobs, their texts and the events the worker thread sends.

    Events are buffered and handed to the event loop in one callback per batch of events (not one wake-up per
    token); a non-streamed request without stop sequences is sent no token events at all: its text is read
    from the finished job (the same ChoiceText, so it equals the streamed text)."""

    def __init__(self, loop, tokenizer, stop, marker, live: bool):
        self.loop, self.queue = loop, asyncio.Queue()
        self.tokenizer, self.stop, self.marker, self.live = tokenizer, stop, marker, live
        self.jobs: list[Job] = []
        self.texts: list[ChoiceText] = []
        self.prompt_lengths: list[int] = []
        self._buffer: list = []
        self._lock = threading.Lock()

    def listener(self, index: int):
        def send(kind, value):
            if kind == "token" and not self.live:
                return
            with self._lock:
                self._buffer.append((index, kind, value))
                if len(self._buffer) > 1:
                    return            # a hand-over is already scheduled and will take this one too
            try:
                self.loop.call_soon_threadsafe(self._hand_over)
            except RuntimeError:    # the event loop is gone (shutdown): nobody is listening
                pass
        return send

    def _hand_over(self) -> None:
        with self._lock:
            events, self._buffer = self._buffer, []
        for event in events:
            self.queue.put_nowait(event)

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()


def create_app(pool: AdapterPool, batcher: Batcher, settings: ServeConfig, status: dict | None = None,
               keys=None):
    """The FastAPI app over a pool and its batcher; `status` (registry poll state) is shown by /health;
    `keys` (a KeyRing) guards /v1 and /metrics when it holds keys."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException

    metrics = ServeMetrics(pool, batcher)
    recorder = Recorder(settings.record, metrics.registry) if settings.record.enabled else None

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if recorder is not None:     # what is waiting is written before the process ends
            await asyncio.to_thread(recorder.close)

    app = FastAPI(title="AdapterOps serve", docs_url=None, redoc_url=None, lifespan=lifespan)
    status = status if status is not None else {}
    app.state.metrics, app.state.draining, app.state.recorder = metrics, False, recorder
    parser = tool_call_parser(settings.tool_call_parser, getattr(pool.tokenizer, "chat_template", None))
    marker = TOOL_CALL_MARKERS.get(parser)

    @app.exception_handler(ApiError)
    async def _api_error(http: Request, error: ApiError):
        _exchange(http).error = error.code or error.kind
        return JSONResponse(error.body(), status_code=error.status)

    @app.exception_handler(HTTPException)
    async def _http_error(_, error: HTTPException):
        return JSONResponse(ApiError(error.status_code, str(error.detail), code="not_found" if error.status_code == 404
                                     else None).body(), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(http: Request, error: Exception):
        _exchange(http).error = type(error).__name__
        return JSONResponse(ApiError(500, f"Generation failed: {type(error).__name__}", kind="server_error").body(),
                            status_code=500)

    def _exchange(http: Request) -> Exchange:
        return http.scope.setdefault("adapterops.exchange", Exchange(http.method, http.url.path, ""))

    async def read(http: Request, schema: type[BaseModel]):
        raw = await http.body()
        if len(raw) <= INLINE_PARSE_BYTES:      # parsed in microseconds: a thread hop would cost more
            return parse_body(raw, schema, settings.max_json_depth)
        return await asyncio.to_thread(parse_body, raw, schema, settings.max_json_depth)

    def authorize(http: Request, model: str) -> None:
        holder = http.scope.get("adapterops.key")
        if holder is not None and not holder.allows(parse_model(model)[0]):
            raise ApiError(403, f"This API key may not call {model!r}.", param="model", code="model_not_allowed",
                           kind="permission_error")

    async def acquire(model: str):
        try:
            slot = pool.acquire_loaded(model)    # attached already: no registry call, no thread
            return slot if slot is not None else await asyncio.to_thread(pool.acquire, model)
        except NotLoaded as error:
            raise ApiError(404, str(error), param="model", code="model_not_found") from None

    async def start(http: Request, request: _Request, prompts: list[list[int]], logprobs: int | None,
                    tools: bool) -> _Generation:
        """Queue n jobs per prompt; the generation whose events the caller reads."""
        exchange = _exchange(http)
        exchange.requested, exchange.stream = request.model, bool(request.stream)
        authorize(http, request.model)
        max_new = request.max_completion_tokens or request.max_tokens or settings.max_new_tokens
        if max_new > settings.max_tokens_limit:
            raise ApiError(400, f"max_tokens is {max_new}; this server generates at most {settings.max_tokens_limit}.",
                           param="max_tokens", code="invalid_value")
        n = request.n or 1
        if n > settings.max_n:
            raise ApiError(400, f"n is {n}; this server generates at most {settings.max_n} choices (serve.max_n).",
                           param="n", code="invalid_value")
        if (longest := max(len(i) for i in prompts)) > settings.max_prompt_tokens:
            raise ApiError(400, f"The prompt is {longest} tokens; this server takes at most {settings.max_prompt_tokens}.",
                           param="prompt", code="context_length_exceeded")
        stop = [request.stop] if isinstance(request.stop, str) else request.stop
        generation = _Generation(asyncio.get_running_loop(), pool.tokenizer, stop, marker if tools else None,
                                 live=bool(request.stream or stop))
        exchange.prompt_tokens = sum(len(p) for p in prompts)
        try:
            for ids in prompts:
                for _ in range(n):
                    index = len(generation.jobs)
                    slot = await acquire(request.model)
                    exchange.model, exchange.version = slot.model_name, slot.version
                    job = Job(slot, ids, max_new, sampling_of(request, settings, logprobs, index % n),
                              generation.listener(index))
                    try:
                        batcher.submit(job)
                    except QueueFull as error:
                        pool.release(slot)
                        raise ApiError(429, str(error), code="queue_full", kind="rate_limit_error") from None
                    generation.jobs.append(job)
                    generation.texts.append(ChoiceText(pool.tokenizer, stop, generation.marker))
                    generation.prompt_lengths.append(len(ids))
        except BaseException:
            generation.cancel()
            raise
        return generation

    async def events(http: Request, generation: _Generation):
        """(index, text delta) as tokens arrive, then (index, None) when a choice ends; cancels on exit."""
        exchange, started = _exchange(http), http.scope.get("adapterops.started", time.perf_counter())
        open_choices = set(range(len(generation.jobs)))
        try:
            while open_choices:
                index, kind, value = await generation.queue.get()
                if index not in open_choices:
                    continue
                text = generation.texts[index]
                if kind == "token":
                    if exchange.first_token_seconds is None:
                        exchange.first_token_seconds = time.perf_counter() - started
                    delta = text.add(value.id)
                    if text.stopped:
                        generation.jobs[index].cancel()
                        open_choices.discard(index)
                        if delta:
                            yield index, delta
                        yield index, None
                    elif delta:
                        yield index, delta
                else:
                    open_choices.discard(index)
                    job = generation.jobs[index]
                    if not generation.live:          # no token events were sent: read the finished job
                        for token in job.tokens:
                            text.add(token.id)
                    if exchange.first_token_seconds is None and job.first_token_at is not None:
                        exchange.first_token_seconds = job.first_token_at - started
                    if value == "error":
                        raise ApiError(500, "Generation failed; see the server log.", kind="server_error")
                    yield index, None
        finally:
            generation.cancel()      # a client that went away frees its slots now
            exchange.completion_tokens = sum(t.tokens for t in generation.texts)

    def finish_reason(generation: _Generation, index: int, calls: list) -> str:
        if calls:
            return "tool_calls"
        if generation.texts[index].stopped:
            return "stop"
        job = generation.jobs[index]
        return "length" if job.reason == "length" else "stop"

    def final_content(generation: _Generation, index: int) -> tuple[str, list[dict]]:
        text = generation.texts[index].text
        if generation.marker is None:
            return text, []
        return parse_tool_calls(text, parser, id_prefix=f"call_{uuid.uuid4().hex[:12]}")

    def chat_logprobs(generation: _Generation, index: int, start: int = 0) -> dict | None:
        """The choice's token logprobs from token `start` on (a stream sends each chunk's new tokens)."""
        job = generation.jobs[index]
        if job.sampling.logprobs is None:
            return None
        tokenizer = pool.tokenizer
        used = job.tokens[start:generation.texts[index].tokens]

        def entry(token_id: int, logprob: float) -> dict:
            piece = tokenizer.decode([token_id])
            return {"token": piece, "logprob": logprob, "bytes": list(piece.encode())}

        return {"content": [entry(t.id, t.logprob) | {"top_logprobs": [entry(i, lp) for i, lp in t.top]}
                            for t in used], "refusal": None}

    def completion_logprobs(generation: _Generation, index: int, start: int = 0) -> dict | None:
        """The same in the completions shape; text offsets count from the start of the whole answer."""
        job = generation.jobs[index]
        if job.sampling.logprobs is None:
            return None
        tokenizer, tokens = pool.tokenizer, job.tokens[:generation.texts[index].tokens]
        pieces = [tokenizer.decode([t.id]) for t in tokens]
        offsets = list(accumulate(map(len, pieces), initial=0))[start:len(pieces)]
        used = tokens[start:]
        return {"tokens": pieces[start:], "token_logprobs": [t.logprob for t in used], "text_offset": offsets,
                "top_logprobs": [{tokenizer.decode([i]): lp for i, lp in t.top} for t in used]}

    def usage(generation: _Generation, n: int) -> dict:
        prompt = sum(generation.prompt_lengths[::n])       # each prompt once, however many choices it has
        completion = sum(t.tokens for t in generation.texts)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def head(kind: str, request: _Request, generation: _Generation) -> dict:
        slot = generation.jobs[0].slot
        return {"id": f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex}", "object": kind,
                "created": int(time.time()), "model": request.model,
                "system_fingerprint": f"{slot.model_name}/{slot.version}"}

    def remember(http: Request, request: _Request, generation: _Generation, response_id: str, finals: list,
                 chat: bool) -> None:
        """Offer the answered request to the recorder (sampled there); a recorder fault never reaches the caller."""
        if recorder is None:
            return
        try:
            exchange, n = _exchange(http), request.n or 1
            started = http.scope.get("adapterops.started", time.perf_counter())
            counts = usage(generation, n)
            pending = {"id": response_id, "time": datetime.now(timezone.utc).isoformat(),
                       "endpoint": "chat" if chat else "completion", "model": request.model,
                       "model_name": exchange.model, "version": exchange.version,
                       "alias": parse_model(request.model)[1], "key": exchange.key, "stream": bool(request.stream),
                       "latency_seconds": round(time.perf_counter() - started, 4),
                       "prompt_tokens": counts["prompt_tokens"], "completion_tokens": counts["completion_tokens"],
                       "choices": [{"index": i, "prompt": i // n, "content": content or "", "calls": calls,
                                    "finish_reason": reason} for i, (content, calls, reason) in enumerate(finals)]}
            if chat:
                pending["messages"] = [m.model_dump(exclude_none=True) for m in request.messages]
                pending["tools"] = [t.model_dump(exclude_none=True) for t in request.tools] if request.tools else None
            else:
                pending["prompts"] = completion_prompts(request.prompt)
            recorder.offer(RECORDS, pending)
        except Exception as error:   # never the caller's problem: say it and carry on
            log.warning("recording skipped a request: %s: %s", type(error).__name__, error)

    def sse(data: dict | str) -> str:
        return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"

    async def stream(http: Request, request: _Request, generation: _Generation, chat: bool):
        kind = "chat.completion.chunk" if chat else "text_completion"
        top = head(kind, request, generation)
        n = request.n or 1
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}

        sent = [0] * len(generation.jobs)     # per choice: tokens whose logprobs a chunk already carried

        def chunk(index: int, body: dict, reason: str | None = None) -> str:
            logprobs = None
            if generation.texts[index].tokens > sent[index] and (body.get("content") or reason is not None):
                logprobs = (chat_logprobs if chat else completion_logprobs)(generation, index, sent[index])
                sent[index] = generation.texts[index].tokens
            choice = ({"index": index, "delta": body, "logprobs": logprobs, "finish_reason": reason} if chat
                      else {"index": index, "text": body.get("content", ""), "logprobs": logprobs, "finish_reason": reason})
            return sse(top | {"choices": [choice]} | extra)

        finals: dict[int, tuple] = {}
        try:
            if chat:
                for index in range(len(generation.jobs)):
                    yield chunk(index, {"role": "assistant", "content": ""})
            async for index, delta in events(http, generation):
                if delta is not None:
                    yield chunk(index, {"content": delta})
                    continue
                content, calls = final_content(generation, index)
                rest = generation.texts[index].rest(content)
                if rest:
                    yield chunk(index, {"content": rest})
                if calls and chat:
                    yield chunk(index, {"tool_calls": [call | {"index": k} for k, call in enumerate(calls)]})
                reason = finish_reason(generation, index, calls)
                finals[index] = (content, calls, reason)
                yield chunk(index, {}, reason)
            remember(http, request, generation, top["id"], [finals[i] for i in sorted(finals)], chat)
            if include_usage:
                yield sse(top | {"choices": [], "usage": usage(generation, n)})
            yield sse("[DONE]")
        except ApiError as error:
            yield sse(error.body())

    async def answer(http: Request, request: _Request, generation: _Generation, chat: bool) -> dict:
        async for _ in events(http, generation):
            pass
        choices, finals = [], []
        for index in range(len(generation.jobs)):
            content, calls = final_content(generation, index)
            reason = finish_reason(generation, index, calls)
            finals.append((content, calls, reason))
            if chat:
                message = {"role": "assistant", "content": content if content or not calls else None}
                if calls:
                    message["tool_calls"] = calls
                choices.append({"index": index, "message": message, "logprobs": chat_logprobs(generation, index),
                                "finish_reason": reason})
            else:
                choices.append({"index": index, "text": content, "finish_reason": reason,
                                "logprobs": completion_logprobs(generation, index)})
        kind = "chat.completion" if chat else "text_completion"
        body = head(kind, request, generation) | {"choices": choices, "usage": usage(generation, request.n or 1)}
        remember(http, request, generation, body["id"], finals, chat)
        return body

    async def respond(http: Request, request: _Request, generation: _Generation, chat: bool):
        if request.stream:
            return StreamingResponse(stream(http, request, generation, chat), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            return await answer(http, request, generation, chat)
        finally:
            generation.cancel()

    def render_chat(request: ChatRequest | TokenizeRequest) -> list[int]:
        messages = chat_messages(request.messages)
        tools = [t.model_dump(exclude_none=True) for t in request.tools] if request.tools else None
        if not getattr(pool.tokenizer, "chat_template", None):
            if len(messages) == 1 and messages[0]["role"] == "user" and not tools:
                return prompt_token_ids(pool.tokenizer, messages[0]["content"], pool.prompt_template)
            raise ApiError(400, "This adapter's base model has no chat template, so only a single user message "
                                "(no system message, history or tools) can be rendered; register the adapter with a "
                                "chat template to send conversations.", param="messages", code="invalid_value")
        try:
            return conversation_token_ids(pool.tokenizer, messages, tools, pool.prompt_template)
        except Exception as error:   # the template refused the conversation (jinja raise_exception, bad shape)
            raise ApiError(400, f"The adapter's chat template cannot render these messages: {error}",
                           param="messages", code="invalid_value") from None

    @app.post("/v1/chat/completions")
    async def chat_completions(http: Request):
        request = await read(http, ChatRequest)
        ids = render_chat(request) if len(request.messages) <= 4 and not request.tools else \
            await asyncio.to_thread(render_chat, request)
        if settings.log_prompts:
            _exchange(http).prompt = json.dumps([m.model_dump(exclude_none=True) for m in request.messages])
        top = request.top_logprobs or 0
        tools = bool(request.tools) and request.tool_choice != "none" and marker is not None
        generation = await start(http, request, [ids], top if request.logprobs else None, tools)
        return await respond(http, request, generation, chat=True)

    @app.post("/v1/completions")
    async def completions(http: Request):
        request = await read(http, CompletionRequest)
        prompts = completion_prompts(request.prompt)
        if settings.log_prompts:
            _exchange(http).prompt = json.dumps(prompts)
        ids = [prompt_token_ids(pool.tokenizer, p, pool.prompt_template) for p in prompts]
        generation = await start(http, request, ids, request.logprobs, tools=False)
        return await respond(http, request, generation, chat=False)

    @app.post("/v1/feedback")
    async def feedback(http: Request):
        holder = http.scope.get("adapterops.key")
        if holder is None:
            raise ApiError(401, "Feedback needs an API key: send `Authorization: Bearer <key>` (a server without keys "
                                "takes none; make one with `adapterops keys api create`).", code="invalid_api_key",
                           kind="authentication_error")
        body = await read(http, FeedbackRequest)
        if recorder is None:
            raise ApiError(503, "This server records nothing (serve.record.enabled is false), so feedback cannot be "
                                "stored; turn recording on.", code="recording_disabled", kind="server_error")
        row = {"id": f"fb-{uuid.uuid4().hex}", "response_id": body.response_id, "verdict": body.verdict,
               "corrected_answer": body.corrected_answer, "note": body.note, "key": holder.name,
               "time": datetime.now(timezone.utc).isoformat()}
        if not recorder.offer(FEEDBACK, row):
            raise ApiError(503, "The feedback store is behind; send the feedback again in a moment.",
                           code="feedback_queue_full", kind="server_error")
        return JSONResponse({"id": row["id"], "object": "feedback", "response_id": body.response_id,
                             "verdict": body.verdict, "status": "accepted"}, status_code=202)

    def model_card(row: dict) -> dict:
        return {"object": "model", "owned_by": "adapterops", "created": 0, "base_model": pool.base_name,
                "base_revision": pool.base_revision} | row

    # --- /tokenize (vLLM's shape): the ids a chat completion's messages render into here; staging's template parity ---
    @app.post("/tokenize")
    async def tokenize(http: Request):
        request = await read(http, TokenizeRequest)
        if request.model:
            authorize(http, request.model)
        ids = render_chat(request) if len(request.messages) <= 4 and not request.tools else \
            await asyncio.to_thread(render_chat, request)
        return {"tokens": ids, "count": len(ids), "max_model_len": settings.max_prompt_tokens}

    @app.get("/v1/models")
    async def models(http: Request):
        holder = http.scope.get("adapterops.key")
        return {"object": "list", "data": [model_card(row) for row in pool.listing()
                                           if holder is None or holder.allows(row["model_name"])]}

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str, http: Request):
        authorize(http, model_id)
        slot = await acquire(model_id)     # a registered version that is not attached yet loads now
        pool.release(slot)
        for row in pool.listing():
            if row["id"] == model_id or (row["alias"] is None and row["id"] == f"{slot.model_name}/{slot.version}"
                                         and parse_model(model_id)[2] == slot.version):
                return model_card(row | {"id": model_id})
        return model_card({"id": model_id, "model_name": slot.model_name, "alias": None, "version": slot.version,
                           "corpus_digest": slot.corpus_digest})

    @app.get("/metrics")
    async def metrics_page():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/health")
    async def health():
        return {"status": "ok", "base_model": pool.base_name, "base_revision": pool.base_revision,
                "queued": batcher.depth(), "models": [row["id"] for row in pool.listing()]} | status

    @app.get("/health/live")
    async def live():
        return {"status": "live"}

    @app.get("/health/ready")
    async def ready():
        problems = [why for why, bad in (("shutting down", app.state.draining),
                                         ("the batcher is not running", not batcher.thread.is_alive()),
                                         ("no adapter is loaded", not pool.listing())) if bad]
        body = {"status": "not ready" if problems else "ready", "problems": problems, "queued": batcher.depth()}
        return JSONResponse(body, status_code=503 if problems else 200)

    return GuardedApp(app, settings, keys, metrics)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"The request body is larger than {limit} bytes (serve.max_body_bytes).",
                         code="request_too_large")


OPEN_PATHS = ("/health",)      # liveness and readiness answer without a key (load balancers, orchestrators)


class GuardedApp:
    """The ASGI edge around the app: body limit (413 before reading), API keys (401), access log and metrics
    for every request. Pure ASGI, so a streamed response is logged when its last byte is sent."""

    def __init__(self, app, settings: ServeConfig, keys, metrics: ServeMetrics):
        self.app, self.settings, self.keys, self.metrics = app, settings, keys, metrics
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        client = scope.get("client")
        exchange = Exchange(scope["method"], scope["path"], f"{client[0]}:{client[1]}" if client else "")
        scope["adapterops.exchange"], scope["adapterops.started"] = exchange, started
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope, exchange)
            if refusal is not None:
                status["code"] = refusal.status
                exchange.error = refusal.code
                await _send_error(send, refusal)
                return
            await self.app(scope, self._limited(receive), sending)
        finally:
            seconds = time.perf_counter() - started
            if not scope["path"].startswith(("/health", "/metrics")):
                self.metrics.observe(exchange, scope["path"], status["code"], seconds)
                access_log.info(exchange.log_line(status["code"], seconds))

    def _refusal(self, scope, exchange: Exchange) -> ApiError | None:
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.settings.max_body_bytes:
            return BodyTooLarge(self.settings.max_body_bytes)
        if self.keys is None or scope["path"].startswith(OPEN_PATHS) or not self.keys.enabled:
            return None
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        holder = self.keys.holder(authorization)
        if holder is None:
            return ApiError(401, "A valid API key is required: send `Authorization: Bearer <key>` (keys come from "
                                 "ADAPTEROPS_API_KEYS or `adapterops keys api create`).", code="invalid_api_key")
        scope["adapterops.key"] = holder
        exchange.key = holder.name
        return None

    def _limited(self, receive):
        limit, seen = self.settings.max_body_bytes, {"bytes": 0}

        async def receiving():
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:     # a body sent without Content-Length (chunked): stop reading it
                    raise BodyTooLarge(limit)
            return message
        return receiving


async def _send_error(send, error: ApiError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
