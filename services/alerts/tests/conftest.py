from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cx_alerts.main import create_app
from cx_alerts.settings import SCHEMA, Settings
from cx_local.pytest_plugin import TokenMinter, app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
async def client(cx_service_db, cx_nats_url, cx_events, cx_tokens: TokenMinter) -> AsyncIterator[httpx.AsyncClient]:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = Settings(
        environment="test",
        database_url=db.url,
        nats_url=cx_nats_url,
        events_stream=cx_events.stream,
        events_subject_prefix=cx_events.subject_prefix,
        log_json=False,
    )
    async with app_client(create_app(settings), cx_tokens) as c:
        yield c
