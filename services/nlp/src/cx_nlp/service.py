"""The BentoML HTTP service: one model per worker, adaptive batching across concurrent requests.

Run with `cx-nlp serve-http` (which runs `bentoml serve cx_nlp.service:NlpModel`). Batching, workers and
device come from `CX_NLP_*` settings read at import time.

Endpoints (POST, JSON): /analyze and /embed are batchable (BentoML merges concurrent requests into one model
call of at most max_batch_size texts); /cluster, /register_codebook and /info are plain. /readyz is 200 only
after the model is loaded and warmed up; /livez while the process lives; /metrics for Prometheus.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Any

import bentoml
import structlog
from pydantic import BaseModel, Field, model_validator

from cx_nlp import batching
from cx_nlp.codebooks import LruCache, fingerprint, to_specs, validate_nodes
from cx_nlp.http_problems import ProblemJsonMiddleware
from cx_nlp.metrics import WorkerMetrics
from cx_nlp.models.api import TASKS, CompiledCodebook, Pipeline
from cx_nlp.runtime import load_configured_pipeline, warm_up
from cx_nlp.settings import get_settings
from cx_nlp.wire import CODEBOOK_UNKNOWN, encode_vector, prediction_to_json

log = structlog.stdlib.get_logger("cx_nlp.service")
settings = get_settings()
WORKERS = settings.resolved_workers()
GREEDY_BATCHING = batching.install(settings.batching)


class CodebookNodeIn(BaseModel):
    id: str
    parent_id: str = ""
    level: int
    names: dict[str, str]
    keywords: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class CodebookIn(BaseModel):
    nodes: list[CodebookNodeIn]
    primary_language: str = "zh-Hans"

    @model_validator(mode="after")
    def _valid_tree(self) -> CodebookIn:
        # A codebook attached to an Analyze item is checked like a registered one: a bad tree is the caller's 400,
        # not a failure of the whole adaptive batch it would be compiled in.
        validate_nodes([n.model_dump() for n in self.nodes], max_nodes=get_settings().max_codebook_nodes)
        return self


class AnalyzeItem(BaseModel):
    text: str
    tasks: list[str]
    codebook: str = ""  # fingerprint of a codebook the worker may have compiled already
    codebook_spec: CodebookIn | None = None  # attached when a worker answered codebook_unknown
    max_keywords: int = 8


class NotReadyError(bentoml.exceptions.ServiceUnavailable):
    pass


def _service_config() -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "cx-nlp",
        "workers": WORKERS,
        "threads": 1,  # one model call at a time per worker; batching provides the parallelism
        "traffic": {"timeout": int(max(settings.upstream_timeout_s, settings.max_latency_ms / 1000) + 30)},
        "logging": {"access": {"enabled": False}},
    }
    if settings.device == "cuda":
        config["resources"] = {"gpu": WORKERS}
    return config


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> bool:
    """Have Linux send this process SIGTERM when its parent dies. BentoML's arbiter forks the workers; when the
    arbiter is killed outright (SIGKILL, the OOM killer) a worker would live on as an orphan that holds the model's
    memory and the listening socket. Returns whether the request was made (False off Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True


@bentoml.service(**_service_config())
class NlpModel:
    def __init__(self) -> None:
        die_with_parent()  # constructed in each worker process, never in the arbiter
        self.settings = get_settings()
        self.metrics = WorkerMetrics(self.settings.max_batch_size)
        self.metrics.ready.set(0)
        self.pipeline: Pipeline | None = None
        self.load_error: str | None = None
        self.codebooks: LruCache[str, CompiledCodebook] = LruCache(self.settings.codebook_cache_size)
        self._compile_lock = threading.Lock()
        self._ready = threading.Event()
        # Load in the background: /livez answers while a large model loads, /readyz turns 200 when it is done.
        threading.Thread(target=self._load, name="cx-nlp-load", daemon=True).start()

    # -- lifecycle ------------------------------------------------------------------------------------------
    def _device(self) -> str:
        if self.settings.device != "cuda":
            return "cpu"
        from bentoml._internal.context import server_context

        # one worker per GPU: worker i (1-based) takes GPU i-1 of the GPUs BentoML made visible
        index = max(0, int(server_context.worker_index or 1) - 1)
        return f"cuda:{index}"

    def _load(self) -> None:
        try:
            pipeline, load_s = load_configured_pipeline(self.settings, device=self._device())
            self.metrics.model_load_seconds.labels(model=self.settings.model).set(load_s)
            started = time.perf_counter()
            warm_up(pipeline)
            warm_s = time.perf_counter() - started
            self.metrics.warmup_seconds.labels(model=self.settings.model).set(warm_s)
            self.pipeline = pipeline
            self._ready.set()
            self.metrics.ready.set(1)
            log.info("model_ready", model=pipeline.name, version=pipeline.version, load_s=load_s, warmup_s=warm_s)
        except Exception as exc:
            self.load_error = f"{exc.__class__.__name__}: {exc}"
            log.exception("model_load_failed")

    def __is_ready__(self) -> bool:
        return self._ready.is_set()

    def __is_alive__(self) -> bool:
        return self.load_error is None

    def _pipeline(self) -> Pipeline:
        if self.pipeline is None:
            raise NotReadyError(self.load_error or "model is loading")
        return self.pipeline

    def _compile(self, fp: str, spec: CodebookIn) -> CompiledCodebook:
        pipeline = self._pipeline()
        with self._compile_lock:
            cached = self.codebooks.get(fp)
            if cached is not None:
                return cached
            nodes = [n.model_dump() for n in spec.nodes]
            compiled = pipeline.compile_codebook(to_specs(nodes), spec.primary_language)
            self.codebooks.put(fp, compiled)
            self.metrics.codebooks_compiled.inc()
            return compiled

    # -- batchable endpoints --------------------------------------------------------------------------------
    @bentoml.api(  # type: ignore[untyped-decorator]
        batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms
    )
    def analyze(self, items: list[AnalyzeItem]) -> list[dict[str, Any]]:
        pipeline = self._pipeline()
        self.metrics.batch_texts.labels(endpoint="analyze").observe(len(items))
        started = time.perf_counter()
        limit = self.settings.max_text_length
        # Codebooks that arrived with this batch are compiled first; then items are grouped by what they ask.
        for item in items:
            if item.codebook and item.codebook_spec is not None and self.codebooks.get(item.codebook) is None:
                self._compile(item.codebook, item.codebook_spec)
        results: list[dict[str, Any] | None] = [None] * len(items)
        groups: dict[tuple[frozenset[str], str, int], list[int]] = {}
        for i, item in enumerate(items):
            tasks = frozenset(t for t in item.tasks if t in TASKS)
            if item.codebook and self.codebooks.get(item.codebook) is None:
                results[i] = {"error": CODEBOOK_UNKNOWN}
                continue
            if not item.codebook:
                tasks = tasks - {"aspects"}
            groups.setdefault((tasks, item.codebook, item.max_keywords), []).append(i)
        for (tasks, fp, max_keywords), indices in groups.items():
            codebook = self.codebooks.get(fp) if fp else None
            texts = [items[i].text[:limit] for i in indices]
            t0 = time.perf_counter()
            predictions = pipeline.analyze(texts, tasks, codebook, max_keywords=max_keywords)
            self.metrics.task_seconds.labels(tasks=",".join(sorted(tasks))).observe(time.perf_counter() - t0)
            for i, prediction in zip(indices, predictions, strict=True):
                results[i] = prediction_to_json(prediction, truncated=len(items[i].text) > limit)
        self.metrics.batch_seconds.labels(endpoint="analyze").observe(time.perf_counter() - started)
        self.metrics.vector_cache.observe(pipeline)
        return [r if r is not None else {"error": "internal"} for r in results]

    @bentoml.api(  # type: ignore[untyped-decorator]
        batchable=True, max_batch_size=settings.max_batch_size, max_latency_ms=settings.max_latency_ms
    )
    def embed(self, texts: list[str]) -> list[str]:
        """L2-normalised float32 vectors, base64 of little-endian bytes (compact and exact)."""
        pipeline = self._pipeline()
        self.metrics.batch_texts.labels(endpoint="embed").observe(len(texts))
        started = time.perf_counter()
        limit = self.settings.max_text_length
        vectors = pipeline.embed([t[:limit] for t in texts])
        self.metrics.batch_seconds.labels(endpoint="embed").observe(time.perf_counter() - started)
        self.metrics.vector_cache.observe(pipeline)
        return [encode_vector(v) for v in vectors]

    # -- plain endpoints ------------------------------------------------------------------------------------
    @bentoml.api  # type: ignore[untyped-decorator]
    def cluster(
        self, texts: list[str], min_cluster_size: int = 0, max_clusters: int = 0, representatives: int = 0
    ) -> dict[str, Any]:
        import numpy as np

        pipeline = self._pipeline()
        limit = self.settings.max_text_length
        cut = [t[:limit] for t in texts]
        started = time.perf_counter()
        step = self.settings.max_batch_size
        chunks = [pipeline.embed(cut[i : i + step]) for i in range(0, len(cut), step)]
        embeddings = np.concatenate(chunks) if chunks else np.zeros((0, pipeline.embedding_dim), dtype=np.float32)
        clusters, noise = pipeline.cluster(
            cut,
            embeddings,
            min_cluster_size=min_cluster_size or self.settings.cluster_min_size,
            max_clusters=max_clusters,
            representatives=representatives or self.settings.cluster_representatives,
        )
        self.metrics.batch_seconds.labels(endpoint="cluster").observe(time.perf_counter() - started)
        return {
            "clusters": [
                {
                    "members": [int(i) for i in c.members],
                    "representatives": [int(i) for i in c.representatives],
                    "keywords": [[str(t), float(w)] for t, w in c.keywords],
                }
                for c in clusters
            ],
            "noise": [int(i) for i in noise],
        }

    @bentoml.api  # type: ignore[untyped-decorator]
    def register_codebook(self, nodes: list[CodebookNodeIn], primary_language: str = "zh-Hans") -> dict[str, Any]:
        """Validate + compile (embed) a codebook in this worker; answers its fingerprint."""
        raw = [n.model_dump() for n in nodes]
        try:
            validate_nodes(raw, max_nodes=self.settings.max_codebook_nodes)
        except ValueError as exc:
            raise bentoml.exceptions.InvalidArgument(str(exc)) from exc
        fp = fingerprint(raw, primary_language)
        self._compile(fp, CodebookIn(nodes=nodes, primary_language=primary_language))
        return {"fingerprint": fp, "node_count": len(raw)}

    @bentoml.api  # type: ignore[untyped-decorator]
    def info(self) -> dict[str, Any]:
        pipeline = self._pipeline()
        details = dict(pipeline.info())
        components = details.get("components")
        return {
            "name": pipeline.name,
            "version": pipeline.version,
            "device": pipeline.device,
            "dtype": pipeline.dtype,
            "embedding_dimension": int(pipeline.embedding_dim),
            "tasks": sorted(TASKS),
            "languages": list(details.get("languages", ["zh-Hans", "zh-Hant", "en"])),  # type: ignore[call-overload]
            "components": {str(k): str(v) for k, v in dict(components).items()} if components else {},  # type: ignore[call-overload]
            "max_batch_size": self.settings.max_batch_size,
            "max_text_length": self.settings.max_text_length,
            "max_items_per_request": self.settings.max_items_per_request,
            "workers": WORKERS,
            "codebooks_cached": len(self.codebooks),
        }


NlpModel.add_asgi_middleware(ProblemJsonMiddleware)  # type: ignore[attr-defined]  # bentoml.service wraps the class
