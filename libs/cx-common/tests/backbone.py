"""A tiny producer/consumer pair on two schemas, used by the exactly-once tests (in-process and as a subprocess
that kills itself with SIGKILL at a chosen point)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import uuid
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.db import create_engine, session_factory
from cx_common.events import BatchEventConsumer, EventBus, EventConsumer, OutboxRelay, add_event
from cx_common.migrations import EVENT_TABLES_DDL

PRODUCER, CONSUMER = "bbproducer", "bbconsumer"
EVENT_TYPE = "backbone.ping"
DURABLE = "backbone-consumer"


async def create_tables(url: str, schema: str) -> None:
    engine = create_engine(url, schema)
    async with engine.begin() as conn:
        for ddl in EVENT_TABLES_DDL:
            await conn.execute(text(ddl))
        if schema == PRODUCER:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS items (id UUID PRIMARY KEY, seq INT NOT NULL)"))
        else:
            # No unique constraint on purpose: a second application would show up as a second row.
            await conn.execute(
                text("CREATE TABLE IF NOT EXISTS applied (item_seq INT NOT NULL, event_id UUID NOT NULL)")
            )
    await engine.dispose()


async def produce(url: str, count: int, start: int = 0) -> None:
    """Each item row and its event are written in one transaction."""
    engine = create_engine(url, PRODUCER)
    sessions = session_factory(engine)
    for seq in range(start, start + count):
        async with sessions() as session, session.begin():
            await session.execute(
                text("INSERT INTO items (id, seq) VALUES (:id, :seq)"), {"id": uuid.uuid4(), "seq": seq}
            )
            await add_event(
                session,
                tenant_id=uuid.UUID(int=1),
                event_type=EVENT_TYPE,
                payload=events_pb2.Ping(seq=seq, note="item"),
                source="backbone-test",
                subject_prefix=os.environ["BB_PREFIX"],
            )
    await engine.dispose()


async def bus() -> EventBus:
    return await EventBus.connect(
        os.environ["BB_NATS"], name="backbone", stream=os.environ["BB_STREAM"], subject_prefix=os.environ["BB_PREFIX"]
    )


def make_handler(crash_before_commit: bool = False):
    async def handler(session: AsyncSession, envelope: events_pb2.Envelope) -> None:
        await session.execute(
            text("INSERT INTO applied (item_seq, event_id) VALUES (:seq, :eid)"),
            {"seq": envelope.ping.seq, "eid": uuid.UUID(envelope.event_id)},
        )
        if crash_before_commit:
            await session.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return handler


def make_consumer(b: EventBus, url: str, *, ack_wait: float, crash: str | None = None) -> EventConsumer:
    engine = create_engine(url, CONSUMER)
    after_commit = (lambda _env: os.kill(os.getpid(), signal.SIGKILL)) if crash == "after-commit" else None
    return EventConsumer(
        b,
        session_factory(engine),
        durable=DURABLE,
        event_types=[EVENT_TYPE],
        handler=make_handler(crash_before_commit=crash == "before-commit"),
        ack_wait=ack_wait,
        max_deliver=4,
        backoff=(0.2,),
        after_commit=after_commit,
    )


async def run_relay_until_crash(url: str) -> None:
    """Publish one batch, then die before the rows are marked as sent."""
    b = await bus()
    engine = create_engine(url, PRODUCER)
    relay = OutboxRelay(engine, b, schema=PRODUCER, after_publish=lambda _ids: os.kill(os.getpid(), signal.SIGKILL))
    await relay.publish_pending()


async def run_consumer_until_crash(url: str, crash: str) -> None:
    b = await bus()
    consumer = make_consumer(b, url, ack_wait=1.0, crash=crash)
    await asyncio.wait_for(consumer.run(), timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["relay-crash", "consumer-crash-after-commit", "consumer-crash-before-commit"])
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    if args.mode == "relay-crash":
        asyncio.run(run_relay_until_crash(args.url))
    else:
        asyncio.run(run_consumer_until_crash(args.url, args.mode.removeprefix("consumer-crash-")))


if __name__ == "__main__":
    main()


def make_batch_consumer(
    b: EventBus, url: str, batches: list[list[int]], *, fail_on_seq: int | None = None
) -> BatchEventConsumer:
    """Applies each fetched batch with one multi-row INSERT; records the seqs of every batch it was handed and fails
    (rolls back) a batch holding `fail_on_seq`."""

    async def batch_handler(session: AsyncSession, envelopes: Sequence[events_pb2.Envelope]) -> None:
        seqs = [e.ping.seq for e in envelopes]
        batches.append(seqs)
        await session.execute(
            text(
                "INSERT INTO applied (item_seq, event_id) "
                "SELECT * FROM unnest(CAST(:seqs AS int[]), CAST(:ids AS uuid[]))"
            ),
            {"seqs": seqs, "ids": [uuid.UUID(e.event_id) for e in envelopes]},
        )
        if fail_on_seq in seqs:
            raise RuntimeError(f"batch with seq {fail_on_seq} refused")

    return BatchEventConsumer(
        b,
        session_factory(create_engine(url, CONSUMER)),
        durable=f"{DURABLE}-batch",
        event_types=[EVENT_TYPE],
        handler=make_handler(),
        batch_handler=batch_handler,
        ack_wait=5,
        max_deliver=4,
        backoff=(0.2,),
    )
