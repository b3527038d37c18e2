import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cx_ingest.feedback.schemas import Channel
from cx_ingest.partners.mapping import FieldMapping

Language = Literal["zh-Hans", "zh-Hant", "en"]
PartnerKind = Literal["crm", "hotline", "chat", "email", "review", "social", "store", "other"]


class PartnerCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    kind: PartnerKind = "crm"
    default_language: Language = "zh-Hans"
    default_channel: Channel = "crm"
    rate_limit_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    rate_limit_burst: int = Field(default=100, ge=1, le=1_000_000)


class PartnerUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    default_language: Language | None = None
    default_channel: Channel | None = None
    status: Literal["active", "disabled"] | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    rate_limit_burst: int | None = Field(default=None, ge=1, le=1_000_000)


class PartnerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    kind: str
    default_language: str
    default_channel: str
    status: str
    rate_limit_per_minute: int
    rate_limit_burst: int
    field_mapping: FieldMapping | None
    created_at: dt.datetime


class ApiKeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    rotate_overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="Rotation: the partner's other active keys stop working after this many seconds",
    )


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    partner_id: uuid.UUID
    name: str
    prefix: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None


class ApiKeyIssued(ApiKeyRead):
    key: str = Field(description="The API key. Shown only in this response; store it now.")


class MappingTest(BaseModel):
    mapping: FieldMapping | None = Field(default=None, description="Mapping to try; the saved one when omitted")
    sample: dict[str, Any]


class MappingTestResult(BaseModel):
    ok: bool
    mapped: dict[str, Any]
    errors: list[dict[str, str]]
