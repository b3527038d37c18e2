"""Re-coding backfill: after a new version of the tenant's active codebook is published (or another codebook is
activated), items coded against anything else go back to the analysis queue, chunk by chunk, in id order."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.logging import get_logger
from cx_ingest.codebooks.models import RecodeJob

log = get_logger(__name__)

CHUNK = 1000

_STALE = (
    "tenant_id = :tenant AND analysis_state IN ('done', 'failed') AND "
    "(analysis IS NULL OR analysis->>'codebook_id' IS DISTINCT FROM :codebook "
    "OR (analysis->>'codebook_version')::bigint < :version)"
)
_COUNT = text(f"SELECT count(*) FROM feedback_items WHERE {_STALE}")  # noqa: S608 - constant SQL
_REQUEUE = text(
    f"""
    WITH picked AS (
        SELECT id FROM feedback_items
        WHERE {_STALE} AND (CAST(:cursor AS uuid) IS NULL OR id > CAST(:cursor AS uuid))
        ORDER BY id LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE feedback_items f
    SET analysis_state = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL
    FROM picked WHERE f.id = picked.id
    RETURNING f.id
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
    while True:
        async with sessions() as session, session.begin():
            job = await session.get(RecodeJob, job_id, with_for_update=True)
            if job is None or job.status != "running":
                return
            rows = (
                await session.execute(
                    _REQUEUE,
                    {
                        "tenant": job.tenant_id,
                        "codebook": str(job.codebook_id),
                        "version": job.version,
                        "cursor": job.cursor,
                        "limit": CHUNK,
                    },
                )
            ).scalars()
            ids = sorted(rows)
            if not ids:
                job.status = "completed"
                log.info("recode_completed", job=str(job_id), queued=job.queued)
                return
            job.cursor = max(ids)
            job.queued += len(ids)


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
