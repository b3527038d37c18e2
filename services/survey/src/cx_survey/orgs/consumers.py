"""org.unit.upserted / org.unit.deleted → local org projection."""

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.app import Runtime
from cx_common.events import EventConsumer
from cx_survey.orgs import service

ORG_EVENTS = ["org.unit.upserted", "org.unit.deleted"]


async def handle_org_event(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
    if not envelope.HasField("org_unit_changed"):
        return
    await service.apply_change(
        session,
        uuid.UUID(envelope.tenant_id),
        envelope.org_unit_changed,
        deleted=envelope.type == "org.unit.deleted",
    )


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    assert runtime.bus is not None
    assert runtime.sessions is not None
    return [
        EventConsumer(
            runtime.bus,
            runtime.sessions,
            durable="survey-org-projection",
            event_types=ORG_EVENTS,
            handler=handle_org_event,
        )
    ]
