import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope, subject_for
from cx_local.pytest_plugin import TokenMinter, app_client
from cx_survey.main import create_app
from cx_survey.settings import SCHEMA, Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from survey_testkit import eventually

SERVICE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Survey:
    client: httpx.AsyncClient
    app: Any
    settings: Settings
    tokens: TokenMinter
    admin_url: str

    def auth(
        self, tenant: uuid.UUID, scopes: tuple[str, ...] = ("surveys:*",), org: str | None = None
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(tenant, scopes=scopes, org_unit_id=org)}"}

    def app_with(self, **overrides: Any) -> Any:
        """Another instance of the service on the same database (e.g. to restart the scheduler)."""
        return create_app(self.settings.model_copy(update=overrides))

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.admin_url, server_settings={"search_path": SCHEMA})
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def publish_org(self, tenant: uuid.UUID, units: list[tuple[str, str, list[str]]]) -> None:
        bus = self.app.state.runtime.bus
        for unit_id, parent, ancestors in units:
            payload = events_pb2.OrgUnitChanged(
                org_unit_id=unit_id, parent_id=parent, ancestor_ids=ancestors, name=unit_id
            )
            envelope = build_envelope(
                tenant_id=tenant, event_type="org.unit.upserted", payload=payload, source="gateway"
            )
            subject = subject_for("org.unit.upserted", self.settings.events_subject_prefix)
            await bus.js.publish(subject, envelope.SerializeToString(), headers={"Nats-Msg-Id": envelope.event_id})
        await eventually(lambda: self._count_units(tenant, len(units)))

    async def _count_units(self, tenant: uuid.UUID, n: int) -> bool:
        rows = await self.sql("SELECT count(*) AS n FROM org_units WHERE tenant_id = $1", tenant)
        return bool(rows[0]["n"] >= n)

    async def create_published(self, tenant: uuid.UUID, definition: dict[str, Any], **extra: Any) -> str:
        created = await self.client.post(
            "/v1/surveys", json={"title": "t", "definition": definition, **extra}, headers=self.auth(tenant)
        )
        assert created.status_code == 201, created.text
        survey_id: str = created.json()["id"]
        published = await self.client.post(f"/v1/surveys/{survey_id}/publish", headers=self.auth(tenant))
        assert published.status_code == 201, published.text
        return survey_id


@pytest.fixture
async def svc(cx_service_db, cx_nats_url, cx_events, cx_tokens: TokenMinter) -> AsyncIterator[Survey]:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = Settings(
        environment="test",
        database_url=db.url,
        nats_url=cx_nats_url,
        events_stream=cx_events.stream,
        events_subject_prefix=cx_events.subject_prefix,
        log_json=False,
        scheduler_enabled=False,
        scheduler_poll_seconds=0.05,
        gc_tuning=False,  # process-wide; tested on its own in test_submission_paths
        public_base_url="http://survey.test",
    )
    app = create_app(settings)
    async with app_client(app, cx_tokens) as c:
        yield Survey(client=c, app=app, settings=settings, tokens=cx_tokens, admin_url=db.admin_url)


@pytest.fixture
async def client(svc: Survey) -> httpx.AsyncClient:
    return svc.client
