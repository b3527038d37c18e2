"""Scheduled clustering: every `clustering_interval_s`, each tenant with new unmatched items gets a cluster run.
A Postgres advisory lock makes one replica do it at a time."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.logging import get_logger
from cx_ingest.clusters.models import ClusterRun
from cx_ingest.clusters.schemas import ClusterRunIn
from cx_ingest.clusters.service import run_clustering
from cx_ingest.feedback.models import FeedbackItem

log = get_logger(__name__)
LOCK_KEY = 0x1A9E57C1  # advisory lock id of the clustering schedule


async def tenants_due(session: AsyncSession) -> list[uuid.UUID]:
    """Tenants with unmatched items analysed after their latest cluster run."""
    last_run = (
        select(ClusterRun.tenant_id, func.max(ClusterRun.created_at).label("at"))
        .group_by(ClusterRun.tenant_id)
        .subquery()
    )
    query = (
        select(FeedbackItem.tenant_id)
        .outerjoin(last_run, last_run.c.tenant_id == FeedbackItem.tenant_id)
        .where(
            FeedbackItem.unmatched.is_(True),
            (last_run.c.at.is_(None)) | (FeedbackItem.analyzed_at > last_run.c.at),
        )
        .distinct()
    )
    return list((await session.execute(query)).scalars())


async def run_schedule_once(sessions: async_sessionmaker[AsyncSession], stub: Any) -> int:
    runs = 0
    async with sessions() as session, session.begin():
        locked = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY})).scalar()
        if not locked:
            return 0
        for tenant_id in await tenants_due(session):
            try:
                async with session.begin_nested():
                    await run_clustering(session, stub, tenant_id, ClusterRunIn(), actor="schedule", trigger="schedule")
                runs += 1
            except Exception as exc:
                log.warning("scheduled_clustering_failed", tenant=str(tenant_id), error=str(exc))
    return runs


async def clustering_loop(sessions: async_sessionmaker[AsyncSession], stub: Any, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await run_schedule_once(sessions, stub)
        except Exception as exc:
            log.warning("clustering_schedule_error", error=str(exc))
