from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "ingest"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_INGEST_", extra="ignore")

    service_name: str = "ingest"
    db_schema: str = SCHEMA
    port: int = 8002


@lru_cache
def get_settings() -> Settings:
    return Settings()
