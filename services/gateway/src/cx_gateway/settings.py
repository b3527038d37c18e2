from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from cx_common.settings import DEV_SECRET, ServiceSettings

SCHEMA = "gateway"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CX_GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    db_schema: str = SCHEMA
    port: int = 8000

    # identity
    access_token_ttl_s: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_s: int = Field(default=14 * 86_400, ge=60)
    key_encryption_secret: SecretStr = Field(
        default=SecretStr(DEV_SECRET), description="encrypts the private signing keys stored in the gateway schema"
    )
    key_rotation_days: int = Field(default=30, ge=1, description="a signing key older than this is rotated")
    key_retire_after_s: int = Field(default=86_400, description="retired keys stay in the JWKS this long")
    password_time_cost: int = Field(default=3, ge=1, description="argon2id iterations")
    password_memory_kib: int = Field(default=65_536, ge=1024, description="argon2id memory in KiB")
    password_parallelism: int = Field(default=4, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_s: int = Field(default=900, ge=1)

    # OIDC single sign-on into one tenant (disabled while oidc_issuer is empty)
    oidc_issuer: str = Field(default="", description="e.g. https://login.example.com/realms/acme")
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_tenant: str = Field(default="", description="slug of the tenant SSO users log into")
    oidc_redirect_url: str = Field(default="", description="default: <this host>/console/sso/callback")
    oidc_scopes: str = "openid email profile"

    # public API
    survey_url: str = Field(
        default="http://127.0.0.1:8001",
        validation_alias=AliasChoices("survey_url", "CX_GATEWAY_SURVEY_URL", "CX_SURVEY_URL"),
    )
    ingest_url: str = Field(
        default="http://127.0.0.1:8002",
        validation_alias=AliasChoices("ingest_url", "CX_GATEWAY_INGEST_URL", "CX_INGEST_URL"),
    )
    alerts_url: str = Field(
        default="http://127.0.0.1:8003",
        validation_alias=AliasChoices("alerts_url", "CX_GATEWAY_ALERTS_URL", "CX_ALERTS_URL"),
    )
    nlp_grpc_target: str = Field(
        default="127.0.0.1:50051",
        validation_alias=AliasChoices("nlp_grpc_target", "CX_GATEWAY_NLP_GRPC_TARGET", "CX_NLP_GRPC_TARGET"),
    )
    upstream_timeout_s: float = Field(default=10.0, gt=0)
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0)
    nlp_timeout_s: float = Field(default=10.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=600, ge=1, description="requests per minute per caller")
    rate_limit_burst: int = Field(default=120, ge=1)

    # analytics read model: events applied per transaction by the consumer
    analytics_batch_size: int = Field(default=200, ge=1, le=1000)

    # console
    public_url: str = Field(default="", description="external base URL printed by seed-demo")


@lru_cache
def get_settings() -> Settings:
    return Settings()
