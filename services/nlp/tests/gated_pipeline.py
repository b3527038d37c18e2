"""A pipeline factory for the readiness test (`CX_NLP_PIPELINE_FACTORY=gated_pipeline:load`): the tiny model,
whose loading waits for the file `$CX_NLP_TEST_GATE.load` and whose first call (the warm-up) waits for
`$CX_NLP_TEST_GATE.warm`, so the test can look at the service in each phase. Bounded waits (120 s)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cx_nlp.models.api import Pipeline, load_pipeline


def _wait(name: str) -> None:
    gate = Path(os.environ["CX_NLP_TEST_GATE"] + name)
    deadline = time.monotonic() + 120
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class _Gated:
    def __init__(self, inner: Pipeline) -> None:
        self._inner = inner
        self._warmed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def analyze(self, *args: Any, **kwargs: Any) -> Any:
        if not self._warmed:
            _wait(".warm")
            self._warmed = True
        return self._inner.analyze(*args, **kwargs)


def load(model_dir: Path | None, **kwargs: Any) -> Any:
    _wait(".load")
    return _Gated(load_pipeline(None, device=kwargs.get("device", "cpu"), dtype=kwargs.get("dtype", "float32")))
