"""Settings of the NLP service (env prefix `CX_NLP_`): BentoML HTTP service, gRPC adapter and CLI.

The HTTP service reads them when `cx_nlp.service` is imported (BentoML's batching config is fixed at
decoration time), so the CLI turns its flags into `CX_NLP_*` environment variables before `bentoml serve`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings
from cx_nlp.hardware import auto_cpu_dtype, default_cpu_workers, default_torch_threads

Device = Literal["cpu", "cuda"]
Dtype = Literal["auto", "float32", "bfloat16", "float16", "int8"]


class NlpSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_NLP_", extra="ignore", env_file=None)

    service_name: str = "cx-nlp"

    # -- model -------------------------------------------------------------------------------------------
    model: Literal["default", "tiny"] = Field(
        default="default", description="default = the built model in model_dir; tiny = the in-code test model"
    )
    model_dir: Path | None = Field(default=None, description="where `cx-nlp build-model` puts the default model")
    device: Device = "cpu"
    dtype: Dtype = Field(
        default="auto",
        description="auto = bfloat16 on CUDA and on CPUs with native bfloat16 (AVX512-BF16/AMX), else float32; "
        "int8 = smoothed int8 Linear layers (CPU)",
    )
    hub_download: bool = Field(
        default=False,
        description="let task_models name Hugging Face hub ids (org/name[@revision]) and download them; off, only "
        "local directories load (air-gapped installs)",
    )
    encoder_cache: int = Field(
        default=4096,
        ge=0,
        description="sentence vectors each transformer encoder keeps for texts seen again (Analyze then Embed of "
        "the same text, repeated short feedback); 0 = off",
    )
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="intra-op threads per worker; 0 = usable CPUs - 1 with one worker, else usable CPUs / workers",
    )
    workers: int = Field(
        default=0,
        ge=0,
        description="BentoML workers; 0 = one per usable CPU up to 4 on CPU (container quota counted), one per "
        "visible GPU on CUDA",
    )
    task_models: dict[str, str] = Field(
        default_factory=dict,
        description='per-task local Hugging Face model overrides, e.g. {"sentiment": "/models/my-sentiment"}',
    )
    pipeline_factory: str | None = Field(
        default=None, description="advanced: 'module:function' used instead of cx_nlp.models.load_pipeline"
    )

    # -- batching and limits -----------------------------------------------------------------------------
    max_batch_size: int = Field(default=64, ge=2, description="largest batch the model sees (texts)")
    batch_tokens: int | None = Field(
        default=None,
        ge=0,
        description="padded tokens per transformer forward pass (a batch runs in several passes past it); unset = "
        "1024 on CPU, where larger passes outgrow the caches, and no limit on CUDA; 0 = no limit",
    )
    max_latency_ms: int = Field(default=10_000, ge=10, description="BentoML adaptive batching latency budget")
    batching: Literal["greedy", "cork"] = Field(
        default="greedy",
        description="when a batch is released: greedy = everything queued as soon as the model is free (see "
        "cx_nlp.batching); cork = BentoML's own rule, which holds requests back for company",
    )
    max_items_per_request: int = Field(default=512, ge=1)
    max_text_length: int = Field(default=8_000, ge=16, description="characters (code points) per text")
    overlong_text: Literal["truncate", "reject"] = Field(
        default="truncate", description="truncate (and flag truncated=true) or reject with INVALID_ARGUMENT"
    )
    max_concurrent_requests: int = Field(default=64, ge=1, description="in-flight RPCs before RESOURCE_EXHAUSTED")
    max_inflight_items: int = Field(default=4_096, ge=1, description="in-flight texts before RESOURCE_EXHAUSTED")
    default_max_keywords: int = Field(default=8, ge=1)
    max_keywords: int = Field(default=50, ge=1)
    codebook_cache_size: int = Field(default=256, ge=1, description="compiled codebooks kept per worker")
    codebook_registry_size: int = Field(default=4_096, ge=1, description="registered codebooks kept by the adapter")
    max_codebook_nodes: int = Field(default=5_000, ge=1)
    cluster_min_size: int = Field(default=3, ge=2)
    cluster_representatives: int = Field(default=3, ge=1)

    # -- processes ---------------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 3000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    upstream_url: str = Field(default="http://127.0.0.1:3000", description="the BentoML service the adapter calls")
    upstream_timeout_s: float = Field(default=60.0, gt=0, description="per call, when the caller set no deadline")
    upstream_connections: int = Field(default=64, ge=1)
    upstream_inflight: int = Field(
        default=-1,
        ge=-1,
        description="HTTP requests the adapter keeps in flight per batchable endpoint; RPCs arriving while all are "
        "busy share the next one (cx_nlp.coalescing). -1 = auto (workers + 1), 0 = one request per RPC",
    )
    upstream_hold: float = Field(
        default=0.8,
        ge=0.0,
        le=1.0,
        description="the last free request slot is used once the oldest request in flight has run this fraction of "
        "the recent request time (its texts would wait behind it at the model anyway); 0 = at once",
    )
    grpc_metrics_port: int = Field(default=0, ge=0, description="Prometheus port of the gRPC adapter; 0 = off")
    health_poll_interval_s: float = Field(default=1.0, gt=0)
    shutdown_grace_s: float = Field(default=15.0, ge=0)
    max_message_mb: int = Field(default=64, ge=1)

    def resolved_model_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else Path.cwd() / ".cx" / "models" / "default"

    def resolved_dtype(self) -> str:
        if self.dtype != "auto":
            return self.dtype
        if self.device == "cuda":
            return "bfloat16"
        return "float32" if self.model == "tiny" else auto_cpu_dtype()  # the tiny model computes in NumPy float32

    def resolved_torch_threads(self) -> int:
        return self.torch_threads or default_torch_threads(self.resolved_workers())

    def resolved_upstream_inflight(self) -> int:
        """Enough requests to keep every worker busy with one queued behind it (auto), or as set."""
        return self.resolved_workers() + 1 if self.upstream_inflight < 0 else self.upstream_inflight

    def resolved_workers(self) -> int:
        if self.workers:
            return self.workers
        if self.device == "cuda":
            try:
                import torch

                return max(1, torch.cuda.device_count())
            except Exception:  # torch without CUDA
                return 1
        return default_cpu_workers()


@lru_cache(maxsize=1)
def get_settings() -> NlpSettings:
    return NlpSettings()


def settings_env(**values: object) -> dict[str, str]:
    """`CX_NLP_*` variables for the given settings (None values are left out)."""
    env: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        env[f"CX_NLP_{key.upper()}"] = str(value)
    return env


def apply_env(**values: object) -> None:
    os.environ.update(settings_env(**values))
    get_settings.cache_clear()
