"""NatsClient JetStream connection and stream setup."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from cx_common.logging import get_logger

log = get_logger(__name__)

DUPLICATE_WINDOW_S = 600.0


async def connect_nats(url: str, *, name: str) -> NatsClient:
    async def _disconnected() -> None:
        log.warning("nats_disconnected")

    async def _reconnected() -> None:
        log.info("nats_reconnected")

    async def _error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
        error_cb=_error,
    )


async def ensure_stream(js: JetStreamContext, name: str, subject_prefix: str) -> None:
    """Create the platform stream once; every relay and consumer calls this at start."""
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=[f"{subject_prefix}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=7 * 24 * 3600,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
    )
    log.info("nats_stream_created", stream=name, subjects=f"{subject_prefix}.>")


@dataclass
class EventBus:
    """A connected JetStream context plus the stream naming of this deployment."""

    nc: NatsClient
    js: JetStreamContext
    stream: str
    subject_prefix: str

    @classmethod
    async def connect(cls, url: str, *, name: str, stream: str = "CX", subject_prefix: str = "cx") -> EventBus:
        nc = await connect_nats(url, name=name)
        js = nc.jetstream()
        await ensure_stream(js, stream, subject_prefix)
        return cls(nc=nc, js=js, stream=stream, subject_prefix=subject_prefix)

    async def close(self) -> None:
        # flush + close rather than drain: drain waits out idle pull subscriptions (up to its 30 s timeout).
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            await self.nc.close()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)
