"""Loading the configured pipeline (in-process for the CLI, per worker for the BentoML service)."""

from __future__ import annotations

import importlib
import inspect
import sys
import time
from pathlib import Path
from typing import Any

from cx_nlp.models.api import Pipeline
from cx_nlp.settings import NlpSettings

# Texts used to warm a freshly loaded pipeline up (both languages, every task, short and long).
WARMUP_TEXTS = [
    "排队等了四十分钟，服务员态度还很差。",
    "The delivery was late but support fixed it quickly, thanks!",
    "價格合理，下次還會再來。",
    "I want to cancel my subscription, this is the third time the app crashed. " * 4,
]


class ModelNotBuiltError(RuntimeError):
    pass


def _resolve_loader(settings: NlpSettings) -> Any:
    if settings.pipeline_factory:
        module_name, _, attr = settings.pipeline_factory.partition(":")
        return getattr(importlib.import_module(module_name), attr or "load_pipeline")
    models = importlib.import_module("cx_nlp.models")
    loader = getattr(models, "load_pipeline", None)
    if loader is None:  # the models package does not re-export it
        loader = importlib.import_module("cx_nlp.models.api").load_pipeline
    return loader


def model_path(settings: NlpSettings) -> Path | None:
    """None for the tiny in-code model, else the model directory (which must hold a built model)."""
    if settings.model == "tiny":
        return None
    return settings.resolved_model_dir()


def load_configured_pipeline(settings: NlpSettings, *, device: str | None = None) -> tuple[Pipeline, float]:
    """Load (and warm up) the pipeline the settings ask for; returns it with the load time in seconds."""
    path = model_path(settings)
    if path is not None:
        try:
            from cx_nlp.models.build import model_is_built

            built = model_is_built(path)
        except ImportError:
            built = path.exists()
        if not built:
            raise ModelNotBuiltError(f"no built model in {path}; run `cx-nlp build-model` (or use --tiny)")
    if path is not None or settings.torch_threads or "torch" in sys.modules:
        import torch

        torch.set_num_threads(settings.resolved_torch_threads())
    loader = _resolve_loader(settings)
    kwargs: dict[str, Any] = {"device": device or settings.device, "dtype": settings.resolved_dtype()}
    params = inspect.signature(loader).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if settings.task_models and ("task_models" in params or takes_any):
        kwargs["task_models"] = dict(settings.task_models)
    if "encoder_cache" in params or takes_any:
        kwargs["encoder_cache"] = settings.encoder_cache
    if settings.hub_download and ("hub_download" in params or takes_any):
        kwargs["hub_download"] = True
    if settings.batch_tokens is not None and ("batch_tokens" in params or takes_any):
        kwargs["batch_tokens"] = settings.batch_tokens
    started = time.perf_counter()
    pipeline: Pipeline = loader(path, **kwargs)
    return pipeline, time.perf_counter() - started


def warm_up(pipeline: Pipeline) -> None:
    """Run every no-codebook task and an embedding once so the first real request is not the slow one."""
    from cx_nlp.models.api import TASKS

    pipeline.analyze(list(WARMUP_TEXTS), frozenset(TASKS - {"aspects"}))
    pipeline.embed(list(WARMUP_TEXTS))
