import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cx_ingest.main import create_app
from cx_ingest.settings import SCHEMA, Settings
from cx_local.nlp_harness import NlpAdapter
from cx_local.pytest_plugin import ServiceDatabase, TokenMinter, app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Ingest:
    client: httpx.AsyncClient
    db: ServiceDatabase
    settings: Settings
    tokens: TokenMinter
    app: Any

    def auth(self, tenant: uuid.UUID, scopes: tuple[str, ...] = ("*",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(tenant, scopes=scopes)}"}

    async def partner(self, tenant: uuid.UUID, **fields: Any) -> tuple[str, str]:
        """Register a partner and issue a key: (partner id, API key)."""
        body = {"title": "CRM", **fields}
        created = await self.client.post("/v1/partners", json=body, headers=self.auth(tenant))
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        key = await self.client.post(f"/v1/partners/{pid}/keys", json={"name": "k"}, headers=self.auth(tenant))
        assert key.status_code == 201, key.text
        return pid, key.json()["key"]

    @staticmethod
    def key(key: str) -> dict[str, str]:
        return {"X-Api-Key": key}

    async def queued_file_import(self, tenant: uuid.UUID, partner_id: str, path: Path) -> uuid.UUID:
        """A running CSV import of the file at `path` whose runner has not started (`files.process_import` runs it)."""
        import_id = uuid.uuid4()
        await self.sql(
            "INSERT INTO imports (id, tenant_id, partner_id, kind, status, total, accepted, duplicate, rejected, "
            "results, filename, file_format, stored_path) VALUES ($1, $2, $3, 'file', 'running', 0, 0, 0, 0, '[]', "
            "$4, 'csv', $5)",
            import_id,
            tenant,
            uuid.UUID(partner_id),
            path.name,
            str(path),
        )
        return import_id

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f"SET search_path = {SCHEMA}")
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


def make_settings(db: ServiceDatabase, nats_url: str, events: Any, **overrides: Any) -> Settings:
    return Settings(
        environment="test",
        database_url=db.url,
        nats_url=nats_url,
        events_stream=events.stream,
        events_subject_prefix=events.subject_prefix,
        log_json=False,
        **overrides,
    )


@pytest.fixture
def ingest_overrides() -> dict[str, Any]:
    """Override in a test module to change settings (e.g. the NLP target)."""
    return {"analysis_enabled": False}


@pytest.fixture
async def ingest(
    cx_service_db, cx_nats_url, cx_events, cx_tokens: TokenMinter, ingest_overrides
) -> AsyncIterator[Ingest]:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = make_settings(db, cx_nats_url, cx_events, **ingest_overrides)
    app = create_app(settings)
    async with app_client(app, cx_tokens) as c:
        yield Ingest(client=c, db=db, settings=settings, tokens=cx_tokens, app=app)


@pytest.fixture
def client(ingest: Ingest) -> httpx.AsyncClient:
    return ingest.client


# -- the real NLP service with its tiny model ------------------------------------------------------------------
# One `cx-nlp serve-http --tiny` per session (cx_local's `cx_nlp_http`), and a `cx-nlp serve-grpc` adapter per use
# (each with a fresh codebook registry): real processes on ephemeral ports that the tests pause (SIGSTOP: calls hang
# mid-batch), stop and restart like a real outage. Texts longer than NLP_MAX_TEXT are refused by the adapters
# (CX_NLP_OVERLONG_TEXT=reject): an item NLP will never accept.

NLP_MAX_TEXT = 1000
ADAPTER_ENV = {"CX_NLP_OVERLONG_TEXT": "reject", "CX_NLP_MAX_TEXT_LENGTH": str(NLP_MAX_TEXT)}


class NlpServer(NlpAdapter):
    max_text = NLP_MAX_TEXT  # longer texts are refused (INVALID_ARGUMENT)


@pytest.fixture
async def nlp_servers(cx_nlp_http: str, tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[NlpServer]]]:
    """`await nlp_servers()` -> another running adapter; all are stopped after the test."""
    started: list[NlpServer] = []

    async def make() -> NlpServer:
        server = NlpServer(cx_nlp_http, tmp_path, ADAPTER_ENV)
        started.append(server)
        await server.start()
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def nlp_server(nlp_servers: Callable[[], Awaitable[NlpServer]]) -> NlpServer:
    return await nlp_servers()


@pytest.fixture
async def nlp_down(cx_nlp_http: str, tmp_path: Path) -> AsyncIterator[NlpServer]:
    """An adapter that is not running yet (`await nlp_down.start()` brings it up on its port)."""
    server = NlpServer(cx_nlp_http, tmp_path, ADAPTER_ENV)
    yield server
    await server.stop()
