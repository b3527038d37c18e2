import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit
from cx_survey.surveys import service
from cx_survey.surveys.schemas import SurveyCreate, SurveyRead

router = APIRouter(prefix="/v1/surveys", tags=["surveys"])

Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]
Writer = Annotated[Principal, Depends(require_scopes("surveys:write"))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SurveyRead)
async def create_survey(body: SurveyCreate, session: SessionDep, principal: Writer) -> SurveyRead:
    survey = await service.create(session, principal.tenant_id, body)
    await session.commit()
    return SurveyRead.model_validate(survey)


@router.get("", response_model=Page[SurveyRead])
async def list_surveys(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[SurveyRead]:
    rows, next_cursor = await service.list_page(session, principal.tenant_id, limit=clamp_limit(limit), cursor=cursor)
    return Page[SurveyRead](items=[SurveyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{survey_id}", response_model=SurveyRead)
async def get_survey(survey_id: uuid.UUID, session: SessionDep, principal: Reader) -> SurveyRead:
    survey = await service.get(session, principal.tenant_id, survey_id)
    if survey is None:
        raise not_found("survey", survey_id)
    return SurveyRead.model_validate(survey)
