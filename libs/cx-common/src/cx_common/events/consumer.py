"""Durable, idempotent JetStream consumer.

For each message: in one transaction, record the event id in `processed_events` and apply the handler; commit; then
ack. A crash before commit leaves nothing behind and the message is redelivered; a crash after commit but before
ack leads to a redelivery that finds the event id already recorded and is acked without applying it again.
Deliveries beyond `max_deliver` go to the dead-letter subject `<prefix>.dlq.<durable>`. A database that cannot be
reached is not the event's fault: the message is kept (marked in progress) and tried again with backoff until the
database answers, without using up a delivery, so an outage longer than the retry budget dead-letters nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx.events.v1 import events_pb2
from cx_common.context import bind_request_context
from cx_common.events.bus import EventBus
from cx_common.logging import get_logger

log = get_logger(__name__)

EventHandler = Callable[[AsyncSession, events_pb2.Envelope], Awaitable[None]]

CONSUMED = Counter("cx_events_consumed_total", "Events consumed", ["durable", "outcome"])

_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_id, event_type) VALUES (:consumer, :event_id, :event_type) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


class EventConsumer:
    def __init__(
        self,
        bus: EventBus,
        sessions: async_sessionmaker[AsyncSession],
        *,
        durable: str,
        event_types: list[str],
        handler: EventHandler,
        max_deliver: int = 8,
        ack_wait: float = 30.0,
        batch_size: int = 50,
        backoff: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30),
        after_commit: Callable[[events_pb2.Envelope], None] | None = None,
    ) -> None:
        self.bus = bus
        self.sessions = sessions
        self.durable = durable
        self.subjects = [f"{bus.subject_prefix}.{t}" for t in event_types]
        self.handler = handler
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.batch_size = batch_size
        self.backoff = backoff
        self.dlq_subject = f"{bus.subject_prefix}.dlq.{durable}"
        self._after_commit = after_commit  # fault-injection point for the exactly-once tests
        self._stopping = asyncio.Event()

    async def _subscription(self) -> object:
        js = self.bus.js
        config = ConsumerConfig(
            durable_name=self.durable,
            name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            # The broker stops redelivering after this; we dead-letter one delivery earlier ourselves.
            max_deliver=self.max_deliver + 1,
            max_ack_pending=1000,
            filter_subjects=self.subjects if len(self.subjects) > 1 else None,
            filter_subject=self.subjects[0] if len(self.subjects) == 1 else None,
        )
        try:
            await js.consumer_info(self.bus.stream, self.durable)
        except NotFoundError:
            await js.add_consumer(self.bus.stream, config=config)
        return await js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)

    async def run(self) -> None:
        sub = await self._subscription()
        log.info("consumer_started", durable=self.durable, subjects=self.subjects)
        while not self._stopping.is_set():
            try:
                msgs = await sub.fetch(self.batch_size, timeout=1.0)  # type: ignore[attr-defined]
            except (NatsTimeoutError, TimeoutError):
                continue
            except Exception as exc:
                log.warning("consumer_fetch_failed", durable=self.durable, error=str(exc))
                await asyncio.sleep(1.0)
                continue
            await self.handle_fetched(msgs)

    async def handle_fetched(self, msgs: list[Msg]) -> None:
        """Apply one fetched batch: message by message here (`BatchEventConsumer` applies it in one transaction)."""
        for msg in msgs:
            await self.process(msg)

    async def process(self, msg: Msg) -> bool:
        """Apply one message at most once; returns True when the handler ran."""
        try:
            envelope = events_pb2.Envelope.FromString(msg.data)
            event_id = uuid.UUID(envelope.event_id)
        except Exception as exc:
            log.error("event_undecodable", durable=self.durable, subject=msg.subject, error=str(exc))
            await self._dead_letter(msg, f"undecodable: {exc}")
            return False
        bind_request_context(trace_id=envelope.trace_id or None)
        outage = 0
        while True:
            try:
                async with self.sessions() as session, session.begin():
                    claimed = (
                        await session.execute(
                            _CLAIM, {"consumer": self.durable, "event_id": event_id, "event_type": envelope.type}
                        )
                    ).first()
                    if claimed is not None:
                        await self.handler(session, envelope)
                break
            except Exception as exc:
                if database_unavailable(exc) and not self._stopping.is_set():
                    await self._wait_for_database(msg, envelope, exc, outage)
                    outage += 1
                    continue
                await self._failed(msg, envelope, exc)
                return False
        if self._after_commit is not None:
            self._after_commit(envelope)
        await msg.ack()
        CONSUMED.labels(self.durable, "applied" if claimed else "duplicate").inc()
        return claimed is not None

    async def _wait_for_database(self, msg: Msg, envelope: events_pb2.Envelope, exc: Exception, waited: int) -> None:
        """Back off while the database is unreachable; the message stays ours (in progress), its delivery uncounted."""
        delay = min(self.backoff[min(waited, len(self.backoff) - 1)], self.ack_wait / 2)
        if waited == 0:
            log.warning("event_store_unavailable", durable=self.durable, event_id=envelope.event_id, error=str(exc))
        CONSUMED.labels(self.durable, "store_unavailable").inc()
        with contextlib.suppress(Exception):
            await msg.in_progress()  # resets the ack timer: no redelivery while we wait
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _failed(self, msg: Msg, envelope: events_pb2.Envelope, exc: Exception) -> None:
        delivered = msg.metadata.num_delivered or 1
        log.warning(
            "event_handler_failed",
            durable=self.durable,
            event_id=envelope.event_id,
            type=envelope.type,
            delivered=delivered,
            error=str(exc),
        )
        if delivered >= self.max_deliver:
            await self._dead_letter(msg, str(exc))
            return
        delay = self.backoff[min(delivered - 1, len(self.backoff) - 1)]
        CONSUMED.labels(self.durable, "retry").inc()
        with contextlib.suppress(Exception):
            await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        headers = dict(msg.headers or {})
        headers.update({"Cx-Dlq-Reason": reason[:500], "Cx-Original-Subject": msg.subject})
        try:
            await self.bus.nc.publish(self.dlq_subject, msg.data, headers=headers)
            await msg.term()
            CONSUMED.labels(self.durable, "dead_lettered").inc()
        except Exception as exc:  # leave it unacked: redelivered later rather than lost
            log.error("dead_letter_failed", durable=self.durable, error=str(exc))

    def stop(self) -> None:
        self._stopping.set()


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (not something about the event): an OSError,
    asyncpg's connection / interface / "cannot connect now" errors, SQLAlchemy's invalidated connections — anywhere
    in the exception's chain (SQLAlchemy wraps the driver's error)."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    kinds = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)
    files = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # explicit causes only, never a handled __context__
        seen.add(id(current))
        if isinstance(current, kinds) and not isinstance(current, files):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False
