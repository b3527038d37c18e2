import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.pagination import decode_cursor, encode_cursor
from cx_survey.surveys.models import Survey
from cx_survey.surveys.schemas import SurveyCreate


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: SurveyCreate) -> Survey:
    survey = Survey(tenant_id=tenant_id, title=data.title, default_language=data.default_language)
    session.add(survey)
    await session.flush()
    return survey


async def get(session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID) -> Survey | None:
    result = await session.execute(select(Survey).where(Survey.tenant_id == tenant_id, Survey.id == survey_id))
    return result.scalar_one_or_none()


async def list_page(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[Survey], str | None]:
    query = select(Survey).where(Survey.tenant_id == tenant_id).order_by(Survey.id).limit(limit + 1)
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(Survey.id > uuid.UUID(str(after.get("id"))))
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
