import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select

from cx_common.app import SessionDep, get_runtime
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit, cursor_uuid, encode_cursor
from cx_survey.responses import export, service, submission
from cx_survey.responses.direct import SubmitRoute
from cx_survey.responses.models import PartialResponse
from cx_survey.responses.models import Response as ResponseRow
from cx_survey.responses.schemas import (
    DeletionResult,
    InvitationCreate,
    InvitationRead,
    PartialRead,
    PartialSave,
    ResponseRead,
    ResponseSubmit,
    SubmitResult,
)
from cx_survey.surveys import service as surveys
from cx_survey.surveys.definition import Definition

public = APIRouter(prefix="/v1/public/surveys", tags=["respondents"])
router = APIRouter(prefix="/v1", tags=["responses"])

Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]
Writer = Annotated[Principal, Depends(require_scopes("surveys:write"))]
Exporter = Annotated[Principal, Depends(require_scopes("surveys:read"))]


def preferred_language(accept_language: str | None) -> str:
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag in ("zh-hant", "zh-tw", "zh-hk", "zh-mo") or tag.startswith("zh-hant"):
            return "zh-Hant"
        if tag.startswith("zh"):
            return "zh-Hans"
        if tag.startswith("en"):
            return "en"
    return "zh-Hans"


@public.get("/{survey_id}", summary="The published definition a respondent answers (no login)")
async def get_public_survey(survey_id: uuid.UUID, session: SessionDep) -> dict[str, Any]:
    survey, version, definition = await service.public_survey(session, survey_id)
    return {"survey_id": str(survey.id), "version": version.version, "definition": surveys.dump(definition)}


async def submit_response(
    survey_id: uuid.UUID,
    body: ResponseSubmit,
    request: Request,
    accept_language: Annotated[str | None, Header()] = None,
) -> Response:
    result = await submission.submit(
        get_runtime(request),
        survey_id,
        body,
        accept_language=preferred_language(accept_language),
        subject_prefix=request.app.state.settings.events_subject_prefix,
    )
    return Response(
        result.model_dump_json(),
        status_code=200 if result.duplicate else 201,
        media_type="application/json",
    )


def submit_route() -> SubmitRoute:
    """The submit endpoint's route. The app puts it first among its own routes (not in a router it includes): it
    carries the respondents' traffic, and is then matched at once instead of through the included-router lookup."""
    return SubmitRoute(
        "/v1/public/surveys/{survey_id}/responses",
        submit_response,
        methods=["POST"],
        status_code=status.HTTP_201_CREATED,
        response_model=SubmitResult,
        tags=["respondents"],
        summary="Submit a response (idempotent on submission_id / personal token)",
        responses={200: {"model": SubmitResult, "description": "duplicate submission: the first response"}},
    )


@public.post("/{survey_id}/partial", response_model=PartialRead, summary="Save answers so far (resume later)")
async def save_partial(survey_id: uuid.UUID, body: PartialSave, session: SessionDep) -> PartialRead:
    survey, _version, definition = await service.public_survey(session, survey_id)
    partial = await service.save_partial(session, survey, definition, body.resume_id, body.answers, body.hidden)
    await session.commit()
    return PartialRead(
        resume_id=partial.id, survey_id=survey.id, answers=partial.answers, started_at=partial.started_at
    )


@public.get("/{survey_id}/partial/{resume_id}", response_model=PartialRead, summary="Resume a partial save")
async def get_partial(survey_id: uuid.UUID, resume_id: str, session: SessionDep) -> PartialRead:
    partial = await session.get(PartialResponse, resume_id)
    if partial is None or partial.survey_id != survey_id:
        raise not_found("partial response", resume_id)
    return PartialRead(
        resume_id=partial.id, survey_id=survey_id, answers=partial.answers, started_at=partial.started_at
    )


@router.post("/surveys/{survey_id}/invitations", status_code=status.HTTP_201_CREATED, response_model=InvitationRead)
async def create_invitation(
    survey_id: uuid.UUID, body: InvitationCreate, session: SessionDep, principal: Writer, request: Request
) -> InvitationRead:
    survey = await surveys.get_or_404(session, principal.tenant_id, survey_id)
    invitation, token = await service.create_invitation(session, survey, body)
    await session.commit()
    url = str(request.url_for("respondent_page", survey_id=str(survey.id)).include_query_params(t=token))
    return InvitationRead(id=invitation.id, survey_id=survey.id, token=token, url=url, expires_at=invitation.expires_at)


async def _filtered(
    session: SessionDep,
    principal: Principal,
    survey_id: uuid.UUID | None,
    touchpoint_id: uuid.UUID | None,
    journey_stage: str | None,
    nps_category: str | None,
    customer_key: str | None,
    org_unit_id: str | None,
    submitted_from: dt.datetime | None,
    submitted_to: dt.datetime | None,
) -> Any:
    query = select(ResponseRow).where(ResponseRow.tenant_id == principal.tenant_id)
    scope = await service.visible_org_filter(session, principal.tenant_id, principal.org_unit_id)
    if scope is not None:
        query = query.where(ResponseRow.org_path.contains([scope]))
    if survey_id:
        query = query.where(ResponseRow.survey_id == survey_id)
    if touchpoint_id:
        query = query.where(ResponseRow.touchpoint_id == touchpoint_id)
    if journey_stage:
        query = query.where(ResponseRow.journey_stage == journey_stage)
    if nps_category:
        query = query.where(ResponseRow.nps_category == nps_category)
    if customer_key:
        query = query.where(ResponseRow.customer_key == customer_key)
    if org_unit_id:
        query = query.where(ResponseRow.org_path.contains([org_unit_id]))
    if submitted_from:
        query = query.where(ResponseRow.submitted_at >= submitted_from)
    if submitted_to:
        query = query.where(ResponseRow.submitted_at < submitted_to)
    return query


@router.get("/responses", response_model=Page[ResponseRead], summary="List responses (org-scoped, filterable)")
async def list_responses(
    session: SessionDep,
    principal: Reader,
    survey_id: uuid.UUID | None = None,
    touchpoint_id: uuid.UUID | None = None,
    journey_stage: str | None = None,
    nps_category: Literal["promoter", "passive", "detractor"] | None = None,
    customer_key: str | None = None,
    org_unit_id: str | None = None,
    submitted_from: dt.datetime | None = None,
    submitted_to: dt.datetime | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[ResponseRead]:
    query = await _filtered(
        session,
        principal,
        survey_id,
        touchpoint_id,
        journey_stage,
        nps_category,
        customer_key,
        org_unit_id,
        submitted_from,
        submitted_to,
    )
    size = clamp_limit(limit)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(ResponseRow.id < after)
    rows = list((await session.execute(query.order_by(ResponseRow.id.desc()).limit(size + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[size - 1].id)}) if len(rows) > size else None
    return Page[ResponseRead](items=[ResponseRead.model_validate(r) for r in rows[:size]], next_cursor=next_cursor)


@router.get("/responses/export", summary="Stream responses of a survey as CSV or XLSX")
async def export_responses(
    session: SessionDep,
    principal: Exporter,
    survey_id: uuid.UUID,
    format: Literal["csv", "xlsx"] = "csv",
    touchpoint_id: uuid.UUID | None = None,
    nps_category: Literal["promoter", "passive", "detractor"] | None = None,
    submitted_from: dt.datetime | None = None,
    submitted_to: dt.datetime | None = None,
) -> StreamingResponse:
    survey = await surveys.get_or_404(session, principal.tenant_id, survey_id)
    question_ids: list[str] = []
    for version in await surveys.list_versions(session, principal.tenant_id, survey.id):
        for qid in Definition.model_validate(version.definition).questions():
            if qid not in question_ids:
                question_ids.append(qid)
    query = await _filtered(
        session, principal, survey_id, touchpoint_id, None, nps_category, None, None, submitted_from, submitted_to
    )
    query = query.order_by(ResponseRow.id)
    name = f"responses-{survey.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return StreamingResponse(export.stream_xlsx(session, query, question_ids), media_type=media, headers=headers)
    return StreamingResponse(
        export.stream_csv(session, query, question_ids), media_type="text/csv; charset=utf-8", headers=headers
    )


@router.get("/responses/{response_id}", response_model=ResponseRead)
async def get_response(response_id: uuid.UUID, session: SessionDep, principal: Reader) -> ResponseRead:
    query = await _filtered(session, principal, None, None, None, None, None, None, None, None)
    found = (await session.execute(query.where(ResponseRow.id == response_id))).scalar_one_or_none()
    if found is None:
        raise not_found("response", response_id)
    return ResponseRead.model_validate(found)


@router.delete("/customers/{customer_key}/responses", response_model=DeletionResult, summary="Privacy deletion")
async def delete_customer_data(customer_key: str, session: SessionDep, principal: Writer) -> DeletionResult:
    responses, invitations, messages = await service.delete_customer(session, principal.tenant_id, customer_key)
    await session.commit()
    return DeletionResult(
        customer_key=customer_key,
        responses_deleted=responses,
        invitations_deleted=invitations,
        messages_deleted=messages,
    )
