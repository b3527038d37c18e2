"""OIDC single sign-on (authorization code + PKCE) with authlib's httpx client; the ID token is verified against
the provider's JWKS (issuer, audience, expiry, nonce). Users are matched by e-mail inside the configured tenant —
SSO never creates accounts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

from cx_common.errors import Problem
from cx_common.logging import get_logger
from cx_gateway.settings import Settings

log = get_logger(__name__)
STATE_TTL_S = 600


class OidcClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self._metadata: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKSet | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.settings.oidc_client_id and self.settings.oidc_tenant)

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.oidc_client_id,
            client_secret=self.settings.oidc_client_secret.get_secret_value() or None,
            scope=self.settings.oidc_scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10.0,
        )

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            try:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    response = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                    response.raise_for_status()
                    self._metadata = dict(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                raise Problem(502, "the identity provider is unreachable") from exc
        return self._metadata

    async def start(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """(authorization URL, flow state to keep in a signed cookie)."""
        meta = await self.metadata()
        verifier, nonce = generate_token(48), generate_token(24)
        client = self._client(redirect_uri)
        try:
            url, state = client.create_authorization_url(
                meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
            )
        finally:
            await client.aclose()
        return url, {"state": state, "nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri}

    async def finish(self, code: str, flow: dict[str, str]) -> dict[str, Any]:
        """Exchange the code and return the verified ID token claims."""
        meta = await self.metadata()
        client = self._client(flow["redirect_uri"])
        try:
            token = await client.fetch_token(
                meta["token_endpoint"], code=code, code_verifier=flow["verifier"], grant_type="authorization_code"
            )
        except Exception as exc:  # authlib raises OAuthError / httpx errors
            log.warning("oidc_token_exchange_failed", error=type(exc).__name__)
            raise Problem(401, "single sign-on failed") from exc
        finally:
            await client.aclose()
        id_token = token.get("id_token")
        if not id_token:
            raise Problem(401, "single sign-on failed")
        return await self._verify(str(id_token), flow["nonce"])

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        meta = await self.metadata()
        kid = jwt.get_unverified_header(id_token).get("kid")
        if self._jwks is None or kid not in {k.key_id for k in self._jwks.keys}:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.get(meta["jwks_uri"])
                response.raise_for_status()
                self._jwks = jwt.PyJWKSet.from_dict(response.json())
        key = next((k for k in self._jwks.keys if k.key_id == kid), None)
        if key is None:
            raise Problem(401, "single sign-on failed")
        try:
            claims = jwt.decode(
                id_token,
                key=key.key,
                algorithms=["RS256", "ES256", "EdDSA"],
                audience=self.settings.oidc_client_id,
                issuer=meta.get("issuer", self.issuer),
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Problem(401, "single sign-on failed") from exc
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Problem(401, "single sign-on failed")
        return dict(claims)


def sign_flow(flow: dict[str, str], secret: str) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({**flow, "at": int(time.time())}).encode()).decode()
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def read_flow(cookie: str | None, secret: str) -> dict[str, str] | None:
    if not cookie or "." not in cookie:
        return None
    payload, mac = cookie.rsplit(".", 1)
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        flow = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(flow, dict) or time.time() - int(flow.get("at", 0)) > STATE_TTL_S:
        return None
    return {k: str(v) for k, v in flow.items()}
