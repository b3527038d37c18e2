import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import utcnow
from cx_common.errors import Problem, not_found
from cx_common.pagination import cursor_uuid, encode_cursor
from cx_survey.surveys.definition import Definition
from cx_survey.surveys.models import Survey, SurveyVersion
from cx_survey.surveys.schemas import SurveyCreate, SurveyUpdate
from cx_survey.surveys.templates import TEMPLATES


def dump(definition: Definition) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)


async def create(session: AsyncSession, tenant_id: uuid.UUID, data: SurveyCreate) -> Survey:
    definition: dict[str, Any] | None = None
    if data.definition is not None:
        definition = dump(data.definition)
    elif data.template is not None:
        definition = dump(Definition.model_validate(TEMPLATES[data.template]))
    survey = Survey(
        tenant_id=tenant_id,
        title=data.title,
        default_language=data.default_language,
        definition=definition,
        touchpoint_id=data.touchpoint_id,
        quota=data.quota,
        status="draft",
    )
    session.add(survey)
    await session.flush()
    await session.refresh(survey)
    return survey


async def get(session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID) -> Survey | None:
    result = await session.execute(select(Survey).where(Survey.tenant_id == tenant_id, Survey.id == survey_id))
    return result.scalar_one_or_none()


async def get_or_404(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, *, lock: bool = False
) -> Survey:
    query = select(Survey).where(Survey.tenant_id == tenant_id, Survey.id == survey_id)
    if lock:
        query = query.with_for_update()
    survey = (await session.execute(query)).scalar_one_or_none()
    if survey is None:
        raise not_found("survey", survey_id)
    return survey


async def update(session: AsyncSession, survey: Survey, data: SurveyUpdate) -> Survey:
    if survey.status == "closed":
        raise Problem(409, "survey is closed", field="status")
    if data.title is not None:
        survey.title = data.title
    if data.definition is not None:
        survey.definition = dump(data.definition)
    if "touchpoint_id" in data.model_fields_set:
        survey.touchpoint_id = data.touchpoint_id
    if "quota" in data.model_fields_set:
        survey.quota = data.quota
    survey.updated_at = utcnow()
    await session.flush()
    return survey


async def publish(session: AsyncSession, survey: Survey, published_by: str) -> SurveyVersion:
    if survey.status == "closed":
        raise Problem(409, "survey is closed", field="status")
    if survey.definition is None:
        raise Problem(422, "definition: a survey needs a definition before it can be published", field="definition")
    definition = Definition.model_validate(survey.definition)  # re-checked: stored drafts are always valid
    latest = await session.scalar(select(func.max(SurveyVersion.version)).where(SurveyVersion.survey_id == survey.id))
    version = SurveyVersion(
        tenant_id=survey.tenant_id,
        survey_id=survey.id,
        version=(latest or 0) + 1,
        definition=dump(definition),
        published_by=published_by,
        published_at=utcnow(),
    )
    session.add(version)
    survey.current_version = version.version
    survey.status = "published"
    survey.updated_at = utcnow()
    await session.flush()
    return version


async def get_version(
    session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID, version: int
) -> SurveyVersion | None:
    result = await session.execute(
        select(SurveyVersion).where(
            SurveyVersion.tenant_id == tenant_id, SurveyVersion.survey_id == survey_id, SurveyVersion.version == version
        )
    )
    return result.scalar_one_or_none()


async def list_versions(session: AsyncSession, tenant_id: uuid.UUID, survey_id: uuid.UUID) -> list[SurveyVersion]:
    result = await session.execute(
        select(SurveyVersion)
        .where(SurveyVersion.tenant_id == tenant_id, SurveyVersion.survey_id == survey_id)
        .order_by(SurveyVersion.version)
    )
    return list(result.scalars())


async def list_page(
    session: AsyncSession, tenant_id: uuid.UUID, *, limit: int, cursor: str | None, status: str | None = None
) -> tuple[list[Survey], str | None]:
    query = select(Survey).where(Survey.tenant_id == tenant_id).order_by(Survey.id).limit(limit + 1)
    if status is not None:
        query = query.where(Survey.status == status)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(Survey.id > after)
    rows = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
