"""A durable, idempotent JetStream consumer that applies each fetched batch of events in one transaction.

`EventConsumer` applies one message per transaction (claim its id in `processed_events`, apply, commit, ack). Where
events arrive by the hundred per second (e.g. a read model) that caps the rate at a few dozen per second on a busy
machine. Here a fetched batch (up to `batch_size` messages) is claimed with one statement, handed to the batch
handler and committed once; then every message is acked. The guarantees stay those of the per-message consumer:
claims and effects commit together (a redelivery finds the ids claimed and only acks), nothing is acked before the
commit. A batch that fails is rolled back and retried message by message through `EventConsumer.process`, so one bad
event is retried, backed off and dead-lettered on its own (the per-message `handler` is used for that).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.msg import Msg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.events.consumer import CONSUMED, EventConsumer
from cx_common.logging import get_logger

log = get_logger(__name__)

BatchHandler = Callable[[AsyncSession, Sequence[events_pb2.Envelope]], Awaitable[None]]

_CLAIM_MANY = text(
    "INSERT INTO processed_events (consumer, event_id, event_type) "
    "SELECT :consumer, e.id, e.type FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS e(id, type) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


class BatchEventConsumer(EventConsumer):
    def __init__(self, *args: object, batch_handler: BatchHandler, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batch_handler = batch_handler

    async def handle_fetched(self, msgs: list[Msg]) -> None:
        if not await self.process_batch(msgs):
            await super().handle_fetched(msgs)

    async def process_batch(self, msgs: list[Msg]) -> bool:
        """Apply the messages in one transaction and ack them; False (nothing applied, nothing acked) when one cannot
        be decoded or the transaction fails: the caller then takes them one by one."""
        decoded: list[tuple[Msg, events_pb2.Envelope, uuid.UUID]] = []
        try:
            for msg in msgs:
                envelope = events_pb2.Envelope.FromString(msg.data)
                decoded.append((msg, envelope, uuid.UUID(envelope.event_id)))
        except Exception:
            return False
        if not decoded:
            return True
        fresh: list[events_pb2.Envelope] = []
        try:
            async with self.sessions() as session, session.begin():
                claimed = {
                    uuid.UUID(str(row[0]))
                    for row in await session.execute(
                        _CLAIM_MANY,
                        {
                            "consumer": self.durable,
                            "ids": [i for _, _, i in decoded],
                            "types": [e.type for _, e, _ in decoded],
                        },
                    )
                }
                for _, envelope, event_id in decoded:
                    if event_id in claimed:
                        claimed.discard(event_id)  # the same event twice in one batch: applied once
                        fresh.append(envelope)
                if fresh:
                    await self.batch_handler(session, fresh)
        except Exception as exc:
            log.warning("event_batch_failed", durable=self.durable, events=len(decoded), error=str(exc))
            return False
        for msg, _, _ in decoded:
            await msg.ack()
        CONSUMED.labels(self.durable, "applied").inc(len(fresh))
        CONSUMED.labels(self.durable, "duplicate").inc(len(decoded) - len(fresh))
        return True
