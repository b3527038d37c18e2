from __future__ import annotations

from pathlib import Path

import pytest

from cx_nlp.models.api import Pipeline, load_pipeline
from cx_nlp.models.build import build_default_model, model_is_built

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="session")
def tiny() -> Pipeline:
    return load_pipeline(None)


@pytest.fixture(scope="session")
def default_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, built once per session (reuses <repo>/.cx/models/default when it is already built)."""
    shared = REPO / ".cx" / "models" / "default"
    if model_is_built(shared):
        return shared
    if shared.parent.is_dir():
        build_default_model(shared, progress=False)
        return shared
    return build_default_model(tmp_path_factory.mktemp("cx-model") / "default", progress=False)


@pytest.fixture(scope="session")
def default(default_model_dir: Path) -> Pipeline:
    return load_pipeline(default_model_dir)
