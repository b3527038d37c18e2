"""Coupon-code pool: one code per completed response, never twice."""

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import utcnow
from cx_survey.distributions.models import IncentiveCode
from cx_survey.surveys.models import Survey


async def add_codes(session: AsyncSession, survey: Survey, codes: list[str]) -> tuple[int, int]:
    cleaned = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    added = 0
    if cleaned:
        stmt = insert(IncentiveCode).values(
            [
                {"id": uuid.uuid4(), "tenant_id": survey.tenant_id, "survey_id": survey.id, "code": c, "meta": {}}
                for c in cleaned
            ]
        )
        result = await session.execute(stmt.on_conflict_do_nothing().returning(IncentiveCode.id))
        added = len(result.all())
    available = await session.scalar(
        select(func.count())
        .select_from(IncentiveCode)
        .where(IncentiveCode.survey_id == survey.id, IncentiveCode.response_id.is_(None))
    )
    return added, int(available or 0)


async def assign_code(session: AsyncSession, survey_id: uuid.UUID, response_id: uuid.UUID) -> str | None:
    """Give one unused code to a completed response (SKIP LOCKED: concurrent responses never get the same code)."""
    pick = (
        select(IncentiveCode.id)
        .where(IncentiveCode.survey_id == survey_id, IncentiveCode.response_id.is_(None))
        .order_by(IncentiveCode.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await session.execute(
        update(IncentiveCode)
        .where(IncentiveCode.id == pick)
        .values(response_id=response_id, assigned_at=utcnow())
        .returning(IncentiveCode.code)
    )
    return result.scalar_one_or_none()


async def code_for(session: AsyncSession, response_id: uuid.UUID) -> str | None:
    return await session.scalar(select(IncentiveCode.code).where(IncentiveCode.response_id == response_id))
