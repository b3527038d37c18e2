"""Partner API authentication: `Authorization: ApiKey <key>` or `X-Api-Key: <key>`, then the rate limit."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from fastapi import Depends, Request

from cx_common.db import utcnow
from cx_common.errors import Problem
from cx_ingest.partners import apikeys
from cx_ingest.partners.mapping import FieldMapping
from cx_ingest.partners.ratelimit import RateLimiter, retry_after_header
from cx_ingest.pg import ConnDb, Db, Row, Sql, pg_pool, unavailable_as_503
from cx_ingest.privacy.service import TenantPrivacy, privacy_of

LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class PartnerCaller:
    tenant_id: uuid.UUID
    partner_id: uuid.UUID
    key_id: uuid.UUID
    default_channel: str
    default_language: str
    mapping: FieldMapping | None
    privacy: TenantPrivacy  # the tenant's PII settings, read with the key (one query per request, not two)
    # The request's Idempotency-Key and its stored answer (request_hash, status_code, response) or None, read with
    # the key too (`feedback.idempotency`): one round trip less per request.
    idempotency_key: str | None = None
    stored: Row | None = None

    def stored_answer(self, key: str | None) -> Row | Literal[False] | None:
        """The stored answer of `key` as read with the API key (None: not stored), False if it was not looked up."""
        return self.stored if key is not None and key == self.idempotency_key else False


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


_FIND = Sql(
    "SELECT k.id, k.key_hash, k.revoked_at, k.expires_at, k.last_used_at, p.id, p.tenant_id, p.status, "
    "p.rate_limit_per_minute, p.rate_limit_burst, p.default_channel, p.default_language, "
    "CAST(p.field_mapping AS text), ps.keep_raw, CAST(ps.custom_patterns AS text), "
    "ik.request_hash, ik.status_code, ik.response "
    "FROM api_keys k JOIN partners p ON p.id = k.partner_id "
    "LEFT JOIN privacy_settings ps ON ps.tenant_id = p.tenant_id "
    "LEFT JOIN idempotency_keys ik ON ik.partner_id = p.id AND ik.key = CAST(:idempotency_key AS text) "
    "WHERE k.prefix = CAST(:prefix AS text)"
)
_TOUCH = Sql("UPDATE api_keys SET last_used_at = CAST(:now AS timestamptz) WHERE id = CAST(:id AS uuid)")


@lru_cache(maxsize=1024)
def _mapping(raw: str) -> FieldMapping:
    return FieldMapping.model_validate_json(raw)


async def authenticate(db: Db, key: str, limiter: RateLimiter, idempotency_key: str | None = None) -> PartnerCaller:
    """The partner behind an API key (prefix lookup, SHA-256 compared in constant time), after the rate limit; with
    the stored answer of `idempotency_key`, if any."""
    prefix = apikeys.parse_prefix(key)
    rows = await db.fetch(_FIND, prefix=prefix, idempotency_key=idempotency_key) if prefix else []
    if not rows or not apikeys.matches(key, rows[0][1]):
        raise _unauthorized("invalid API key")
    key_id, _, revoked_at, expires_at, last_used_at, partner_id, tenant_id, status, per_minute, burst = rows[0][:10]
    default_channel, default_language, mapping, keep_raw, patterns = rows[0][10:15]
    stored_hash, stored_status, stored_response = rows[0][15:]
    now = utcnow()
    if revoked_at is not None:
        raise _unauthorized("API key revoked")
    if expires_at is not None and expires_at <= now:
        raise _unauthorized("API key expired")
    if status != "active":
        raise Problem(403, "partner is disabled")
    wait = limiter.take(partner_id, per_minute=per_minute, burst=burst)
    if wait > 0:
        raise Problem(
            429,
            f"rate limit of {per_minute} requests/minute exceeded",
            headers={"Retry-After": retry_after_header(wait)},
        )
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        await db.execute(_TOUCH, now=now, id=key_id)
    return PartnerCaller(
        tenant_id=tenant_id,
        partner_id=partner_id,
        key_id=key_id,
        default_channel=default_channel,
        default_language=default_language,
        mapping=_mapping(mapping) if mapping and mapping != "null" else None,
        privacy=privacy_of(keep_raw, patterns),
        idempotency_key=idempotency_key,
        stored=None if stored_hash is None else (stored_hash, stored_status, stored_response),
    )


async def partner_caller(request: Request) -> PartnerCaller:
    key = _presented_key(request)
    with unavailable_as_503():
        async with pg_pool(request).acquire() as conn:
            limiter = request.app.state.rate_limiter
            return await authenticate(ConnDb(conn), key, limiter, request.headers.get("idempotency-key"))


PartnerDep = Annotated[PartnerCaller, Depends(partner_caller)]
