"""Housekeeping loop: forget Idempotency-Keys after their retention period."""

from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.db import utcnow
from cx_common.logging import get_logger
from cx_ingest.feedback.models import IdempotencyRecord

log = get_logger(__name__)


async def purge_idempotency_keys(sessions: async_sessionmaker[AsyncSession], ttl_hours: float) -> int:
    cutoff = utcnow() - dt.timedelta(hours=ttl_hours)
    async with sessions() as session, session.begin():
        result = await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


async def maintenance_loop(sessions: async_sessionmaker[AsyncSession], ttl_hours: float, interval: float) -> None:
    while True:
        try:
            purged = await purge_idempotency_keys(sessions, ttl_hours)
            if purged:
                log.info("idempotency_keys_purged", count=purged)
        except Exception as exc:
            log.warning("maintenance_failed", error=str(exc))
        await asyncio.sleep(interval)
