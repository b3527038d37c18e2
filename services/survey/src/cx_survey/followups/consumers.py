"""ticket.follow_up_requested → a scheduled follow-up send (or an undeliverable request), once per event."""

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.app import Runtime
from cx_common.events import EventConsumer, EventHandler
from cx_survey.followups import service
from cx_survey.settings import Settings

DURABLE = "survey-follow-ups"


def handler(public_base_url: str) -> EventHandler:
    async def handle(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
        await service.handle(session, envelope, public_base_url)

    return handle


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    assert runtime.bus is not None
    assert runtime.sessions is not None
    settings = runtime.settings
    assert isinstance(settings, Settings)
    assert settings.public_base_url is not None
    return [
        EventConsumer(
            runtime.bus,
            runtime.sessions,
            durable=DURABLE,
            event_types=[service.EVENT_TYPE],
            handler=handler(settings.public_base_url),
        )
    ]
