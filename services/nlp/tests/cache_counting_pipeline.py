"""A pipeline factory for the vector-cache metrics test (`CX_NLP_PIPELINE_FACTORY=cache_counting_pipeline:load`):
the tiny model, reporting 3 cache hits and 1 miss per Analyze or Embed batch as the default model's encoders would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cx_nlp.models.api import load_pipeline


class _Counting:
    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.batches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def analyze(self, *args: Any, **kwargs: Any) -> Any:
        self.batches += 1
        return self._inner.analyze(*args, **kwargs)

    def embed(self, *args: Any, **kwargs: Any) -> Any:
        self.batches += 1
        return self._inner.embed(*args, **kwargs)

    def vector_cache_counts(self) -> tuple[int, int]:
        return 3 * self.batches, self.batches


def load(model_dir: Path | None, **kwargs: Any) -> Any:
    return _Counting(load_pipeline(None, device=kwargs.get("device", "cpu"), dtype=kwargs.get("dtype", "float32")))
