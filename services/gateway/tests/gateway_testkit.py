"""Helpers shared by the gateway's tests and the cross-service console tests in tests/console: gateway settings
for a test, events published to the test's JetStream namespace as survey and ingest would, and a poll helper."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace
from typing import Any

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope, subject_for
from cx_gateway.settings import Settings
from cx_local.pytest_plugin import eventually as poll


def make_settings(db_url: str, nats_url: str, events: Any, **overrides: Any) -> Settings:
    return Settings(
        environment="test",
        database_url=db_url,
        nats_url=nats_url,
        events_stream=events.stream,
        events_subject_prefix=events.subject_prefix,
        log_json=False,
        password_time_cost=1,
        password_memory_kib=1024,
        password_parallelism=1,
        **overrides,
    )


# -- the read model fed through real JetStream ---------------------------------------------------------------

TODAY = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0)


async def publish(gw, event_type, payload, tenant, *, event_id=None, msg_id=None):
    bus = gw.app.state.runtime.bus
    env = build_envelope(tenant_id=tenant, event_type=event_type, payload=payload, source="test", event_id=event_id)
    await bus.js.publish(
        subject_for(event_type, gw.settings.events_subject_prefix),
        env.SerializeToString(),
        headers={"Nats-Msg-Id": msg_id or env.event_id},
    )
    return env


def response(org, nps, *, csat=None, touchpoint="tp-checkout", customer="", stage="purchase"):
    p = events_pb2.SurveyResponseSubmitted(
        response_id=str(uuid.uuid4()),
        survey_id="s1",
        touchpoint_id=touchpoint,
        journey_stage=stage,
        channel="web",
        org_unit_id=str(org),
        customer_key=customer,
        nps=nps,
    )
    if csat is not None:
        p.csat = csat
    p.submitted_at.FromDatetime(TODAY)
    return p


def feedback(org, sentiment, aspects=(), keywords=(), complaint=False, need=""):
    ctx = events_pb2.FeedbackContext(
        feedback_id=str(uuid.uuid4()), channel="hotline", org_unit_id=str(org), touchpoint_id="tp-store"
    )
    ctx.occurred_at.FromDatetime(TODAY)
    return events_pb2.FeedbackAnalyzed(
        context=ctx,
        sentiment=sentiment,
        aspects=[events_pb2.AspectSignal(path=list(p), polarity=pol) for p, pol in aspects],
        keywords=list(keywords),
        intents=[events_pb2.IntentSignal(intent="complaint", score=0.9)] if complaint else [],
        need_layer=need,
    )


async def until(check, limit_s=20.0):
    return await poll(check, limit_s, interval=0.1, what="read model did not catch up")


def event_kit() -> SimpleNamespace:
    """What the `ev` fixture hands a test."""
    return SimpleNamespace(
        publish=publish, response=response, feedback=feedback, until=until, make_settings=make_settings
    )
