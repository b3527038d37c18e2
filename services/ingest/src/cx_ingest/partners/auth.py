"""Partner API authentication: `Authorization: ApiKey <key>` or `X-Api-Key: <key>`, then the rate limit."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import update

from cx_common.app import SessionDep
from cx_common.db import utcnow
from cx_common.errors import Problem
from cx_ingest.partners import apikeys, service
from cx_ingest.partners.mapping import FieldMapping
from cx_ingest.partners.models import ApiKey
from cx_ingest.partners.ratelimit import RateLimiter, retry_after_header

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class PartnerCaller:
    tenant_id: uuid.UUID
    partner_id: uuid.UUID
    key_id: uuid.UUID
    default_channel: str
    default_language: str
    mapping: FieldMapping | None


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": "ApiKey"})


def _presented_key(request: Request) -> str:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "apikey":
            key = value.strip()
    if not key:
        raise _unauthorized("missing API key (Authorization: ApiKey <key> or X-Api-Key)")
    return key


async def partner_caller(request: Request, session: SessionDep) -> PartnerCaller:
    key = _presented_key(request)
    prefix = apikeys.parse_prefix(key)
    found = await service.find_key(session, prefix) if prefix else None
    if found is None or not apikeys.matches(key, found[0].key_hash):
        raise _unauthorized("invalid API key")
    api_key, partner = found
    now = utcnow()
    if api_key.revoked_at is not None:
        raise _unauthorized("API key revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise _unauthorized("API key expired")
    if partner.status != "active":
        raise Problem(403, "partner is disabled")
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.take(partner.id, per_minute=partner.rate_limit_per_minute, burst=partner.rate_limit_burst)
    if wait > 0:
        raise Problem(
            429,
            f"rate limit of {partner.rate_limit_per_minute} requests/minute exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
    return PartnerCaller(
        tenant_id=partner.tenant_id,
        partner_id=partner.id,
        key_id=api_key.id,
        default_channel=partner.default_channel,
        default_language=partner.default_language,
        mapping=service.partner_mapping(partner),
    )


PartnerDep = Annotated[PartnerCaller, Depends(partner_caller)]
