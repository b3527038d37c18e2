"""Event consumers of the alerts service (durable names prefixed with `alerts-`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_alerts.alerts import flows
from cx_alerts.context import Ctx
from cx_alerts.org import service as org
from cx_common.app import Runtime
from cx_common.events import EventConsumer

ORG_EVENTS = ["org.unit.upserted", "org.unit.deleted", "org.user.upserted", "org.user.deleted"]
SIGNAL_EVENTS = ["survey.response.submitted", "feedback.analyzed"]


async def handle_org(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
    tenant_id = uuid.UUID(envelope.tenant_id)
    which = envelope.WhichOneof("payload")
    if which == "org_unit_changed":
        await org.apply_unit(session, tenant_id, envelope.org_unit_changed, envelope.type.endswith(".deleted"))
    elif which == "user_changed":
        await org.apply_user(session, tenant_id, envelope.user_changed, envelope.type.endswith(".deleted"))


def signal_handler(ctx: Ctx):  # type: ignore[no-untyped-def]
    async def handle(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
        await flows.process_signal(session, ctx, envelope)

    return handle


def build(runtime: Runtime) -> Sequence[EventConsumer]:
    assert runtime.bus is not None
    assert runtime.sessions is not None
    ctx: Ctx = runtime.extras["ctx"]
    return [
        EventConsumer(runtime.bus, runtime.sessions, durable="alerts-org", event_types=ORG_EVENTS, handler=handle_org),
        EventConsumer(
            runtime.bus,
            runtime.sessions,
            durable="alerts-signals",
            event_types=SIGNAL_EVENTS,
            handler=signal_handler(ctx),
        ),
    ]
