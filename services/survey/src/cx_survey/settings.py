import os
from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "survey"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_SURVEY_", extra="ignore")

    service_name: str = "survey"
    db_schema: str = SCHEMA
    port: int = 8001
    max_body_bytes: int = Field(default=256 * 1024, description="larger request bodies are refused with 413")
    public_rate_per_minute: int = Field(
        default=300, ge=0, description="public endpoints: requests per minute per client address and link; 0: off"
    )
    public_rate_burst: int = Field(default=60, ge=1, description="public endpoints: burst per address and link")
    public_rate_address_factor: int = Field(
        default=5, ge=1, description="an address may spend this many links' worth of requests in all"
    )
    trust_forwarded_for: bool = Field(
        default=False, description="take the client address from X-Forwarded-For (only behind a trusted proxy)"
    )
    public_base_url: str | None = Field(
        default=None, description="base URL of respondent links; CX_SURVEY_URL if unset"
    )
    submit_pool_size: int = Field(
        default=20,
        ge=1,
        description="connections of the asyncpg pool that stores submitted responses (the rest of the service uses "
        "the SQLAlchemy pool: db_pool_size + db_max_overflow)",
    )
    scheduler_enabled: bool = True
    scheduler_poll_seconds: float = 1.0
    scheduler_batch: int = 50
    scheduler_max_attempts: int = 5
    smtp_host: str | None = Field(default=None, description="unset: mail goes to the outgoing_mail sink table")
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "survey@cx.local"
    webhook_timeout_seconds: float = 5.0

    @model_validator(mode="after")
    def _public_url(self) -> "Settings":
        if self.public_base_url is None:
            self.public_base_url = os.environ.get("CX_SURVEY_URL") or f"http://{self.host}:{self.port}"
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
