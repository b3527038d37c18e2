"""The gateway and its console against the real survey, ingest and alerts services: each app on its own loopback
socket with its own database (migrated, least-privilege role), all on one JetStream, the services trusting the
gateway's JWKS. Cross-service, so it lives here rather than in any one service's tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from cx_alerts.main import create_app as create_alerts_app
from cx_alerts.settings import SCHEMA as ALERTS_SCHEMA
from cx_alerts.settings import Settings as AlertsSettings
from cx_common.auth import JWTVerifier
from cx_gateway.cli import demo_admin_token
from cx_gateway.demo import DemoResult, seed_demo
from cx_gateway.demo_data import Upstream as DemoUpstream
from cx_gateway.identity.keys import KeyRing
from cx_gateway.main import create_app
from cx_gateway.settings import SCHEMA, Settings
from cx_ingest.main import create_app as create_ingest_app
from cx_ingest.settings import SCHEMA as INGEST_SCHEMA
from cx_ingest.settings import Settings as IngestSettings
from cx_local.pytest_plugin import live_server, service_settings
from cx_survey.main import create_app as create_survey_app
from cx_survey.settings import SCHEMA as SURVEY_SCHEMA
from cx_survey.settings import Settings as SurveySettings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "services" / "gateway" / "tests"))
from gateway_testkit import event_kit, make_settings

SERVICES = Path(__file__).resolve().parents[2] / "services"
GATEWAY_DIR = SERVICES / "gateway"


@pytest.fixture
def ev() -> Any:
    return event_kit()


@dataclass
class DemoPlatform:
    """The real survey, ingest and alerts apps (own sockets and databases, one JetStream) behind a live gateway whose
    JWKS they trust, with the demo tenant seeded and an admin token for it."""

    gw_app: FastAPI
    gw_url: str
    settings: Settings
    demo: DemoResult
    token: str
    upstream: DemoUpstream


@pytest.fixture
def demo_platform(cx_service_db, cx_nats_url, cx_events):
    """`async with demo_platform(**ingest_settings) as platform:` starts the four services for one test."""

    @asynccontextmanager
    async def start(**ingest_settings: Any) -> AsyncIterator[DemoPlatform]:
        def common(db: Any) -> dict[str, Any]:
            return service_settings(db, cx_nats_url, cx_events)

        survey_db = await cx_service_db(SERVICES / "survey", SURVEY_SCHEMA)
        ingest_db = await cx_service_db(SERVICES / "ingest", INGEST_SCHEMA)
        alerts_db = await cx_service_db(SERVICES / "alerts", ALERTS_SCHEMA)
        gateway_db = await cx_service_db(GATEWAY_DIR, SCHEMA)
        apps = [
            create_survey_app(SurveySettings(**common(survey_db), scheduler_enabled=False)),
            create_ingest_app(IngestSettings(**common(ingest_db), **ingest_settings)),
            create_alerts_app(AlertsSettings(**common(alerts_db), dispatcher_enabled=False)),
        ]
        async with (
            live_server(apps[0]) as survey_url,
            live_server(apps[1]) as ingest_url,
            live_server(apps[2]) as alerts_url,
        ):
            settings = make_settings(
                gateway_db.url,
                cx_nats_url,
                cx_events,
                survey_url=survey_url,
                ingest_url=ingest_url,
                alerts_url=alerts_url,
            )
            gw_app = create_app(settings)
            async with live_server(gw_app) as gw_url:
                for app in apps:
                    app.state.jwt_verifier = JWTVerifier(
                        issuer=settings.jwt_issuer,
                        audience=settings.jwt_audience,
                        jwks_url=f"{gw_url}/api/v1/auth/jwks",
                    )
                sessions = gw_app.state.runtime.sessions
                async with sessions() as session, session.begin():
                    demo = await seed_demo(session, settings)
                token = await demo_admin_token(KeyRing(sessions, settings), settings, demo)
                yield DemoPlatform(
                    gw_app, gw_url, settings, demo, token, DemoUpstream(survey_url, ingest_url, alerts_url)
                )

    return start
