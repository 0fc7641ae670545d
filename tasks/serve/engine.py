"""The serving engine: one base model with named peft adapters that can be swapped while requests run,
and a micro-batching queue that generates requests for different adapters in one mixed batch."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from adapterops.errors import AdapterOpsError
from tasks.serve.decoding import Decoder, Sampling, Token
from tasks.serve.gathered_lora import install as install_gathered_lora


class QueueFull(Exception):
    """The queue holds max_queue requests: the caller answers 429."""


class NotLoaded(Exception):
    """No loaded adapter answers to this model name: the caller answers 404."""


@dataclass
class Slot:
    """One registered model version attached to the base as a named peft adapter."""
    model_name: str
    version: str
    adapter: str                 # the internal peft adapter name, unique for the process
    corpus_digest: str = ""
    inflight: int = 0


@dataclass(frozen=True)
class RegisteredAdapter:
    """A registered version ready to attach: its files and what it says about its base."""
    model_name: str
    version: str
    adapter_dir: str
    base_name: str
    base_revision: str
    prompt_template: str
    corpus_digest: str = ""
    config: dict = field(default_factory=dict, compare=False)   # the pyfunc model_config (where the base is)
    chat_template: str = ""      # the template the version was trained with; empty: the base tokenizer's


def parse_model(model: str) -> tuple[str, str | None, str | None]:
    """(registered name, alias, version) of a request's `model`: NAME (production), NAME@ALIAS or NAME/VERSION."""
    if "@" in model:
        name, alias = model.rsplit("@", 1)
        return name, alias, None
    name, slash, version = model.rpartition("/")
    if slash and version.isdigit():
        return name, None, version
    return model, "production", None


class AdapterPool:
    """The base model loaded once and the adapters attached to it, routed by (name, alias) and (name, version).

    A swap attaches the new version under a new internal name, then moves the alias in one step; the old
    adapter is deleted once no request holds it, so requests in flight finish on the version they started on
    and no request that starts after the move is answered by the old weights.

    With a `resolver` ((name, alias, version) -> RegisteredAdapter | None, reading the registry), any version
    or alias of `names` is loaded on first request; at most `max_loaded` versions stay attached, the least
    recently used one retired first (deleted once its requests have finished).
    """

    def __init__(self, model, tokenizer, base_name: str, base_revision: str, prompt_template: str,
                 resolver: Callable[[str, str | None, str | None], "RegisteredAdapter | None"] | None = None,
                 names: list[str] | None = None, max_loaded: int = 8):
        self.model, self.tokenizer = model, tokenizer     # a PeftModel once the first adapter is attached
        self.base_name, self.base_revision, self.prompt_template = base_name, base_revision, prompt_template
        self.resolver, self.names, self.max_loaded = resolver, set(names or []), max_loaded
        self.model_lock = threading.RLock()     # generation, attach and delete never overlap
        self.routes_lock = threading.Lock()
        self.loading_lock = threading.Lock()    # one on-demand load at a time: two requests never load one version twice
        self.loaded: dict[tuple[str, str], Slot] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.pinned: set[tuple[str, str]] = set()      # versions asked for by number (NAME/VERSION)
        self.last_used: dict[tuple[str, str], float] = {}
        self.retired: list[Slot] = []
        self.evictions = 0
        self._ids = itertools.count(1)
        self.worker: "Batcher | None" = None     # set by a running Batcher: model changes go through its thread

    def exclusive(self, change):
        """Run change() with the model to itself. With a running batcher it runs on the batcher's thread between
        two batches: a plain lock would let a busy generation loop starve a swap."""
        worker = self.worker
        if worker is not None and threading.current_thread() is not worker.thread:
            return worker.call(change)
        with self.model_lock:
            return change()

    def check_base(self, adapter: RegisteredAdapter) -> None:
        """Refuse an adapter trained on another base (one base per process)."""
        if (adapter.base_name, adapter.base_revision) != (self.base_name, self.base_revision):
            raise AdapterOpsError(
                f"{adapter.model_name} v{adapter.version} was trained on {adapter.base_name} ({adapter.base_revision}), "
                f"but this server's base is {self.base_name} ({self.base_revision}); serve it from another process.")
        ours = getattr(self.tokenizer, "chat_template", None) or ""
        if adapter.prompt_template != self.prompt_template or (adapter.chat_template and adapter.chat_template != ours):
            raise AdapterOpsError(f"{adapter.model_name} v{adapter.version} renders prompts with another template than "
                                  "the adapters already served; serve it from another process.")

    def attach(self, adapter: RegisteredAdapter, alias: str | None) -> Slot:
        """Point (name, alias) at this version (alias None: pin the version itself), loading it unless it is
        loaded already; retire what it replaces and, beyond max_loaded, the least recently used version."""
        self.check_base(adapter)
        key = (adapter.model_name, adapter.version)
        with self.routes_lock:
            slot = self.loaded.get(key)
        if slot is None:
            slot = Slot(adapter.model_name, adapter.version, f"a{next(self._ids)}_v{adapter.version}", adapter.corpus_digest)
            self.exclusive(lambda: self._load(adapter.adapter_dir, slot.adapter))
        with self.routes_lock:
            self.loaded[key] = slot
            self.last_used[key] = time.monotonic()
            if alias is None:
                self.pinned.add(key)
            else:
                self.aliases[(adapter.model_name, alias)] = adapter.version
            self._retire_unreferenced()
            self._evict_beyond_limit(keep=key)
        self.collect()
        return slot

    def detach(self, model_name: str, alias: str) -> None:
        """Stop serving (name, alias), e.g. when the alias was deleted in the registry."""
        with self.routes_lock:
            self.aliases.pop((model_name, alias), None)
            self._retire_unreferenced()
        self.collect()

    def _load(self, directory: str, name: str) -> None:
        from peft import PeftModel

        if hasattr(self.model, "peft_config"):
            self.model.load_adapter(directory, adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, directory, adapter_name=name).eval()
        install_gathered_lora(self.model)   # new LoRA layers (another adapter's target modules) get it too

    def _retire_unreferenced(self) -> None:
        held = {(name, version) for (name, _), version in self.aliases.items()} | self.pinned
        for key in [k for k in self.loaded if k not in held]:
            self.retired.append(self.loaded.pop(key))
            self.last_used.pop(key, None)

    def _evict_beyond_limit(self, keep: tuple[str, str]) -> None:
        """Retire least recently used versions until at most max_loaded stay routed (caller holds routes_lock)."""
        while len(self.loaded) > self.max_loaded:
            victim = min((k for k in self.loaded if k != keep), key=lambda k: self.last_used.get(k, 0.0))
            self.pinned.discard(victim)
            for route in [r for r, v in self.aliases.items() if (r[0], v) == victim]:
                del self.aliases[route]
            self.retired.append(self.loaded.pop(victim))
            self.last_used.pop(victim, None)
            self.evictions += 1

    def collect(self) -> None:
        """Delete retired adapters that no request holds any more."""
        with self.routes_lock:
            idle = [s for s in self.retired if s.inflight == 0]
            self.retired = [s for s in self.retired if s.inflight > 0]
        if idle:
            self.exclusive(lambda: self._delete(idle))

    def _delete(self, slots: list[Slot]) -> None:
        for slot in slots:
            if len(self.model.peft_config) > 1:   # peft keeps at least one adapter; an unused one costs little
                self.model.delete_adapter(slot.adapter)
            else:
                with self.routes_lock:
                    self.retired.append(slot)

    def _route(self, name: str, alias: str | None, version: str | None) -> Slot | None:
        if alias is not None:
            version = self.aliases.get((name, alias))
        return self.loaded.get((name, version)) if version is not None else None

    def acquire_loaded(self, model: str) -> Slot | None:
        """The slot that answers `model` if it is attached now (held until release()), else None; never blocks."""
        name, alias, version = parse_model(model)
        with self.routes_lock:
            slot = self._route(name, alias, version)
            return self._hold(slot) if slot is not None else None

    def acquire(self, model: str) -> Slot:
        """The slot that answers `model`, held until release(): a swap cannot delete it meanwhile.

        A version or alias of a served name that is not attached yet is loaded from the registry first
        (this blocks: call it off the event loop)."""
        name, alias, version = parse_model(model)
        with self.routes_lock:
            slot = self._route(name, alias, version)
            if slot is not None:
                return self._hold(slot)
        if self.resolver is None or name not in self.names:
            raise NotLoaded(f"The model {model!r} is not served here; GET /v1/models lists those that are.")
        with self.loading_lock:
            with self.routes_lock:
                slot = self._route(name, alias, version)
                if slot is not None:
                    return self._hold(slot)
            adapter = self.resolver(name, alias, version)
            if adapter is None:
                raise NotLoaded(f"The model {model!r} does not exist in the registry; GET /v1/models lists what is "
                                "served, `adapterops status` what is registered.")
            self.attach(adapter, alias)
            with self.routes_lock:
                slot = self._route(name, alias, adapter.version if alias is None else None)
                if slot is None:
                    raise NotLoaded(f"The model {model!r} was replaced while it loaded; retry.")
                return self._hold(slot)

    def _hold(self, slot: Slot) -> Slot:
        slot.inflight += 1
        self.last_used[(slot.model_name, slot.version)] = time.monotonic()
        return slot

    def release(self, slot: Slot) -> None:
        with self.routes_lock:
            slot.inflight -= 1

    def listing(self) -> list[dict]:
        """What is served: one entry per alias and per loaded version."""
        with self.routes_lock:
            rows = []
            for (name, alias), version in sorted(self.aliases.items()):
                slot = self.loaded[(name, version)]
                public = name if alias == "production" else f"{name}@{alias}"
                rows.append({"id": public, "model_name": name, "alias": alias, "version": version,
                             "corpus_digest": slot.corpus_digest})
            for (name, version), slot in sorted(self.loaded.items()):
                rows.append({"id": f"{name}/{version}", "model_name": name, "alias": None, "version": version,
                             "corpus_digest": slot.corpus_digest})
            return rows


@dataclass
class Job:
    """One choice of one request: decoded in a shared batch, streamed token by token through `listener`.

    listener(kind, value) runs on the worker thread: ("token", Token) for each token, then ("done", reason)
    with reason 'stop', 'length', 'cancelled' or 'error'. The future holds the finished Answer."""
    slot: Slot
    prompt_ids: list[int]
    max_new_tokens: int
    sampling: Sampling = field(default_factory=Sampling)
    listener: Callable[[str, object], None] | None = None
    future: Future = field(default_factory=Future)
    tokens: list[Token] = field(default_factory=list)
    reason: str | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    released: bool = False
    first_token_at: float | None = None     # perf_counter() when the first token was generated

    @property
    def adapter(self) -> str:
        return self.slot.adapter

    def cancel(self) -> None:
        """Stop generating this job (a client went away, or a stop sequence was found); its slot is freed."""
        self._cancel.set()
        self.future.cancel()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def emit(self, token: Token) -> None:
        if not self.tokens:
            self.first_token_at = time.perf_counter()
        self.tokens.append(token)
        if self.listener:
            self.listener("token", token)

    def done(self, reason: str) -> None:
        self.reason = reason
        if self.listener:
            self.listener("done", reason)


@dataclass(frozen=True)
class Answer:
    """A finished job: its token ids (with logprobs when asked) and why it ended."""
    tokens: list[Token]
    reason: str

    @property
    def new_tokens(self) -> int:
        return len(self.tokens)


class Batcher:
    """A bounded queue and one worker thread that decodes up to max_batch jobs at a time, whatever adapters,
    sampling settings and token limits they have (peft's mixed-adapter batch, one forward pass per step).
    Jobs join the running batch between two steps and leave it the step they end (continuous batching)."""

    def __init__(self, pool: AdapterPool, max_batch: int, max_queue: int, gather_seconds: float = 0.0):
        self.pool, self.max_batch, self.max_queue = pool, max_batch, max_queue
        self.gather_seconds = gather_seconds     # an idle worker waits this long for more jobs to prefill together
        self.pending: deque[Job] = deque()
        self.running: list[Job] = []
        self.changes: deque[tuple] = deque()    # model changes (attach, delete) run between batches
        self.cond = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="adapterops-batcher", daemon=True)

    def start(self) -> "Batcher":
        self.pool.worker = self
        self.thread.start()
        return self

    def call(self, change):
        """Run change() on the worker thread before its next batch; its result or exception."""
        future: Future = Future()
        with self.cond:
            if self.stopped:
                raise RuntimeError("the server is shutting down")
            self.changes.append((change, future))
            self.cond.notify()
        return future.result()

    def _run_changes(self) -> None:
        while True:
            with self.cond:
                if not self.changes:
                    return
                change, future = self.changes.popleft()
            try:
                with self.pool.model_lock:
                    future.set_result(change())
            except Exception as error:
                future.set_exception(error)

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        if self.pool.worker is self:
            self.pool.worker = None
        for change, future in self.changes:   # nobody runs them now: fail their callers instead of hanging
            future.set_exception(RuntimeError("the server is shutting down"))

    def depth(self) -> int:
        with self.cond:
            return len(self.pending)

    def load(self) -> tuple[dict, dict]:
        """({(model, version): queued jobs}, {(model, version): running jobs}) for the metrics."""
        with self.cond:
            queued, running = list(self.pending), list(self.running)
        count = lambda jobs: {k: sum(1 for j in jobs if (j.slot.model_name, j.slot.version) == k)
                              for k in {(j.slot.model_name, j.slot.version) for j in jobs}}
        return count(queued), count(running)

    def submit(self, job: Job) -> Future:
        """Queue a job whose slot was acquired from the pool; the worker releases it when the job ends.
        QueueFull when max_queue jobs are already waiting (the caller still holds the slot)."""
        with self.cond:
            if self.stopped:
                raise QueueFull("the server is shutting down; retry on another replica.")
            if len(self.pending) >= self.max_queue:
                raise QueueFull(f"{len(self.pending)} requests are queued (serve.max_queue); retry shortly.")
            self.pending.append(job)
            self.cond.notify()
        return job.future

    def _take(self, running: int) -> list[Job] | None:
        """Jobs to admit next to the `running` ones (waits while there is nothing to do); None once stopped."""
        with self.cond:
            while not self.pending and not self.changes and not self.stopped and not running:
                self.cond.wait()
            if not running and self.pending and self.gather_seconds:
                deadline = time.monotonic() + self.gather_seconds
                while len(self.pending) < self.max_batch and not self.stopped and not self.changes:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.cond.wait(left)
            if self.stopped:
                return None
            return [self.pending.popleft() for _ in range(min(self.max_batch - running, len(self.pending)))]

    def _finish(self, job: Job, error: Exception | None = None) -> None:
        if not job.released:
            job.released = True
            self.pool.release(job.slot)
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(Answer(list(job.tokens), job.reason or "stop"))

    def _wire(self, job: Job) -> None:
        """A job frees its slot the moment it ends, not when the whole batch does."""
        ended = job.done
        job.done = lambda reason: (ended(reason), self._finish(job))

    def _run(self) -> None:
        decoder = None
        while True:
            running = len(decoder.rows) if decoder else 0
            batch = self._take(running)
            if batch is None:
                break
            self._run_changes()
            if decoder is None or decoder.model is not self.pool.model:
                decoder = Decoder(self.pool.model, self.pool.tokenizer) if not running else decoder
            admitted = []
            for job in batch:
                if job.cancelled() or not job.future.set_running_or_notify_cancel():
                    job.done("cancelled")
                    self._finish(job)
                else:
                    self._wire(job)
                    admitted.append(job)
            with self.cond:
                self.running = list(decoder.rows) + admitted
            try:
                with self.pool.model_lock:
                    if admitted:
                        decoder.admit(admitted)
                    decoder.step()
            except Exception as error:   # a failed step fails its requests (500), never the server
                for job in decoder.clear() + admitted:
                    if job.reason is None:
                        job.reason = "error"
                        if job.listener:
                            job.listener("done", "error")
                    self._finish(job, error)
            with self.cond:
                self.running = list(decoder.rows)
            self.pool.collect()
        for job in (decoder.clear() if decoder else []):    # stopped with rows still running: end them
            job.done("cancelled")
