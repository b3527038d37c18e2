"""Re-coding backfill: after a new version of the tenant's active codebook is published (or another codebook is
activated), items coded against anything else go back to the analysis queue, chunk by chunk, in id order.

Items are reset the way a new revision resets them (pending, claim token and lease cleared): an item in flight when
the version changed may be coded against the old one, so it is reset too and its worker's result goes nowhere (the
worker stores by claim token). The job never waits for a row lock (no lock-order deadlock with the ingest upsert or
the worker): it skips locked rows, and its cursor, committed with each chunk, stops before the first row it could
not take, so that row is tried again with the next chunk, after a restart too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.logging import get_logger
from cx_ingest.codebooks.models import RecodeJob

log = get_logger(__name__)

CHUNK = 1000
LOCKED_RETRY_S = 0.2  # a chunk whose rows were all locked is tried again after this long


def _stale(since: str) -> str:
    """Items to re-queue. One in flight counts only when it became due before `since` (the start of this pass): one
    due later was claimed later, and its worker reads the active version after claiming, so it codes against the new
    version already. (This also keeps the pass from resetting a row it re-queued itself once a worker claims it.)"""
    return (
        "tenant_id = :tenant AND (analysis_state IN ('done', 'failed') "
        f"OR (analysis_state = 'processing' AND next_attempt_at < {since})) AND "
        "(analysis IS NULL OR analysis->>'codebook_id' IS DISTINCT FROM :codebook "
        "OR (analysis->>'codebook_version')::bigint < :version)"
    )


_COUNT = text(f"SELECT count(*) FROM feedback_items WHERE {_stale('now()')}")  # noqa: S608 - constant SQL
_SINCE = "CAST(:since AS timestamptz)"
# The next stale rows after the cursor (not locked: a row someone else holds is still listed), those of them that
# can be locked right now, re-queued; answers every listed id and whether it was re-queued.
_REQUEUE = text(
    f"""
    WITH listed AS (
        SELECT id FROM feedback_items
        WHERE {_stale(_SINCE)} AND (CAST(:cursor AS uuid) IS NULL OR id > CAST(:cursor AS uuid))
        ORDER BY id LIMIT :limit
    ), locked AS (
        SELECT id FROM feedback_items
        WHERE id IN (SELECT id FROM listed) AND {_stale(_SINCE)}
        FOR UPDATE SKIP LOCKED
    ), requeued AS (
        UPDATE feedback_items f
        SET analysis_state = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
            claim_token = NULL, lease_until = NULL
        FROM locked WHERE f.id = locked.id
        RETURNING f.id
    )
    SELECT listed.id, requeued.id IS NOT NULL AS requeued
    FROM listed LEFT JOIN requeued ON requeued.id = listed.id
    ORDER BY listed.id
    """  # noqa: S608 - constant SQL
)


async def start_job(session: AsyncSession, tenant_id: uuid.UUID, codebook_id: uuid.UUID, version: int) -> RecodeJob:
    """Create the job in the caller's transaction (earlier running jobs of the tenant are superseded)."""
    await session.execute(
        update(RecodeJob)
        .where(RecodeJob.tenant_id == tenant_id, RecodeJob.status == "running")
        .values(status="superseded")
    )
    params = {"tenant": tenant_id, "codebook": str(codebook_id), "version": version}
    total = (await session.execute(_COUNT, params)).scalar_one()
    job = RecodeJob(tenant_id=tenant_id, codebook_id=codebook_id, version=version, total=total, queued=0)
    session.add(job)
    await session.flush()
    return job


async def run_job(sessions: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> None:
    since: dt.datetime | None = None
    while (chunk := await _chunk(sessions, job_id, since)) is not None:
        requeued, since = chunk
        if requeued == 0:  # every row listed was locked: let its holder finish
            await asyncio.sleep(LOCKED_RETRY_S)


async def _chunk(
    sessions: async_sessionmaker[AsyncSession], job_id: uuid.UUID, since: dt.datetime | None
) -> tuple[int, dt.datetime] | None:
    """Re-queue the next chunk: (rows re-queued, start of the pass: the first chunk's transaction), None once the
    job is finished (or no longer runs)."""
    async with sessions() as session, session.begin():
        job = await session.get(RecodeJob, job_id, with_for_update=True)
        if job is None or job.status != "running":
            return None
        if since is None:
            since = (await session.execute(text("SELECT now()"))).scalar_one()
        params = {
            "tenant": job.tenant_id,
            "codebook": str(job.codebook_id),
            "version": job.version,
            "since": since,
            "cursor": job.cursor,
            "limit": CHUNK,
        }
        rows = (await session.execute(_REQUEUE, params)).all()
        if not rows:
            job.status = "completed"
            log.info("recode_completed", job=str(job_id), queued=job.queued)
            return None
        job.cursor = _advance(job.cursor, rows)
        requeued = sum(1 for row in rows if row.requeued)
        job.queued += requeued
        return requeued, since


def _advance(cursor: uuid.UUID | None, rows: Sequence[Any]) -> uuid.UUID | None:
    """The cursor past the listed rows (in id order) up to the first one that was not re-queued."""
    for row in rows:
        if not row.requeued:
            break
        cursor = row.id
    return cursor


async def running_jobs(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    async with sessions() as session:
        return list((await session.execute(select(RecodeJob.id).where(RecodeJob.status == "running"))).scalars())


async def recoded_count(session: AsyncSession, job: RecodeJob) -> int:
    query = text(
        "SELECT count(*) FROM feedback_items WHERE tenant_id = :tenant AND analysis_state = 'done' "
        "AND analysis->>'codebook_id' = :codebook AND (analysis->>'codebook_version')::bigint >= :version"
    )
    params = {"tenant": job.tenant_id, "codebook": str(job.codebook_id), "version": job.version}
    return int((await session.execute(query, params)).scalar_one())
