"""The read model's JetStream consumer: each fetched batch of events is applied in one transaction.

`cx_common.events.EventConsumer` applies one message per transaction (claim its id in `processed_events`, apply,
commit, ack). For the read model that caps the event rate at a few dozen per second on a busy machine, and freshness
is then lost under load. Here a fetched batch (up to `batch_size` messages) is claimed with one statement, applied
into one `Changes` (`projection.apply_batch`: one write per table) and committed once; then every message is acked.
The guarantees stay those of the per-message consumer: claims and effects commit together (a redelivery finds the
ids claimed and only acks), nothing is acked before the commit. A batch that fails is rolled back and retried message
by message through the inherited path, so one bad event is retried, backed off and dead-lettered on its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.events import EventConsumer
from cx_common.events.consumer import CONSUMED
from cx_common.logging import get_logger

log = get_logger(__name__)

BatchHandler = Callable[[AsyncSession, Sequence[events_pb2.Envelope]], Awaitable[None]]

_CLAIM_MANY = text(
    "INSERT INTO processed_events (consumer, event_id, event_type) "
    "SELECT :consumer, e.id, e.type FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS e(id, type) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


class BatchConsumer(EventConsumer):
    def __init__(self, *args: object, batch_handler: BatchHandler, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batch_handler = batch_handler

    async def run(self) -> None:
        sub = await self._subscription()
        log.info("consumer_started", durable=self.durable, subjects=self.subjects, batched=True)
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(self.batch_size, timeout=1.0)  # type: ignore[attr-defined]
            except (NatsTimeoutError, TimeoutError):
                continue
            except Exception as exc:
                log.warning("consumer_fetch_failed", durable=self.durable, error=str(exc))
                await asyncio.sleep(1.0)
                continue
            if not await self.process_batch(msgs):
                for msg in msgs:
                    await self.process(msg)

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
