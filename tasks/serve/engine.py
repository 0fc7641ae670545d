"""The serving engine: one base model with named peft adapters that can be swapped while requests run,
and a micro-batching queue that generates requests for different adapters in one mixed batch."""

from __future__ import annotations

import itertools
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from adapterops.errors import AdapterOpsError
from tasks.model.generate import generate


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
    adapter is deleted once no request holds it, so requests in flight finish on the version they started on.
    """

    def __init__(self, model, tokenizer, base_name: str, base_revision: str, prompt_template: str):
        self.model, self.tokenizer = model, tokenizer     # a PeftModel once the first adapter is attached
        self.base_name, self.base_revision, self.prompt_template = base_name, base_revision, prompt_template
        self.model_lock = threading.RLock()     # generation, attach and delete never overlap
        self.routes_lock = threading.Lock()
        self.loaded: dict[tuple[str, str], Slot] = {}
        self.aliases: dict[tuple[str, str], str] = {}
        self.retired: list[Slot] = []
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
        if adapter.prompt_template != self.prompt_template:
            raise AdapterOpsError(f"{adapter.model_name} v{adapter.version} renders prompts with another template than "
                                  "the adapters already served; serve it from another process.")

    def attach(self, adapter: RegisteredAdapter, alias: str) -> Slot:
        """Point (name, alias) at this version, loading it unless it is loaded already; retire what it replaces."""
        self.check_base(adapter)
        key = (adapter.model_name, adapter.version)
        with self.routes_lock:
            slot = self.loaded.get(key)
        if slot is None:
            slot = Slot(adapter.model_name, adapter.version, f"a{next(self._ids)}_v{adapter.version}", adapter.corpus_digest)
            self.exclusive(lambda: self._load(adapter.adapter_dir, slot.adapter))
        with self.routes_lock:
            self.loaded[key] = slot
            self.aliases[(adapter.model_name, alias)] = adapter.version
            self._retire_unreferenced()
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

    def _retire_unreferenced(self) -> None:
        held = {(name, version) for (name, _), version in self.aliases.items()}
        for key in [k for k in self.loaded if k not in held]:
            self.retired.append(self.loaded.pop(key))

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

    def acquire(self, model: str) -> Slot:
        """The slot that answers `model`, held until release(): a swap cannot delete it meanwhile."""
        name, alias, version = parse_model(model)
        with self.routes_lock:
            if alias is not None:
                version = self.aliases.get((name, alias))
            slot = self.loaded.get((name, version)) if version is not None else None
            if slot is None:
                raise NotLoaded(f"The model {model!r} is not served here; GET /v1/models lists those that are.")
            slot.inflight += 1
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
    slot: Slot
    prompt_ids: list[int]
    max_new_tokens: int
    future: Future = field(default_factory=Future)


class Batcher:
    """A bounded queue and one worker thread that generates up to max_batch requests at a time, whatever
    adapters they ask for (peft's mixed-adapter batch); jobs with the same max_new_tokens go together."""

    def __init__(self, pool: AdapterPool, max_batch: int, max_queue: int):
        self.pool, self.max_batch, self.max_queue = pool, max_batch, max_queue
        self.pending: deque[Job] = deque()
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

    def submit(self, slot: Slot, prompt_ids: list[int], max_new_tokens: int) -> Future:
        """Queue one generation of a slot acquired from the pool; the worker releases it when done.
        QueueFull when max_queue jobs are already waiting (the caller still holds the slot)."""
        job = Job(slot, prompt_ids, max_new_tokens)
        with self.cond:
            if len(self.pending) >= self.max_queue:
                raise QueueFull(f"{len(self.pending)} requests are queued (serve.max_queue); retry shortly.")
            self.pending.append(job)
            self.cond.notify()
        return job.future

    def _take(self) -> list[Job] | None:
        with self.cond:
            while not self.pending and not self.changes and not self.stopped:
                self.cond.wait()
            if self.stopped:
                return None
            if not self.pending:
                return []
            first = self.pending[0]
            batch = [j for j in self.pending if j.max_new_tokens == first.max_new_tokens][:self.max_batch]
            taken = set(map(id, batch))
            self.pending = deque(j for j in self.pending if id(j) not in taken)
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._run_changes()
            cancelled = [j for j in batch if not j.future.set_running_or_notify_cancel()]
            batch = [j for j in batch if j not in cancelled]
            outcome: list | Exception = []
            if batch:
                try:
                    with self.pool.model_lock:
                        outcome = generate(self.pool.model, self.pool.tokenizer, [j.prompt_ids for j in batch],
                                           batch[0].max_new_tokens, adapter=[j.slot.adapter for j in batch],
                                           batch_size=self.max_batch)
                except Exception as error:   # a failed batch fails its requests (500), never the server
                    outcome = error
            for job in cancelled + batch:
                self.pool.release(job.slot)
            for i, job in enumerate(batch):
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome[i])
            self.pool.collect()
