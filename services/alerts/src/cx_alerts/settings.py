from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "alerts"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_ALERTS_", extra="ignore")

    service_name: str = "alerts"
    db_schema: str = SCHEMA
    port: int = 8003


@lru_cache
def get_settings() -> Settings:
    return Settings()
