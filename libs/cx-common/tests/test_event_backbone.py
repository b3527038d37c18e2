"""The event backbone, proven with real Postgres, real NATS JetStream and real SIGKILLs:
a row and its event are written in one transaction; the event is consumed and applied exactly once even when the
relay dies after publishing but before marking the row sent, and when the consumer dies before acking."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from cx_local.provision import create_database, drop_database, provision_schema, role_name

sys.path.insert(0, str(Path(__file__).parent))
import backbone

HERE = Path(__file__).parent
PASSWORD = "backbone-pw"


@pytest.fixture
async def world(cx_pg, cx_nats_url, cx_events, monkeypatch):
    name = f"bb_{secrets.token_hex(4)}"
    await create_database(cx_pg.admin_url, name)
    urls = {}
    for schema in (backbone.PRODUCER, backbone.CONSUMER):
        await provision_schema(cx_pg.admin_url, name, schema, PASSWORD)
        urls[schema] = cx_pg.database_url(name, user=role_name(schema), password=PASSWORD)
        await backbone.create_tables(urls[schema], schema)
    env = {"BB_NATS": cx_nats_url, "BB_STREAM": cx_events.stream, "BB_PREFIX": cx_events.subject_prefix}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield {"urls": urls, "admin": cx_pg.database_url(name), "env": {**os.environ, **env}}
    await drop_database(cx_pg.admin_url, name)


async def scalar(admin_url: str, sql: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def applied_counts(admin_url: str) -> dict[int, int]:
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(f"SELECT item_seq, count(*) AS n FROM {backbone.CONSUMER}.applied GROUP BY item_seq")
        return {r["item_seq"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def drain(consumer, until, limit: float = 20.0) -> None:
    """Run the consumer until `until()` holds (checked between fetches)."""
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + limit
        while not await until():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("consumer did not reach the expected state in time")
            await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, timeout=5)


def run_subprocess(mode: str, url: str, env: dict[str, str]) -> int:
    proc = subprocess.run(
        [sys.executable, str(HERE / "backbone.py"), mode, "--url", url], env=env, timeout=60, check=False
    )
    return proc.returncode


async def test_row_and_event_commit_together_and_apply_once(world):
    urls, admin = world["urls"], world["admin"]
    await backbone.produce(urls[backbone.PRODUCER], 20)
    assert await scalar(admin, f"SELECT count(*) FROM {backbone.PRODUCER}.outbox") == 20
    bus = await backbone.bus()
    from cx_common.db import create_engine
    from cx_common.events import OutboxRelay

    relay = OutboxRelay(create_engine(urls[backbone.PRODUCER], backbone.PRODUCER), bus, schema=backbone.PRODUCER)
    assert await relay.publish_pending() == 20
    assert await relay.backlog() == 0
    consumer = backbone.make_consumer(bus, urls[backbone.CONSUMER], ack_wait=5)

    async def all_applied() -> bool:
        return len(await applied_counts(admin)) == 20

    await drain(consumer, all_applied)
    assert await applied_counts(admin) == {seq: 1 for seq in range(20)}
    await bus.close()


async def test_rolled_back_transaction_publishes_nothing(world):
    from sqlalchemy import text

    from cx.events.v1 import events_pb2
    from cx_common.db import create_engine, session_factory
    from cx_common.events import add_event

    engine = create_engine(world["urls"][backbone.PRODUCER], backbone.PRODUCER)
    sessions = session_factory(engine)

    async def failing_unit_of_work() -> None:
        async with sessions() as session, session.begin():
            await session.execute(text("INSERT INTO items (id, seq) VALUES (gen_random_uuid(), 99)"))
            await add_event(
                session, tenant_id="t", event_type=backbone.EVENT_TYPE, payload=events_pb2.Ping(seq=99), source="t"
            )
            raise RuntimeError("business rule failed")

    with pytest.raises(RuntimeError):
        await failing_unit_of_work()
    await engine.dispose()
    assert await scalar(world["admin"], f"SELECT count(*) FROM {backbone.PRODUCER}.outbox") == 0
    assert await scalar(world["admin"], f"SELECT count(*) FROM {backbone.PRODUCER}.items") == 0


async def test_relay_killed_after_publish_before_mark_still_applies_once(world):
    urls, admin = world["urls"], world["admin"]
    await backbone.produce(urls[backbone.PRODUCER], 10)
    code = await asyncio.to_thread(run_subprocess, "relay-crash", urls[backbone.PRODUCER], world["env"])
    assert code == -signal.SIGKILL
    # The relay died before marking: every row is still pending although every event reached the broker.
    assert await scalar(admin, f"SELECT count(*) FROM {backbone.PRODUCER}.outbox WHERE published_at IS NULL") == 10
    bus = await backbone.bus()
    info = await bus.js.stream_info(bus.stream)
    assert info.state.messages == 10

    from cx_common.db import create_engine
    from cx_common.events import OutboxRelay

    relay = OutboxRelay(create_engine(urls[backbone.PRODUCER], backbone.PRODUCER), bus, schema=backbone.PRODUCER)
    assert await relay.publish_pending() == 10  # published again after the restart
    assert (await bus.js.stream_info(bus.stream)).state.messages == 10  # broker dropped the repeats (Nats-Msg-Id)

    consumer = backbone.make_consumer(bus, urls[backbone.CONSUMER], ack_wait=5)

    async def all_applied() -> bool:
        return len(await applied_counts(admin)) == 10

    await drain(consumer, all_applied)
    assert await applied_counts(admin) == {seq: 1 for seq in range(10)}
    await bus.close()


async def publish_every_event_twice(world, n: int):
    """The producer stages `n` events; each outbox row is then published twice with a different Nats-Msg-Id, so the
    broker stores both copies. Returns the bus."""
    admin = world["admin"]
    await backbone.produce(world["urls"][backbone.PRODUCER], n)
    bus = await backbone.bus()
    conn = await asyncpg.connect(admin)
    rows = await conn.fetch(f"SELECT subject, payload FROM {backbone.PRODUCER}.outbox ORDER BY id")
    await conn.close()
    for attempt in range(2):
        for row in rows:
            await bus.js.publish(row["subject"], bytes(row["payload"]), headers={"Nats-Msg-Id": f"{attempt}-{row}"})
    return bus


async def test_republish_outside_broker_dedup_is_dropped_by_the_consumer(world):
    """Even when the broker lets a repeat through (e.g. outside its duplicate window), the consumer applies once."""
    urls, admin = world["urls"], world["admin"]
    bus = await publish_every_event_twice(world, 3)
    consumer = backbone.make_consumer(bus, urls[backbone.CONSUMER], ack_wait=5)

    async def all_seen() -> bool:
        return await scalar(admin, f"SELECT count(*) FROM {backbone.CONSUMER}.processed_events") == 3

    await drain(consumer, all_seen)
    await asyncio.sleep(0.5)
    assert await applied_counts(admin) == {0: 1, 1: 1, 2: 1}
    await bus.close()


@pytest.mark.parametrize("crash", ["after-commit", "before-commit"])
async def test_consumer_killed_before_ack_is_redelivered_and_applied_once(world, crash):
    urls, admin = world["urls"], world["admin"]
    await backbone.produce(urls[backbone.PRODUCER], 5)
    bus = await backbone.bus()
    from cx_common.db import create_engine
    from cx_common.events import OutboxRelay

    relay = OutboxRelay(create_engine(urls[backbone.PRODUCER], backbone.PRODUCER), bus, schema=backbone.PRODUCER)
    assert await relay.publish_pending() == 5

    code = await asyncio.to_thread(run_subprocess, f"consumer-crash-{crash}", urls[backbone.CONSUMER], world["env"])
    assert code == -signal.SIGKILL
    first = await applied_counts(admin)
    assert first == ({0: 1} if crash == "after-commit" else {})

    consumer = backbone.make_consumer(bus, urls[backbone.CONSUMER], ack_wait=1.0)

    async def all_applied_and_acked() -> bool:
        if len(await applied_counts(admin)) < 5:
            return False
        info = await bus.js.consumer_info(bus.stream, backbone.DURABLE)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await drain(consumer, all_applied_and_acked, limit=30)
    assert await applied_counts(admin) == {seq: 1 for seq in range(5)}
    assert await scalar(admin, f"SELECT count(*) FROM {backbone.CONSUMER}.processed_events") == 5
    await bus.close()


async def one_event_consumer(world, event_id: str, durable: str, handler, backoff: float):
    """(bus, consumer with max_deliver 3 and `handler`, the envelope of the one event published for it)."""
    from cx.events.v1 import events_pb2
    from cx_common.db import create_engine, session_factory
    from cx_common.events import EventConsumer

    bus = await backbone.bus()
    envelope = events_pb2.Envelope(event_id=event_id, type=backbone.EVENT_TYPE)
    await bus.js.publish(f"{bus.subject_prefix}.{backbone.EVENT_TYPE}", envelope.SerializeToString())
    consumer = EventConsumer(
        bus,
        session_factory(create_engine(world["urls"][backbone.CONSUMER], backbone.CONSUMER)),
        durable=durable,
        event_types=[backbone.EVENT_TYPE],
        handler=handler,
        max_deliver=3,
        backoff=(backoff,),
    )
    return bus, consumer, envelope


async def dead_letters(bus, consumer) -> int:
    info = await bus.js.stream_info(bus.stream, subjects_filter=consumer.dlq_subject)
    return int((info.state.subjects or {}).get(consumer.dlq_subject, 0))


async def test_poison_event_goes_to_dead_letter_after_bounded_redelivery(world):
    from cx.events.v1 import events_pb2

    attempts = 0

    async def failing(session, env) -> None:
        nonlocal attempts
        attempts += 1
        raise ValueError("cannot handle this")

    bus, consumer, envelope = await one_event_consumer(
        world, "0190a0f0-0000-7000-8000-000000000001", "poison", failing, 0.1
    )
    dlq = await bus.js.pull_subscribe(consumer.dlq_subject, durable="dlq-reader", stream=bus.stream)

    async def dead_lettered() -> bool:
        return await dead_letters(bus, consumer) > 0

    await drain(consumer, dead_lettered)
    assert attempts == 3
    [msg] = await dlq.fetch(1, timeout=2)
    assert msg.headers["Cx-Dlq-Reason"] == "cannot handle this"
    assert events_pb2.Envelope.FromString(msg.data).event_id == envelope.event_id
    assert await scalar(world["admin"], f"SELECT count(*) FROM {backbone.CONSUMER}.processed_events") == 0
    await bus.close()


async def test_an_unreachable_database_dead_letters_nothing_and_the_event_applies_once_it_is_back(world):
    """Longer than the whole retry budget (max_deliver 3): the event is held, not redelivered, and applied once."""
    attempts = 0

    async def outage_then_ok(session, env) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 6:  # the database "goes away" for six tries, twice the delivery budget
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    bus, consumer, _ = await one_event_consumer(
        world, "0190a0f0-0000-7000-8000-000000000002", "outage", outage_then_ok, 0.05
    )

    async def applied() -> bool:
        return await scalar(world["admin"], f"SELECT count(*) FROM {backbone.CONSUMER}.processed_events") == 1

    await drain(consumer, applied)
    assert attempts == 7
    assert await dead_letters(bus, consumer) == 0
    state = await bus.js.consumer_info(bus.stream, "outage")
    assert state.num_redelivered == 0  # held while waiting, never handed back
    await bus.close()


def test_only_connection_failures_count_as_the_database_being_unreachable() -> None:
    import asyncpg
    from sqlalchemy.exc import OperationalError

    from cx_common.events.consumer import database_unavailable

    wrapped = OperationalError("SELECT 1", {}, asyncpg.exceptions.CannotConnectNowError("the database is starting up"))
    assert database_unavailable(ConnectionRefusedError(111, "refused")) and database_unavailable(wrapped)
    handled = ValueError("bad event")
    handled.__context__ = ConnectionRefusedError(111, "refused")  # raised while handling one: not its cause
    assert not database_unavailable(handled)
    assert not database_unavailable(FileNotFoundError("x")) and not database_unavailable(ValueError("x"))


async def test_batch_consumer_applies_a_fetched_batch_once_and_falls_back_per_message(world):
    """BatchEventConsumer: redelivered copies inside one batch are applied once; a batch whose handler fails is
    rolled back and applied message by message through the per-message handler."""
    urls, admin = world["urls"], world["admin"]
    bus = await publish_every_event_twice(world, 6)  # so batches hold repeats
    batches: list[list[int]] = []
    consumer = backbone.make_batch_consumer(bus, urls[backbone.CONSUMER], batches, fail_on_seq=4)

    async def all_seen() -> bool:
        return await scalar(admin, f"SELECT count(*) FROM {backbone.CONSUMER}.processed_events") == 6

    await drain(consumer, all_seen)
    await asyncio.sleep(0.5)
    assert await applied_counts(admin) == {seq: 1 for seq in range(6)}
    assert any(len(b) > 1 for b in batches), batches  # applied as batches, not one by one
    assert any(4 in b for b in batches)  # the batch with seq 4 failed and was applied per message instead
    await bus.close()
