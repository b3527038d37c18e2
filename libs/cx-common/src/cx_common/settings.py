"""pydantic-settings base class shared by every service.

Each service subclasses `ServiceSettings` with `env_prefix="CX_<NAME>_"`. Infrastructure URLs fall back to the
platform-wide `CX_DATABASE_URL` / `CX_NATS_URL` / `CX_NLP_GRPC_TARGET` so one variable can point every piece at
real infrastructure.
"""

from __future__ import annotations

import os
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "prod"]

# Values that ship in code for local development; refused when the environment is "prod".
DEV_SECRET = "dev-insecure-secret-change-me"  # noqa: S105 - the point is to detect it


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CX_", extra="ignore", env_file=None)

    service_name: str = "cx"
    environment: Environment = "dev"
    log_level: str = "INFO"
    log_json: bool = True
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str | None = Field(default=None, description="postgresql+asyncpg://role:pw@host:port/db")
    db_schema: str = Field(default="public", description="Postgres schema this service owns")
    db_pool_size: int = 10
    db_max_overflow: int = 10

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="larger bodies are refused with 413")
    max_upload_bytes: int = Field(default=1 << 30, ge=1024, description="limit for multipart/form-data uploads")

    nats_url: str | None = None
    outbox_listen: bool = Field(default=True, description="wake the outbox relay with LISTEN/NOTIFY, not only polls")
    outbox_poll_interval: float = Field(default=0.5, gt=0, description="seconds between outbox polls")
    events_stream: str = "CX"
    events_subject_prefix: str = "cx"

    gc_tuning: bool | None = Field(
        default=None,
        description="after startup, freeze the heap and collect young objects every 20 000 allocations instead of "
        "700 (cx_common.gctune); default: on, except with environment=test",
    )

    jwt_jwks_url: str | None = Field(default=None, description="JWKS of the gateway, for verifying tokens")
    jwt_issuer: str = "cx-gateway"
    jwt_audience: str = "cx"
    internal_secret: SecretStr = SecretStr(DEV_SECRET)

    @model_validator(mode="after")
    def _platform_fallbacks(self) -> Self:
        if self.database_url is None:
            self.database_url = os.environ.get("CX_DATABASE_URL")
        if self.nats_url is None:
            self.nats_url = os.environ.get("CX_NATS_URL")
        return self

    @model_validator(mode="after")
    def _gc_tuning_default(self) -> Self:
        if self.gc_tuning is None:
            self.gc_tuning = self.environment != "test"
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets_outside_dev(self) -> Self:
        if self.environment == "prod":
            for name, value in self:
                if isinstance(value, SecretStr) and value.get_secret_value() == DEV_SECRET:
                    prefix = self.model_config.get("env_prefix", "")
                    raise ValueError(f"{prefix}{name.upper()} must be set to a real secret when environment=prod")
        return self

    @property
    def is_dev(self) -> bool:
        return self.environment in ("dev", "test")
