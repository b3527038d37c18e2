from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from cx_common.settings import ServiceSettings

SCHEMA = "survey"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_SURVEY_", extra="ignore")

    service_name: str = "survey"
    db_schema: str = SCHEMA
    port: int = 8001


@lru_cache
def get_settings() -> Settings:
    return Settings()
