import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.pagination import Page, clamp_limit
from cx_survey.audit.service import record
from cx_survey.followups import service
from cx_survey.followups.schemas import FollowUpDefault, FollowUpRead

router = APIRouter(prefix="/v1/distributions", tags=["distributions"])

Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]
Writer = Annotated[Principal, Depends(require_scopes("surveys:write"))]


@router.get(
    "/follow-ups",
    response_model=Page[FollowUpRead],
    summary="Follow-up surveys asked for by tickets (alerts), newest first: scheduled sends and undeliverable ones",
)
async def list_follow_ups(
    session: SessionDep,
    principal: Reader,
    ticket_id: str | None = None,
    status: Literal["scheduled", "undeliverable"] | None = None,
    distribution_id: uuid.UUID | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[FollowUpRead]:
    rows, next_cursor = await service.list_page(
        session,
        principal.tenant_id,
        principal.org_unit_id,
        limit=clamp_limit(limit),
        cursor=cursor,
        ticket_id=ticket_id,
        status=status,
        distribution_id=distribution_id,
    )
    items = [FollowUpRead.model_validate(r).model_copy(update={"message_status": s}) for r, s in rows]
    return Page[FollowUpRead](items=items, next_cursor=next_cursor)


@router.get("/follow-up-default", response_model=FollowUpDefault, summary="The tenant's follow-up distribution")
async def get_follow_up_default(session: SessionDep, principal: Reader) -> FollowUpDefault:
    return FollowUpDefault(distribution_id=await service.get_default(session, principal.tenant_id))


@router.put(
    "/follow-up-default",
    response_model=FollowUpDefault,
    summary="Set the distribution follow-up surveys use when a ticket's request names none (null: none)",
)
async def put_follow_up_default(body: FollowUpDefault, session: SessionDep, principal: Writer) -> FollowUpDefault:
    before = await service.get_default(session, principal.tenant_id)
    await service.set_default(session, principal.tenant_id, body.distribution_id)
    record(
        session,
        principal,
        "follow_up_default.set",
        "tenant",
        principal.tenant_id,
        {"distribution_id": str(before) if before else None},
        {"distribution_id": str(body.distribution_id) if body.distribution_id else None},
    )
    await session.commit()
    return body
