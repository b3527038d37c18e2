import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from alerts_testkit import SERVICE_DIR, Env

from cx_alerts.settings import SCHEMA, Settings
from cx_local.pytest_plugin import TokenMinter, app_client


@pytest.fixture
async def env(cx_service_db, cx_nats_url, cx_events, cx_tokens: TokenMinter) -> Env:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = Settings(
        environment="test",
        database_url=db.url,
        nats_url=cx_nats_url,
        events_stream=cx_events.stream,
        events_subject_prefix=cx_events.subject_prefix,
        log_json=False,
        scheduler_poll_s=0.05,
    )
    return Env(settings=settings, db=db, tokens=cx_tokens, nats_url=cx_nats_url)


@pytest.fixture
async def client(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(env.app(), env.tokens) as c:
        yield c
