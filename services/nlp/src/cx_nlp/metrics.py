"""Prometheus metrics.

Two processes, two registries:
- the BentoML workers (`/metrics` of the HTTP service, created through `bentoml.metrics` so they work under
  BentoML's multiprocess collector): texts per model batch, batch duration, model load time, readiness,
  codebooks; BentoML adds `bentoml_service_adaptive_batch_size` (requests per batch) and request counters.
- the gRPC adapter (`prometheus_client` default registry, served on `CX_NLP_GRPC_METRICS_PORT` when set):
  RPC latency per method and task, in-flight requests/texts (queue depth in front of the model), rejections.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

TEXT_COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # texts per RPC / per upstream request
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def batch_buckets(max_batch_size: int) -> list[float]:
    buckets: list[float] = []
    b = 1
    while b < max_batch_size:
        buckets.append(float(b))
        b *= 2
    buckets.append(float(max_batch_size))
    return buckets


class WorkerMetrics:
    """Metrics of one BentoML worker (import bentoml lazily: the adapter process never needs it)."""

    def __init__(self, max_batch_size: int) -> None:
        import bentoml

        m: Any = bentoml.metrics
        self.batch_texts = m.Histogram(
            name="cx_nlp_batch_texts",
            documentation="Texts per model call (adaptive batches after merging concurrent requests)",
            labelnames=["endpoint"],
            buckets=batch_buckets(max_batch_size),
        )
        self.batch_requests = m.Histogram(
            name="cx_nlp_batch_requests",
            documentation="HTTP requests merged into one model call",
            labelnames=["endpoint"],
            buckets=batch_buckets(max_batch_size),
        )
        self.batch_seconds = m.Histogram(
            name="cx_nlp_batch_duration_seconds",
            documentation="Model time per batch",
            labelnames=["endpoint"],
            buckets=LATENCY_BUCKETS,
        )
        self.task_seconds = m.Histogram(
            name="cx_nlp_task_duration_seconds",
            documentation="Model time per batch, by the task set of the batch",
            labelnames=["tasks"],
            buckets=LATENCY_BUCKETS,
        )
        self.model_load_seconds = m.Gauge(
            name="cx_nlp_model_load_seconds",
            documentation="Seconds to load the model (without warm-up)",
            labelnames=["model"],
        )
        self.warmup_seconds = m.Gauge(
            name="cx_nlp_model_warmup_seconds", documentation="Seconds of warm-up", labelnames=["model"]
        )
        self.ready = m.Gauge(name="cx_nlp_model_ready", documentation="1 once loaded and warmed", labelnames=[])
        self.codebooks_compiled = m.Counter(
            name="cx_nlp_codebooks_compiled",
            documentation="Codebooks compiled (embedded) by the worker",
            labelnames=[],
        )
        self.vector_cache = CacheLookups(
            m.Counter(
                name="cx_nlp_vector_cache_lookups",
                documentation="Sentence-vector cache lookups of the worker's transformer encoders, by result",
                labelnames=["result"],
            )
        )


class CacheLookups:
    """Counts the lookups of the pipeline's vector caches (`cx_nlp.models.vector_cache.VectorCache` keeps running
    totals; each `observe` adds what came since the last one)."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.seen = (0, 0)

    def observe(self, pipeline: object) -> None:
        counts = getattr(pipeline, "vector_cache_counts", None)
        if counts is None:
            return
        hits, misses = counts()
        new_hits, new_misses = hits - self.seen[0], misses - self.seen[1]
        if new_hits > 0:
            self.counter.labels(result="hit").inc(new_hits)
        if new_misses > 0:
            self.counter.labels(result="miss").inc(new_misses)
        self.seen = (hits, misses)


class QueueMetrics:
    """The worker's batch queue, reported by the greedy dispatcher (cx_nlp.batching): how long requests waited
    before their model call started, and how many are waiting."""

    def __init__(self) -> None:
        import bentoml

        m: Any = bentoml.metrics
        self.wait_seconds = m.Histogram(
            name="cx_nlp_batch_queue_seconds",
            documentation="Seconds a request waited in the worker's batch queue before its model call started",
            labelnames=[],
            buckets=LATENCY_BUCKETS,
        )
        self.depth = m.Gauge(
            name="cx_nlp_batch_queue_depth", documentation="Requests waiting in the worker's batch queue", labelnames=[]
        )


@lru_cache(maxsize=1)
def queue_metrics() -> QueueMetrics:
    """One set per process (the endpoints' dispatchers share it)."""
    return QueueMetrics()


# -- gRPC adapter ----------------------------------------------------------------------------------------
class AdapterMetrics:
    def __init__(self) -> None:
        self.rpc_seconds = Histogram(
            "cx_nlp_grpc_request_duration_seconds",
            "RPC latency by method",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
        )
        self.task_seconds = Histogram(
            "cx_nlp_grpc_task_duration_seconds",
            "Analyze latency by requested task (a request counts for each task it asked for)",
            ["task"],
            buckets=LATENCY_BUCKETS,
        )
        self.rpc_texts = Histogram(
            "cx_nlp_grpc_request_texts",
            "Texts per RPC",
            ["method"],
            buckets=TEXT_COUNT_BUCKETS,
        )
        self.upstream_items = Histogram(
            "cx_nlp_grpc_upstream_request_texts",
            "Texts per HTTP request to the model service (concurrent RPCs share requests)",
            ["path"],
            buckets=TEXT_COUNT_BUCKETS,
        )
        self.upstream_calls = Histogram(
            "cx_nlp_grpc_upstream_request_rpcs",
            "RPCs served by one HTTP request to the model service",
            ["path"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.inflight_requests = Gauge("cx_nlp_grpc_inflight_requests", "RPCs being processed")
        self.queue_depth = Gauge("cx_nlp_grpc_queue_depth", "Texts accepted and not yet answered (queue depth)")
        self.rejected = Counter("cx_nlp_grpc_rejected_total", "Calls refused before reaching the model", ["reason"])
        self.upstream_ready = Gauge("cx_nlp_grpc_upstream_ready", "1 while the BentoML service answers /readyz")


@lru_cache(maxsize=1)
def adapter_metrics() -> AdapterMetrics:
    """One set per process (the default registry refuses duplicates; tests run several adapters)."""
    return AdapterMetrics()
