"""Who is calling: a gateway-issued JWT (header or console cookie) or an API token (`cxat_…`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select

from cx_common.app import get_runtime
from cx_common.auth import JWTVerifier, Principal
from cx_common.db import utcnow
from cx_common.errors import Problem
from cx_gateway.identity.models import ApiToken
from cx_gateway.identity.roles import scope_allowed
from cx_gateway.identity.secrets import token_hash

ACCESS_COOKIE = "cx_access"
API_TOKEN_PREFIX = "cxat_"  # noqa: S105 - a prefix, not a secret


def raw_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if cookie := request.cookies.get(ACCESS_COOKIE):
        return cookie
    raise Problem(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})


async def _api_token_principal(request: Request, token: str) -> Principal:
    runtime = get_runtime(request)
    assert runtime.sessions is not None
    async with runtime.sessions() as session, session.begin():
        row = (
            await session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
        ).scalar_one_or_none()
        now = utcnow()
        if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            raise Problem(401, "invalid API token", headers={"WWW-Authenticate": "Bearer"})
        row.last_used_at = now
        claims = {
            "sub": f"api-token:{row.id}",
            "tid": str(row.tenant_id),
            "role": row.role,
            "org": str(row.org_unit_id),
            "scope": row.scopes,
            "api_token_id": str(row.id),
        }
        return Principal(
            user_id=claims["sub"],
            tenant_id=row.tenant_id,
            role=row.role,
            org_unit_id=str(row.org_unit_id),
            scopes=frozenset(row.scopes.split()),
            claims=claims,
        )


async def gateway_principal(request: Request) -> Principal:
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = raw_token(request)
    if token.startswith(API_TOKEN_PREFIX):
        principal = await _api_token_principal(request, token)
    else:
        verifier: JWTVerifier | None = getattr(request.app.state, "jwt_verifier", None)
        if verifier is None:
            raise Problem(503, "authentication is not configured")
        principal = await verifier.verify(token)
    request.state.principal = principal
    return principal


GatewayPrincipal = Annotated[Principal, Depends(gateway_principal)]


def require(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    async def dependency(principal: GatewayPrincipal) -> Principal:
        missing = [s for s in scopes if not scope_allowed(principal.scopes, s)]
        if missing:
            raise Problem(403, f"missing scope: {', '.join(missing)}", missing_scopes=missing)
        return principal

    return dependency


def user_uuid(principal: Principal) -> uuid.UUID | None:
    try:
        return uuid.UUID(principal.user_id)
    except ValueError:
        return None
