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
NOWHERE = "http://127.0.0.1:9"  # an upstream a test does not start


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


@dataclass
class LiveGateway:
    app: FastAPI
    url: str
    settings: Settings
    demo: DemoResult


@asynccontextmanager
async def live_gateway(
    db: Any, nats_url: str, events: Any, services: list[FastAPI], **upstreams: str
) -> AsyncIterator[LiveGateway]:
    """The gateway on its own socket in front of `upstreams` (survey_url, ingest_url, alerts_url), the `services`
    apps verifying its tokens against its published JWKS as in the running stack, and the demo tenant seeded."""
    settings = make_settings(db.url, nats_url, events, **upstreams)
    gw_app = create_app(settings)
    async with live_server(gw_app) as gw_url:
        for app in services:
            app.state.jwt_verifier = JWTVerifier(
                issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=f"{gw_url}/api/v1/auth/jwks"
            )
        async with gw_app.state.runtime.sessions() as session, session.begin():
            demo = await seed_demo(session, settings)
        yield LiveGateway(gw_app, gw_url, settings, demo)


@pytest.fixture
def alerts_and_gateway(cx_service_db, cx_nats_url, cx_events):
    """`async with alerts_and_gateway() as (gateway, alerts_url):` the real alerts service and the gateway (survey
    and ingest unreachable), both on loopback sockets and wired through JetStream."""

    @asynccontextmanager
    async def start() -> AsyncIterator[tuple[LiveGateway, str]]:
        alerts_db = await cx_service_db(SERVICES / "alerts", ALERTS_SCHEMA)
        gateway_db = await cx_service_db(GATEWAY_DIR, SCHEMA)
        alerts_app = create_alerts_app(
            AlertsSettings(**service_settings(alerts_db, cx_nats_url, cx_events), dispatcher_enabled=False)
        )
        async with (
            live_server(alerts_app) as alerts_url,
            live_gateway(
                gateway_db,
                cx_nats_url,
                cx_events,
                [alerts_app],
                alerts_url=alerts_url,
                survey_url=NOWHERE,
                ingest_url=NOWHERE,
            ) as gateway,
        ):
            yield gateway, alerts_url

    return start


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
            live_gateway(
                gateway_db,
                cx_nats_url,
                cx_events,
                apps,
                survey_url=survey_url,
                ingest_url=ingest_url,
                alerts_url=alerts_url,
            ) as gateway,
        ):
            token = await demo_admin_token(
                KeyRing(gateway.app.state.runtime.sessions, gateway.settings), gateway.settings, gateway.demo
            )
            yield DemoPlatform(
                gateway.app,
                gateway.url,
                gateway.settings,
                gateway.demo,
                token,
                DemoUpstream(survey_url, ingest_url, alerts_url),
            )

    return start
