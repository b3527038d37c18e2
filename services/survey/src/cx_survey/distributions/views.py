import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy import select

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_survey.audit.service import record
from cx_survey.distributions import incentives, service
from cx_survey.distributions.models import Distribution, ScheduledMessage
from cx_survey.distributions.schemas import (
    CodesAdd,
    CodesResult,
    DistributionCreate,
    DistributionRead,
    MessageRead,
    SendCreate,
)
from cx_survey.surveys import service as surveys

router = APIRouter(prefix="/v1", tags=["distributions"])

Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]
Writer = Annotated[Principal, Depends(require_scopes("surveys:write"))]


@router.post("/surveys/{survey_id}/distributions", status_code=status.HTTP_201_CREATED, response_model=DistributionRead)
async def create_distribution(
    survey_id: uuid.UUID, body: DistributionCreate, session: SessionDep, principal: Writer
) -> DistributionRead:
    survey = await surveys.get_or_404(session, principal.tenant_id, survey_id)
    distribution = await service.create(session, survey, body)
    after = DistributionRead.model_validate(distribution).model_dump(mode="json")
    record(session, principal, "distribution.created", "distribution", distribution.id, None, after)
    await session.commit()
    return DistributionRead.model_validate(distribution)


@router.get("/surveys/{survey_id}/distributions", response_model=list[DistributionRead])
async def list_distributions(survey_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[DistributionRead]:
    rows = await session.execute(
        select(Distribution)
        .where(Distribution.tenant_id == principal.tenant_id, Distribution.survey_id == survey_id)
        .order_by(Distribution.id)
    )
    return [DistributionRead.model_validate(d) for d in rows.scalars()]


@router.post(
    "/distributions/{distribution_id}/sends",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageRead,
    summary="Trigger a send (e.g. order delivered → NPS in 24 h); 409 when the contact-frequency rule forbids it",
)
async def trigger_send(
    distribution_id: uuid.UUID, body: SendCreate, session: SessionDep, principal: Writer, request: Request
) -> MessageRead:
    distribution = await service.get(session, principal.tenant_id, distribution_id)
    base = request.app.state.settings.public_base_url
    message = await service.schedule_send(session, distribution, body, base)
    await session.commit()
    return MessageRead.model_validate(message)


@router.get("/distributions/{distribution_id}/messages", response_model=list[MessageRead])
async def list_messages(
    distribution_id: uuid.UUID,
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[MessageRead]:
    await service.get(session, principal.tenant_id, distribution_id)
    rows = await session.execute(
        select(ScheduledMessage)
        .where(ScheduledMessage.tenant_id == principal.tenant_id, ScheduledMessage.distribution_id == distribution_id)
        .order_by(ScheduledMessage.created_at, ScheduledMessage.seq)
        .limit(limit)
    )
    return [MessageRead.model_validate(m) for m in rows.scalars()]


@router.post("/surveys/{survey_id}/incentive-codes", response_model=CodesResult, summary="Add coupon codes to the pool")
async def add_codes(survey_id: uuid.UUID, body: CodesAdd, session: SessionDep, principal: Writer) -> CodesResult:
    survey = await surveys.get_or_404(session, principal.tenant_id, survey_id)
    added, available = await incentives.add_codes(session, survey, body.codes)
    await session.commit()
    return CodesResult(added=added, available=available)
