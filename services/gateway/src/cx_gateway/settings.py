from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "gateway"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    db_schema: str = SCHEMA
    port: int = 8000


@lru_cache
def get_settings() -> Settings:
    return Settings()
