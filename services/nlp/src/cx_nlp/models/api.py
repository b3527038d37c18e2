"""The contract between the model code (cx_nlp.models) and the serving code (service.py, grpc_server.py).

Serving never imports a concrete model; it calls `load_pipeline(...)` and the methods of `Pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

TASKS = frozenset({"language", "sentiment", "aspects", "intents", "keywords", "needs"})
INTENTS = (
    "purchase_intent",
    "hesitation",
    "churn_risk",
    "complaint",
    "praise",
    "inquiry",
    "regulator_threat",
    "media_threat",
    "legal_threat",
    "safety_risk",
    "compliance_risk",
)


@dataclass(frozen=True)
class CodebookNodeSpec:
    id: str
    parent_id: str  # "" for level 1
    level: int  # 1..3
    names: dict[str, str]  # language tag -> name
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()


@dataclass
class AspectMatch:
    path: list[str]  # [level1, level2, level3] names in the codebook's primary language
    node_id: str
    opinion: str
    start: int  # code-point offsets into the analysed text, end exclusive
    end: int
    polarity: str  # negative | neutral | positive
    confidence: float
    matched_by: str  # keyword | embedding | keyword+embedding


@dataclass
class Prediction:
    language: str = "other"  # zh-Hans | zh-Hant | en | other
    language_confidence: float = 0.0
    sentiment: tuple[float, float, float] | None = None  # (negative, neutral, positive) probabilities
    aspects: list[AspectMatch] = field(default_factory=list)
    unmatched: bool = False
    intents: dict[str, float] = field(default_factory=dict)
    keywords: list[tuple[str, float]] = field(default_factory=list)
    need_layer: str | None = None  # pain | itch | delight
    need_confidence: float = 0.0


@dataclass
class ClusterResult:
    members: list[int]  # indices into the input texts
    representatives: list[int]
    keywords: list[tuple[str, float]]


class CompiledCodebook(Protocol):
    fingerprint: str
    node_count: int


class Pipeline(Protocol):
    name: str
    version: str
    embedding_dim: int
    device: str
    dtype: str

    def info(self) -> dict[str, object]: ...

    def analyze(
        self,
        texts: list[str],
        tasks: frozenset[str],
        codebook: CompiledCodebook | None = None,
        max_keywords: int = 10,
    ) -> list[Prediction]: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...  # (n, d) float32, L2-normalised

    def cluster(
        self,
        texts: list[str],
        embeddings: np.ndarray,
        *,
        min_cluster_size: int = 3,
        max_clusters: int = 0,
        representatives: int = 3,
    ) -> tuple[list[ClusterResult], list[int]]: ...  # clusters ranked by size, noise indices

    def compile_codebook(
        self, nodes: list[CodebookNodeSpec], primary_language: str = "zh-Hans"
    ) -> CompiledCodebook: ...


def load_pipeline(
    model_dir: Path | None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    task_models: dict[str, str] | None = None,
    encoder_cache: int | None = None,
    hub_download: bool = False,
    batch_tokens: int | None = None,
) -> Pipeline:
    """`model_dir=None` -> the tiny in-code model (unit tests); otherwise a directory made by `cx-nlp build-model`.

    `task_models` (default: the JSON object in `CX_NLP_TASK_MODELS`) points tasks at local Hugging Face
    directories: keys `sentiment`, `sentiment_zh`, `sentiment_en` (sequence classifiers) and `embedding` (encoder).
    A value may also be a hub id (`org/name` or `org/name@revision`), downloaded only when `hub_download` is true.
    `device` is cpu or cuda (falls back to cpu with a warning when no GPU is visible); `dtype` is float32, bfloat16,
    float16, int8 (smoothed int8 Linear layers, CPU) or auto. `encoder_cache`: sentence vectors each transformer
    encoder keeps (`cx_nlp.models.vector_cache.VectorCache`; 0 = none, None = its default). `batch_tokens`:
    padded tokens per transformer forward pass (0 = no limit, None = `cx_nlp.models.hf.batch_token_budget`'s default
    for the device).
    """
    from cx_nlp.models.pipeline import load_default, tiny_pipeline

    if model_dir is None:
        return tiny_pipeline(device=device, dtype=dtype)
    return load_default(
        Path(model_dir),
        device=device,
        dtype=dtype,
        task_models=task_models,
        encoder_cache=encoder_cache,
        hub_download=hub_download,
        batch_tokens=batch_tokens,
    )
