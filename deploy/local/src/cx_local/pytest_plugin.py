"""pytest fixtures for every test suite of the monorepo: real Postgres and real NATS JetStream, started once per
test session from the same code as `cx-local`, with per-test isolation (a fresh database cloned from a migrated
template; a private JetStream stream and subject prefix).

Set CX_TEST_DATABASE_URL (a superuser URL) or CX_TEST_NATS_URL to use existing servers instead.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cx_local.nats import EmbeddedNats
from cx_local.ports import free_port
from cx_local.postgres import EmbeddedPostgres
from cx_local.provision import create_database, drop_database, provision_schema, role_name

TEST_ROLE_PASSWORD = "cx-test-password"  # noqa: S105 - roles exist only in throwaway test clusters


@dataclass(frozen=True)
class PgServer:
    admin_url: str  # superuser URL to the maintenance database

    def database_url(self, database: str, *, user: str | None = None, password: str | None = None) -> str:
        scheme, rest = self.admin_url.split("://", 1)
        creds, host_db = rest.split("@", 1)
        host = host_db.rsplit("/", 1)[0]
        if user is not None:
            creds = f"{user}:{password}"
        return f"{scheme}://{creds}@{host}/{database}"


@dataclass(frozen=True)
class ServiceDatabase:
    """A fresh database for one test, with the service's schema migrated and its least-privilege role."""

    name: str
    schema: str
    url: str  # as the service's own role
    admin_url: str  # superuser, same database (for assertions only)


@dataclass(frozen=True)
class EventsNamespace:
    stream: str
    subject_prefix: str


async def eventually(
    check: Callable[[], Awaitable[Any]],
    limit: float = 20.0,
    *,
    interval: float = 0.05,
    what: str = "condition not reached",
) -> Any:
    """Poll `check()` until it returns something truthy and return that; AssertionError(`what`) once `limit`
    seconds have passed (a generous upper bound for asynchronous work, never a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(interval)


def offline_app(service: str) -> Any:
    """A service's FastAPI app built with settings that reach nothing (a closed port for the database and NATS):
    enough to read its routes and its OpenAPI document, with no server started."""
    main = importlib.import_module(f"cx_{service}.main")
    settings = importlib.import_module(f"cx_{service}.settings").Settings(
        environment="test",
        database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:9/none",
        nats_url="nats://127.0.0.1:9",
    )
    return main.create_app(settings)


def service_settings(db: ServiceDatabase, nats_url: str, events: EventsNamespace) -> dict[str, object]:
    """The settings every service app needs in a test: its database (as its own role), NATS and the test's events
    namespace, plain-text logs; pass them with the service's own extras to its `Settings`."""
    return {
        "environment": "test",
        "database_url": db.url,
        "nats_url": nats_url,
        "events_stream": events.stream,
        "events_subject_prefix": events.subject_prefix,
        "log_json": False,
    }


@pytest.fixture(scope="session")
def cx_pg() -> Iterator[PgServer]:
    external = os.environ.get("CX_TEST_DATABASE_URL")
    if external:
        yield PgServer(admin_url=external)
        return
    # Not under pytest's temp root: pytest resets that to 0700 at every session start, which locks out the
    # unprivileged user the server runs as when tests run as root (and other concurrent sessions do that too).
    base = Path(tempfile.mkdtemp(prefix="cx-test-pg-"))
    server = EmbeddedPostgres(base / "data", port=free_port(), durable=False)
    info = server.start()
    try:
        yield PgServer(admin_url=info.url(database="postgres"))
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def cx_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("CX_TEST_NATS_URL")
    if external:
        yield external
        return
    server = EmbeddedNats(tmp_path_factory.mktemp("nats") / "store", port=free_port(), monitor_port=free_port())
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def cx_events() -> EventsNamespace:
    """A JetStream stream + subject prefix private to this test."""
    token = secrets.token_hex(4)
    return EventsNamespace(stream=f"T{token.upper()}", subject_prefix=f"t{token}")


ServiceDbFactory = Callable[[Path, str], Awaitable[ServiceDatabase]]


@pytest.fixture(scope="session")
async def _cx_templates(cx_pg: PgServer) -> AsyncIterator[dict[tuple[str, str], str]]:
    templates: dict[tuple[str, str], str] = {}
    yield templates
    for name in templates.values():
        await drop_database(cx_pg.admin_url, name)


@pytest.fixture
async def cx_service_db(cx_pg: PgServer, _cx_templates: dict[tuple[str, str], str]) -> AsyncIterator[ServiceDbFactory]:
    """`await cx_service_db(service_dir, schema)` -> a migrated database of its own for this test."""
    created: list[str] = []

    async def make(service_dir: Path, schema: str) -> ServiceDatabase:
        from cx_common.migrations import upgrade

        key = (str(service_dir), schema)
        if key not in _cx_templates:
            template = f"tmpl_{schema}_{secrets.token_hex(3)}"
            await create_database(cx_pg.admin_url, template)
            await provision_schema(cx_pg.admin_url, template, schema, TEST_ROLE_PASSWORD)
            role_url = cx_pg.database_url(template, user=role_name(schema), password=TEST_ROLE_PASSWORD)
            await asyncio.to_thread(upgrade, service_dir, role_url)
            _cx_templates[key] = template
        name = f"t_{schema}_{secrets.token_hex(4)}"
        await create_database(cx_pg.admin_url, name, template=_cx_templates[key])
        await provision_schema(cx_pg.admin_url, name, schema, TEST_ROLE_PASSWORD)
        created.append(name)
        return ServiceDatabase(
            name=name,
            schema=schema,
            url=cx_pg.database_url(name, user=role_name(schema), password=TEST_ROLE_PASSWORD),
            admin_url=cx_pg.database_url(name),
        )

    yield make
    for name in created:
        await drop_database(cx_pg.admin_url, name)


# -- identity: tokens signed like the gateway's, verified through a JWKS ------------------------------


class TokenMinter:
    """Signs access tokens with a throwaway RSA key; `jwks` is what a service's JWTVerifier is given."""

    def __init__(self, issuer: str = "cx-gateway", audience: str = "cx") -> None:
        import json

        import jwt
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.issuer = issuer
        self.audience = audience
        self.kid = secrets.token_hex(6)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.jwks = {"keys": [public]}

    def mint(
        self,
        tenant_id: object,
        *,
        user_id: str = "user-1",
        role: str = "admin",
        scopes: tuple[str, ...] = ("*",),
        org_unit_id: str | None = None,
        ttl: int = 600,
    ) -> str:
        import time

        import jwt

        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "tid": str(tenant_id),
            "role": role,
            "org": org_unit_id,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def verifier(self) -> object:
        from cx_common.auth import JWTVerifier

        return JWTVerifier(issuer=self.issuer, audience=self.audience, jwks=self.jwks)


@pytest.fixture(scope="session")
def cx_tokens() -> TokenMinter:
    return TokenMinter()


def app_client(app: object, tokens: TokenMinter | None = None) -> object:
    """`async with app_client(app, tokens) as client:` runs the app's lifespan and talks HTTP through ASGI."""
    from contextlib import asynccontextmanager

    import httpx

    @asynccontextmanager
    async def _client() -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
            if tokens is not None:
                app.state.jwt_verifier = tokens.verifier()  # type: ignore[attr-defined]
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield client

    return _client()


def live_server(app: object, tokens: TokenMinter | None = None) -> object:
    """`async with live_server(app, tokens) as base_url:` serves the app with uvicorn on a free loopback port in the
    test's event loop (lifespan included), for clients that need a real socket such as a browser."""
    from contextlib import asynccontextmanager

    import uvicorn

    @asynccontextmanager
    async def _serve() -> AsyncIterator[str]:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.02)
        if tokens is not None:
            app.state.jwt_verifier = tokens.verifier()  # type: ignore[attr-defined]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task

    return _serve()


CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@pytest.fixture(scope="session")
def cx_chromium() -> str:
    """Path of the Chromium that browser tests drive (Debian's package; `make test` installs it when missing)."""
    path = os.environ.get("CX_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium found: run scripts/ensure_chromium.sh or set CX_CHROMIUM", pytrace=False)
    return path


@pytest.fixture
async def cx_browser(cx_chromium: str, tmp_path: Path) -> AsyncIterator[object]:
    """A headless Playwright Chromium `Browser` (async API) with a fresh profile, closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=cx_chromium, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def cx_artifacts(request: pytest.FixtureRequest) -> Path:
    """Directory for test artefacts (screenshots, reports): $CX_TEST_ARTIFACTS or .cx/test-artifacts, per test."""
    root = Path(os.environ.get("CX_TEST_ARTIFACTS") or Path.cwd() / ".cx" / "test-artifacts")
    path = root / request.node.nodeid.replace("/", "_").replace("::", "__").replace(".py", "")
    path.mkdir(parents=True, exist_ok=True)
    return Path(str(path))


# -- the real NLP service (tiny model) -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cx_nlp_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of one `cx-nlp serve-http --tiny` for the whole session (BentoML with adaptive batching)."""
    from cx_local.nlp_harness import nlp_http_server

    with nlp_http_server(tmp_path_factory.mktemp("cx-nlp")) as url:
        yield url


@pytest.fixture
async def cx_nlp_adapters(cx_nlp_http: str, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[object]]]:
    """`await cx_nlp_adapters(**env)` -> another running `cx-nlp serve-grpc` adapter (an `NlpAdapter`: pause, resume,
    stop, start, calls) with extra `CX_NLP_*` settings; all are stopped after the test."""
    from cx_local.nlp_harness import NlpAdapter

    started: list[NlpAdapter] = []

    async def make(**env: str) -> NlpAdapter:
        adapter = NlpAdapter(cx_nlp_http, tmp_path / "nlp", env)
        started.append(adapter)
        await adapter.start()
        return adapter

    yield make
    for adapter in started:
        await adapter.stop()


@pytest.fixture(scope="session")
async def cx_nlp_grpc(cx_nlp_http: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """`host:port` of one session-wide gRPC adapter in front of `cx_nlp_http`, for tests that only call it."""
    from cx_local.nlp_harness import NlpAdapter

    adapter = NlpAdapter(cx_nlp_http, tmp_path_factory.mktemp("cx-nlp-grpc"))
    await adapter.start()
    try:
        yield adapter.target
    finally:
        await adapter.stop()
