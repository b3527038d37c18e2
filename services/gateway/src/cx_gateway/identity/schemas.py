import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cx_gateway.identity.roles import Role

Email = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
Locale = Literal["zh-Hans", "zh-Hant", "en"]


class LoginRequest(BaseModel):
    tenant: str = Field(min_length=1, max_length=64, description="tenant slug")
    email: Email
    password: str = Field(min_length=1, max_length=1024)
    org_unit_id: uuid.UUID | None = Field(default=None, description="pick one of several memberships")


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class MembershipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    org_unit_id: uuid.UUID
    role: str
    is_primary: bool


class Me(BaseModel):
    user_id: str
    tenant_id: uuid.UUID
    role: str
    org_unit_id: str | None
    scopes: list[str]
    display_name: str | None = None
    email: str | None = None
    locale: str | None = None
    memberships: list[MembershipRead] = Field(default_factory=list)


class UserCreate(BaseModel):
    email: Email
    display_name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=10, max_length=1024)
    role: Role
    org_unit_id: uuid.UUID
    locale: Locale = "zh-Hans"


class UserUpdate(BaseModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = Field(default=None, min_length=10, max_length=1024)
    locale: Locale | None = None
    active: bool | None = None


class MembershipCreate(BaseModel):
    org_unit_id: uuid.UUID
    role: Role
    is_primary: bool = False


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str
    locale: str
    active: bool
    memberships: list[MembershipRead]
    created_at: dt.datetime


class ApiTokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role = "viewer"
    org_unit_id: uuid.UUID | None = Field(default=None, description="defaults to the caller's org unit")
    scopes: list[str] | None = Field(default=None, description="subset of the role's scopes; default all of them")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiTokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    role: str
    org_unit_id: uuid.UUID
    scopes: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    created_at: dt.datetime


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(description="shown once; store it now")


class TenantCreate(BaseModel):
    slug: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=200)
    default_language: Locale = "zh-Hans"
    root_org_name: str = Field(default="HQ", min_length=1, max_length=200)
    owner_email: Email
    owner_password: str = Field(min_length=10, max_length=1024)
    owner_name: str = Field(default="Owner", min_length=1, max_length=200)


class KeyRotated(BaseModel):
    kid: str
