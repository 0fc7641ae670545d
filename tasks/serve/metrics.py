"""Prometheus metrics of `adapterops serve` (GET /metrics), each labelled by registered model and version,
and the structured access log: one JSON line per request, no prompt text unless serve.log_prompts."""

from __future__ import annotations

import json
import logging

access_log = logging.getLogger("adapterops.serve.access")

UNKNOWN = "-"     # the label of requests refused before a model was resolved (bounded cardinality)
ENDPOINTS = {"/v1/chat/completions", "/v1/completions", "/v1/models"}   # any other path: "other" (bounded labels)
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServeMetrics:
    """The server's metrics in their own registry (several apps in one process never collide)."""

    def __init__(self, pool, batcher):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        labels = ("model", "version")
        self.requests = Counter("adapterops_requests", "Requests answered, by HTTP status.",
                                labels + ("endpoint", "status"), registry=self.registry)
        self.latency = Histogram("adapterops_request_seconds", "Time from request to the last byte.",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("adapterops_time_to_first_token_seconds", "Time from request to the first token.",
                              labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("adapterops_prompt_tokens", "Prompt tokens read.", labels, registry=self.registry)
        self.completion_tokens = Counter("adapterops_completion_tokens", "Completion tokens generated.", labels,
                                         registry=self.registry)
        self.registry.register(_LoadCollector(pool, batcher))

    def observe(self, exchange: "Exchange", path: str, status: int, seconds: float) -> None:
        labels = (exchange.model or UNKNOWN, exchange.version or UNKNOWN)
        endpoint = path if path in ENDPOINTS else "/v1/models/{id}" if path.startswith("/v1/models/") else "other"
        self.requests.labels(*labels, endpoint, str(status)).inc()
        self.latency.labels(*labels).observe(seconds)
        if exchange.first_token_seconds is not None:
            self.ttft.labels(*labels).observe(exchange.first_token_seconds)
        if exchange.prompt_tokens:
            self.prompt_tokens.labels(*labels).inc(exchange.prompt_tokens)
        if exchange.completion_tokens:
            self.completion_tokens.labels(*labels).inc(exchange.completion_tokens)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LoadCollector:
    """Queue depth, running requests and attached adapters, read from the engine at scrape time."""

    def __init__(self, pool, batcher):
        self.pool, self.batcher = pool, batcher

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        queued, running = self.batcher.load()
        for name, help_text, counts in (("adapterops_queue_depth", "Requests waiting for a batch.", queued),
                                        ("adapterops_running_requests", "Requests being generated.", running)):
            family = GaugeMetricFamily(name, help_text, labels=["model", "version"])
            for (model, version) in sorted(set(counts) | set(self._loaded())):
                family.add_metric([model, version], counts.get((model, version), 0))
            yield family
        loaded = GaugeMetricFamily("adapterops_adapter_loaded", "1 for each adapter version attached to the base.",
                                   labels=["model", "version"])
        for model, version in sorted(self._loaded()):
            loaded.add_metric([model, version], 1)
        yield loaded
        evicted = GaugeMetricFamily("adapterops_adapter_evictions", "Adapters retired to stay within serve.max_loaded.")
        evicted.add_metric([], self.pool.evictions)
        yield evicted

    def _loaded(self) -> list[tuple[str, str]]:
        with self.pool.routes_lock:
            return list(self.pool.loaded)


class Exchange:
    """What one request did, filled in by its handler and read by the access log and the metrics."""

    def __init__(self, method: str, path: str, client: str):
        self.method, self.path, self.client = method, path, client
        self.model: str | None = None      # the registered model name, once resolved
        self.version: str | None = None
        self.requested: str | None = None  # the `model` the client sent
        self.key: str | None = None        # the key holder's name, never the key
        self.stream = False
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.first_token_seconds: float | None = None
        self.prompt: str | None = None     # only with serve.log_prompts
        self.error: str | None = None

    def log_line(self, status: int, seconds: float) -> str:
        fields = {"event": "request", "method": self.method, "path": self.path, "status": status,
                  "model": self.requested, "served": f"{self.model}/{self.version}" if self.model else None,
                  "key": self.key, "stream": self.stream, "prompt_tokens": self.prompt_tokens,
                  "completion_tokens": self.completion_tokens, "seconds": round(seconds, 4),
                  "ttft_seconds": None if self.first_token_seconds is None else round(self.first_token_seconds, 4),
                  "client": self.client, "error": self.error}
        if self.prompt is not None:
            fields["prompt"] = self.prompt
        return json.dumps({k: v for k, v in fields.items() if v is not None and v != ""}, ensure_ascii=True)
