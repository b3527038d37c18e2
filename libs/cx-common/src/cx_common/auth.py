"""Verify gateway-issued JWTs (keys from its JWKS) and check scopes.

Claims: `sub` (user id), `tid` (tenant id), `role`, `org` (org unit id), `scope` (space separated).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request

from cx_common.errors import Problem

ALGORITHMS = ["RS256", "ES256", "EdDSA"]


@dataclass(frozen=True)
class Principal:
    user_id: str
    tenant_id: uuid.UUID
    role: str
    org_unit_id: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    def has(self, scope: str) -> bool:
        if scope in self.scopes:
            return True
        domain = scope.split(":", 1)[0]
        return f"{domain}:*" in self.scopes or "*" in self.scopes


class JWTVerifier:
    """Verifies tokens against a JWKS document, refetched when an unknown key id appears (key rotation)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks: dict[str, Any] | None = None,
        refresh_interval: float = 300.0,
    ) -> None:
        if jwks_url is None and jwks is None:
            raise ValueError("JWTVerifier needs jwks_url or jwks")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.refresh_interval = refresh_interval
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        if jwks is not None:
            self._load(jwks)

    def _load(self, jwks: dict[str, Any]) -> None:
        keyset = jwt.PyJWKSet.from_dict(jwks)
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._fetched_at = time.monotonic()

    async def _refresh(self) -> None:
        if self.jwks_url is None:
            return
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(self.jwks_url)
            response.raise_for_status()
            self._load(response.json())

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Problem(401, "malformed bearer token", headers={"WWW-Authenticate": "Bearer"}) from exc
        kid = header.get("kid", "")
        stale = time.monotonic() - self._fetched_at > self.refresh_interval
        if kid not in self._keys or stale:
            try:
                await self._refresh()
            except httpx.HTTPError as exc:
                if kid not in self._keys:
                    raise Problem(503, "cannot fetch signing keys from the gateway") from exc
        key = self._keys.get(kid)
        if key is None:
            raise Problem(401, "token signed by an unknown key", headers={"WWW-Authenticate": "Bearer"})
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "tid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Problem(401, "token expired", headers={"WWW-Authenticate": "Bearer"}) from exc
        except jwt.PyJWTError as exc:
            raise Problem(401, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}) from exc
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        tenant = uuid.UUID(str(claims["tid"]))
    except (KeyError, ValueError) as exc:
        raise Problem(401, "token has no valid tenant claim") from exc
    scope = claims.get("scope", "")
    return Principal(
        user_id=str(claims["sub"]),
        tenant_id=tenant,
        role=str(claims.get("role", "viewer")),
        org_unit_id=claims.get("org"),
        scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(scope),
        claims=claims,
    )


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


async def current_principal(request: Request) -> Principal:
    verifier: JWTVerifier | None = getattr(request.app.state, "jwt_verifier", None)
    if verifier is None:
        raise Problem(503, "authentication is not configured on this service")
    return await verifier.verify(bearer_token(request))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_scopes(*scopes: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """FastAPI dependency: the caller must hold every scope (`domain:*` or `*` also match)."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        missing = [s for s in scopes if not principal.has(s)]
        if missing:
            raise Problem(403, f"missing scope: {', '.join(missing)}", missing_scopes=missing)
        return principal

    return dependency
