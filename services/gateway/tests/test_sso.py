"""OIDC single sign-on against an in-process OpenID provider (FastAPI on uvicorn, ephemeral port): discovery,
authorization code with PKCE, client authentication, RS256 ID token with nonce, JWKS."""

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse

from cx_gateway.main import create_app
from cx_gateway.settings import SCHEMA, Settings
from cx_local.ports import free_port
from cx_local.pytest_plugin import app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]
CLIENT_ID = "cx-console"
CLIENT_SECRET = "provider-client-secret"


class Provider:
    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "idp-1"
        self.login_email = "store.manager@demo.cx"
        self.email_verified = True
        self.codes: dict[str, dict[str, str]] = {}
        self.app = FastAPI()
        app = self.app

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
            return {"keys": [public]}

        @app.get("/authorize")
        async def authorize(request: Request) -> RedirectResponse:
            q = request.query_params
            assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
            assert q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "nonce": q["nonce"],
                "challenge": q["code_challenge"],
                "redirect_uri": q["redirect_uri"],
                "email": self.login_email,
            }
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

        @app.post("/token")
        async def token(
            request: Request,
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(),
        ) -> JSONResponse:
            auth = request.headers.get("authorization", "")
            form = await request.form()
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if auth != f"Basic {basic}" and form.get("client_secret") != CLIENT_SECRET:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(code, None)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=").decode()
            if grant is None or grant["challenge"] != challenge or grant["redirect_uri"] != redirect_uri:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": issuer,
                "aud": CLIENT_ID,
                "sub": f"idp|{grant['email']}",
                "email": grant["email"],
                "email_verified": self.email_verified,
                "nonce": grant["nonce"],
                "iat": now,
                "exp": now + 300,
            }
            id_token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
            return JSONResponse({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token})


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    port = free_port()
    idp = Provider(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(idp.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    yield idp
    server.should_exit = True
    await task


@pytest.fixture
def gateway_overrides(provider) -> dict[str, Any]:
    return {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_tenant": "demo",
    }


async def sso_round_trip(gw) -> httpx.Response:
    start = await gw.client.get("/console/sso/login")
    assert start.status_code == 303, start.text
    async with httpx.AsyncClient() as browser:  # the user's browser at the identity provider
        at_idp = await browser.get(start.headers["location"])
    assert at_idp.status_code == 302
    back = urlparse(at_idp.headers["location"])
    assert back.path == "/console/sso/callback"
    return await gw.client.get(f"{back.path}?{back.query}")


async def test_sso_logs_in_an_existing_user_with_their_scope(gw, demo, provider):
    page = await gw.client.get("/console/login?lang=en")
    assert "Sign in with single sign-on" in page.text
    done = await sso_round_trip(gw)
    assert done.status_code == 303 and done.headers["location"] == "/console", done.text
    home = await gw.client.get("/console")
    assert home.status_code == 200 and "上海南京路店" in home.text and "华南区" not in home.text


async def test_sso_refuses_unknown_unverified_and_replayed(gw, demo, provider):
    provider.login_email = "stranger@demo.cx"
    assert (await sso_round_trip(gw)).status_code == 401
    provider.login_email, provider.email_verified = "owner@demo.cx", False
    assert (await sso_round_trip(gw)).status_code == 401
    provider.email_verified = True
    # a callback with a forged state (or without the flow cookie) is refused
    start = await gw.client.get("/console/sso/login")
    async with httpx.AsyncClient() as browser:
        at_idp = await browser.get(start.headers["location"])
    query = parse_qs(urlparse(at_idp.headers["location"]).query)
    forged = await gw.client.get(f"/console/sso/callback?code={query['code'][0]}&state=forged")
    assert forged.status_code == 401
    gw.client.cookies.clear()
    no_cookie = await gw.client.get(f"/console/sso/callback?code={query['code'][0]}&state={query['state'][0]}")
    assert no_cookie.status_code == 401


async def test_sso_disabled_without_configuration(cx_service_db, cx_nats_url, cx_events):
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = Settings(
        environment="test",
        database_url=db.url,
        nats_url=cx_nats_url,
        events_stream=cx_events.stream,
        events_subject_prefix=cx_events.subject_prefix,
        log_json=False,
    )
    async with app_client(create_app(settings)) as client:
        assert (await client.get("/console/sso/login")).status_code == 404
        assert "single sign-on" not in (await client.get("/console/login?lang=en")).text
