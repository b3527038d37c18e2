"""Peer: the same pipeline behind BentoML with default settings (no batching config, one call per request)."""

from __future__ import annotations

from typing import Any

import bentoml

from cx_nlp.runtime import load_configured_pipeline
from cx_nlp.settings import get_settings
from cx_nlp.wire import encode_vector


@bentoml.service
class PlainNlp:
    def __init__(self) -> None:
        self.pipeline, _ = load_configured_pipeline(get_settings())

    @bentoml.api  # type: ignore[untyped-decorator]
    def analyze(self, text: str, tasks: list[str]) -> dict[str, Any]:
        prediction = self.pipeline.analyze([text], frozenset(tasks))[0]
        return {"sentiment": prediction.sentiment}

    @bentoml.api  # type: ignore[untyped-decorator]
    def embed(self, text: str) -> str:
        return encode_vector(self.pipeline.embed([text])[0])
