"""Publishes outbox rows to JetStream, in order, at least once; the broker and consumers dedup by event id.

A relay that dies after publishing but before marking rows as sent simply publishes them again on restart:
JetStream drops the repeat inside its duplicate window (`Nats-Msg-Id` = event id) and consumers drop it after
(processed-event table), so the event is applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from cx_common.events.bus import EventBus
from cx_common.events.outbox import OUTBOX_CHANNEL
from cx_common.logging import get_logger

log = get_logger(__name__)

RELAY_PUBLISHED = Counter("cx_outbox_published_total", "Outbox events published to JetStream", ["schema"])
RELAY_FAILURES = Counter("cx_outbox_publish_failures_total", "Failed publish attempts", ["schema"])
RELAY_BACKLOG = Gauge("cx_outbox_backlog", "Outbox rows not yet published (last seen)", ["schema"])

_CLAIM = text(
    "SELECT id, event_id, subject, payload FROM outbox WHERE published_at IS NULL "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")
_FAIL = text("UPDATE outbox SET attempts = attempts + 1, last_error = :error WHERE id = :id")
_BACKLOG = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")

AfterPublish = Callable[[list[int]], Awaitable[None] | None]


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        *,
        schema: str,
        database_url: str | None = None,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        after_publish: AfterPublish | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.schema = schema
        self.database_url = database_url
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._after_publish = after_publish  # fault-injection point for the exactly-once tests
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published."""
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self.batch_size})).all()
            if not rows:
                return 0
            published: list[int] = []
            for row in rows:
                try:
                    await self.bus.js.publish(
                        row.subject, bytes(row.payload), headers={"Nats-Msg-Id": str(row.event_id)}, timeout=5
                    )
                except Exception as exc:
                    RELAY_FAILURES.labels(self.schema).inc()
                    log.warning("outbox_publish_failed", event_id=str(row.event_id), error=str(exc))
                    await conn.execute(_FAIL, {"id": row.id, "error": str(exc)[:500]})
                    break
                published.append(row.id)
            if published:
                if self._after_publish is not None:
                    result = self._after_publish(published)
                    if asyncio.iscoroutine(result):
                        await result
                await conn.execute(_MARK, {"ids": published})
        RELAY_PUBLISHED.labels(self.schema).inc(len(published))
        return len(published)

    async def backlog(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(_BACKLOG)).scalar_one())

    async def run(self) -> None:
        listener = await self._listen()
        try:
            while not self._stopping.is_set():
                try:
                    count = await self.publish_pending()
                except Exception as exc:  # database or broker hiccup: back off, keep going
                    log.warning("outbox_relay_error", error=str(exc))
                    count = 0
                    await self._sleep(min(5.0, self.poll_interval * 4))
                    continue
                if count >= self.batch_size:
                    continue
                if count == 0:
                    with contextlib.suppress(Exception):
                        RELAY_BACKLOG.labels(self.schema).set(await self.backlog())
                await self._sleep(self.poll_interval)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _listen(self) -> asyncpg.Connection | None:
        if not self.database_url:
            return None
        url = make_url(self.database_url).set(drivername="postgresql")
        try:
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))

            def _notified(*_: Any) -> None:
                self._wake.set()

            await conn.add_listener(OUTBOX_CHANNEL, _notified)
            return conn
        except Exception as exc:
            log.warning("outbox_listen_unavailable", error=str(exc))
            return None

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
