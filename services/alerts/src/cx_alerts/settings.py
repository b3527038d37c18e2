from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "alerts"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_ALERTS_", extra="ignore")

    service_name: str = "alerts"
    db_schema: str = SCHEMA
    port: int = 8003

    scheduler_enabled: bool = Field(default=True, description="run the SLA timer scheduler inside this process")
    scheduler_poll_s: float = Field(default=1.0, gt=0, description="longest sleep between two timer polls")
    signal_retention_days: int = Field(default=35, ge=1, description="how long recent signals are kept (dry runs)")
    dispatcher_enabled: bool = Field(default=True, description="deliver e-mails and webhooks from this process")
    dispatcher_poll_s: float = Field(default=1.0, gt=0)
    smtp_host: str | None = Field(default=None, description="SMTP relay for e-mail notifications (none: no e-mail)")
    smtp_port: int = 25
    smtp_from: str = "cx-alerts@localhost"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    clock_offset_s: float = Field(
        default=0.0, description="shift of the service clock against wall time (staging drills; tests use a hook)"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
