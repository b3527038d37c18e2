import os
from functools import lru_cache
from typing import Self

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "ingest"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_INGEST_", extra="ignore")

    service_name: str = "ingest"
    db_schema: str = SCHEMA
    port: int = 8002

    # NLP service (gRPC); falls back to the platform-wide CX_NLP_GRPC_TARGET.
    nlp_grpc_target: str | None = None
    nlp_timeout_s: float = 30.0

    # Analysis worker (a background task of the service process).
    analysis_enabled: bool = True
    analysis_batch_size: int = 64
    analysis_concurrency: int = 3  # micro-batches in flight per process (lanes of the worker)
    analysis_linger_s: float = 0.2  # wait this long for a batch to fill up before sending a partial one
    analysis_poll_interval_s: float = 1.0
    analysis_lease_s: float = 120.0  # a claim older than this is taken over by another worker
    analysis_embeddings: bool = True  # also store an embedding per item (NLP Embed; failures are not fatal)
    analysis_max_attempts: int = 5  # attempts that failed because of the item itself (not an NLP outage)
    analysis_backoff_base_s: float = 1.0
    analysis_backoff_max_s: float = 60.0
    breaker_failure_threshold: int = 3
    breaker_cooldown_s: float = 10.0

    # Scheduled clustering of unmatched feedback (0 = only on demand).
    clustering_interval_s: float = 6 * 3600

    # Partner API: its hot path runs on a plain asyncpg pool of this many connections (next to SQLAlchemy's).
    fast_pool_size: int = 10

    # Partner API defaults.
    default_rate_limit_per_minute: int = 600
    max_batch_items: int = 1000
    idempotency_ttl_hours: float = 72.0  # Idempotency-Keys are remembered this long
    import_dir: str | None = None  # where uploaded files wait to be streamed (must survive restarts to resume)
    max_import_bytes: int = 2 * 1024**3

    @model_validator(mode="after")
    def _nlp_fallback(self) -> Self:
        if self.nlp_grpc_target is None:
            self.nlp_grpc_target = os.environ.get("CX_NLP_GRPC_TARGET")
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
