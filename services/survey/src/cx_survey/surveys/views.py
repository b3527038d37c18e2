import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, status

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem, not_found
from cx_common.pagination import Page, clamp_limit
from cx_survey.audit.service import record, snapshot
from cx_survey.surveys import service
from cx_survey.surveys.definition import Definition, json_schema
from cx_survey.surveys.schemas import (
    SurveyCreate,
    SurveyExport,
    SurveyRead,
    SurveyUpdate,
    TemplateName,
    TemplateRead,
    VersionRead,
)
from cx_survey.surveys.templates import TEMPLATES

router = APIRouter(prefix="/v1/surveys", tags=["surveys"])

Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]
Writer = Annotated[Principal, Depends(require_scopes("surveys:write"))]


@router.get("/definition-schema", summary="JSON Schema of the survey definition format")
async def definition_schema() -> dict[str, Any]:
    return json_schema()


@router.get("/templates", response_model=list[TemplateRead], summary="Ready-made definitions")
async def list_templates(principal: Reader) -> list[TemplateRead]:
    return [
        TemplateRead(name=name, definition=service.dump(Definition.model_validate(body)))
        for name, body in TEMPLATES.items()
    ]


@router.get("/templates/{name}", response_model=TemplateRead)
async def get_template(name: TemplateName, principal: Reader) -> TemplateRead:
    return TemplateRead(name=name, definition=service.dump(Definition.model_validate(TEMPLATES[name])))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SurveyRead)
async def create_survey(body: SurveyCreate, session: SessionDep, principal: Writer) -> SurveyRead:
    survey = await service.create(session, principal.tenant_id, body)
    record(session, principal, "survey.created", "survey", survey.id, None, snapshot(survey))
    await session.commit()
    return SurveyRead.model_validate(survey)


@router.post("/import", status_code=status.HTTP_201_CREATED, response_model=SurveyRead, summary="Import an export")
async def import_survey(body: SurveyExport, session: SessionDep, principal: Writer) -> SurveyRead:
    data = SurveyCreate(title=body.title, default_language=body.default_language, definition=body.definition)
    survey = await service.create(session, principal.tenant_id, data)
    record(session, principal, "survey.imported", "survey", survey.id, None, snapshot(survey))
    await session.commit()
    return SurveyRead.model_validate(survey)


@router.get("", response_model=Page[SurveyRead])
async def list_surveys(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
    status: Literal["draft", "published", "closed"] | None = None,
) -> Page[SurveyRead]:
    rows, next_cursor = await service.list_page(
        session, principal.tenant_id, limit=clamp_limit(limit), cursor=cursor, status=status
    )
    return Page[SurveyRead](items=[SurveyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{survey_id}", response_model=SurveyRead)
async def get_survey(survey_id: uuid.UUID, session: SessionDep, principal: Reader) -> SurveyRead:
    survey = await service.get(session, principal.tenant_id, survey_id)
    if survey is None:
        raise not_found("survey", survey_id)
    return SurveyRead.model_validate(survey)


@router.patch("/{survey_id}", response_model=SurveyRead, summary="Edit the draft (published versions never change)")
async def update_survey(survey_id: uuid.UUID, body: SurveyUpdate, session: SessionDep, principal: Writer) -> SurveyRead:
    survey = await service.get_or_404(session, principal.tenant_id, survey_id, lock=True)
    before = snapshot(survey)
    await service.update(session, survey, body)
    record(session, principal, "survey.updated", "survey", survey.id, before, snapshot(survey))
    await session.commit()
    return SurveyRead.model_validate(survey)


@router.post("/{survey_id}/publish", status_code=status.HTTP_201_CREATED, response_model=VersionRead)
async def publish_survey(survey_id: uuid.UUID, session: SessionDep, principal: Writer) -> VersionRead:
    survey = await service.get_or_404(session, principal.tenant_id, survey_id, lock=True)
    before = snapshot(survey)
    version = await service.publish(session, survey, principal.user_id)
    record(session, principal, "survey.published", "survey", survey.id, before, snapshot(survey))
    await session.commit()
    return VersionRead.model_validate(version)


@router.post("/{survey_id}/close", response_model=SurveyRead, summary="Stop accepting responses")
async def close_survey(survey_id: uuid.UUID, session: SessionDep, principal: Writer) -> SurveyRead:
    survey = await service.get_or_404(session, principal.tenant_id, survey_id, lock=True)
    before = snapshot(survey)
    survey.status = "closed"
    record(session, principal, "survey.closed", "survey", survey.id, before, snapshot(survey))
    await session.commit()
    await session.refresh(survey)
    return SurveyRead.model_validate(survey)


@router.get("/{survey_id}/versions", response_model=list[VersionRead])
async def list_versions(survey_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[VersionRead]:
    await service.get_or_404(session, principal.tenant_id, survey_id)
    return [VersionRead.model_validate(v) for v in await service.list_versions(session, principal.tenant_id, survey_id)]


@router.get("/{survey_id}/versions/{version}", response_model=VersionRead)
async def get_version(survey_id: uuid.UUID, version: int, session: SessionDep, principal: Reader) -> VersionRead:
    found = await service.get_version(session, principal.tenant_id, survey_id, version)
    if found is None:
        raise not_found("version", version)
    return VersionRead.model_validate(found)


@router.get(
    "/{survey_id}/export",
    response_model=SurveyExport,
    response_model_exclude_none=True,
    summary="Export the draft (or latest version)",
)
async def export_survey(survey_id: uuid.UUID, session: SessionDep, principal: Reader) -> SurveyExport:
    survey = await service.get_or_404(session, principal.tenant_id, survey_id)
    if survey.definition is None:
        raise Problem(409, "survey has no definition to export", field="definition")
    return SurveyExport(
        title=survey.title,
        default_language=survey.default_language,
        definition=Definition.model_validate(survey.definition),
    )
