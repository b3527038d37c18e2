import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from cx_alerts.audit.service import Actor
from cx_alerts.concurrency import check_version, expected_version, set_etag
from cx_alerts.context import CtxDep
from cx_alerts.org import service as org
from cx_alerts.sla import service as sla
from cx_alerts.tickets import service
from cx_alerts.tickets.models import Ticket
from cx_alerts.tickets.schemas import (
    CommentCreate,
    CommentRead,
    ContactCreate,
    ContactRead,
    Priority,
    Status,
    TicketCreate,
    TicketDetail,
    TicketPatch,
    TicketRead,
    TimerRead,
    Transition,
)
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import Problem, not_found
from cx_common.pagination import Page, clamp_limit

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])

Reader = Annotated[Principal, Depends(require_scopes("tickets:read"))]
Writer = Annotated[Principal, Depends(require_scopes("tickets:write"))]
IfMatch = Annotated[str | None, Header(description='ETag of the version you read, e.g. "3"')]


def _read(ticket: Ticket) -> TicketRead:
    out = TicketRead.model_validate(ticket)
    out.allowed_transitions = list(service.TRANSITIONS[ticket.status])
    return out


async def _load(session: SessionDep, principal: Principal, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket:
    ticket = await service.get(session, principal.tenant_id, ticket_id, lock=lock)
    if ticket is None or not service.visible_to(principal, ticket):
        raise not_found("ticket", ticket_id)
    return ticket


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TicketRead, summary="Open a ticket by hand")
async def create_ticket(
    body: TicketCreate, session: SessionDep, principal: Writer, ctx: CtxDep, response: Response
) -> TicketRead:
    if await org.get_unit(session, principal.tenant_id, body.org_unit_id) is None:
        raise Problem(
            422,
            f"org_unit_id: unknown org unit {body.org_unit_id}",
            title="Validation failed",
            errors=[{"field": "org_unit_id", "message": "unknown org unit", "type": "unknown"}],
        )
    for field, user_id in [("owner_user_id", body.owner_user_id)] + [
        (f"watchers.{i}", w) for i, w in enumerate(body.watchers)
    ]:
        if user_id is not None and await org.get_user(session, principal.tenant_id, user_id) is None:
            raise Problem(
                422,
                f"{field}: unknown user {user_id}",
                title="Validation failed",
                errors=[{"field": field, "message": "unknown or inactive user", "type": "unknown"}],
            )
    ticket = await service.open_ticket(
        session,
        ctx,
        principal.tenant_id,
        Actor.of(principal),
        title=body.title,
        priority=body.priority,
        org_unit_id=body.org_unit_id,
        customer_key=body.customer_key,
        touchpoint_id=body.touchpoint_id,
        channel=body.channel,
        watchers=body.watchers,
        owner_user_id=body.owner_user_id,
    )
    await session.commit()
    set_etag(response, ticket.version)
    return _read(ticket)


@router.get("", response_model=Page[TicketRead], summary="List tickets visible to the caller (newest first)")
async def list_tickets(
    session: SessionDep,
    principal: Reader,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    priority: Priority | None = None,
    owner_user_id: str | None = None,
    org_unit_id: str | None = None,
    customer_key: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[TicketRead]:
    rows, next_cursor = await service.list_page(
        session,
        principal,
        limit=clamp_limit(limit),
        cursor=cursor,
        status=status_ or (),
        priority=priority,
        owner_user_id=owner_user_id,
        org_unit_id=org_unit_id,
        customer_key=customer_key,
    )
    return Page[TicketRead](items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/{ticket_id}", response_model=TicketDetail, summary="A ticket with its source signal, contacts, timers")
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep, principal: Reader, response: Response) -> TicketDetail:
    ticket = await _load(session, principal, ticket_id)
    set_etag(response, ticket.version)
    base = _read(ticket).model_dump()
    return TicketDetail(
        **base,
        source=ticket.source_payload,
        analysis=ticket.source_analysis,
        contacts=[ContactRead.model_validate(c) for c in await service.contacts(session, ticket.id)],
        timers=[TimerRead.model_validate(t) for t in await sla.timers_of(session, ticket.id)],
    )


@router.patch("/{ticket_id}", response_model=TicketRead, summary="Edit priority, owner, watchers, title")
async def patch_ticket(
    ticket_id: uuid.UUID,
    body: TicketPatch,
    session: SessionDep,
    principal: Writer,
    ctx: CtxDep,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    expected = expected_version(if_match, body.version)
    ticket = await _load(session, principal, ticket_id, lock=True)
    check_version(ticket.version, expected, "ticket")
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    await service.edit(session, ctx, ticket, Actor.of(principal), changes)
    await session.commit()
    set_etag(response, ticket.version)
    return _read(ticket)


@router.post("/{ticket_id}/transitions", response_model=TicketRead, summary="Move a ticket to another status")
async def transition_ticket(
    ticket_id: uuid.UUID,
    body: Transition,
    session: SessionDep,
    principal: Writer,
    ctx: CtxDep,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    expected = expected_version(if_match, body.version)
    ticket = await _load(session, principal, ticket_id, lock=True)
    check_version(ticket.version, expected, "ticket")
    await service.transition(
        session,
        ctx,
        ticket,
        Actor.of(principal),
        body.status,
        resolution_code=body.resolution_code,
        outcome=body.outcome,
        note=body.note,
    )
    await session.commit()
    set_etag(response, ticket.version)
    return _read(ticket)


@router.post(
    "/{ticket_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentRead,
    summary="Comment (or internal note) on a ticket",
)
async def add_comment(
    ticket_id: uuid.UUID, body: CommentCreate, session: SessionDep, principal: Writer, ctx: CtxDep
) -> CommentRead:
    ticket = await _load(session, principal, ticket_id, lock=True)
    comment = await service.add_comment(session, ctx, ticket, Actor.of(principal), body.body, body.internal)
    await session.commit()
    return CommentRead.model_validate(comment)


@router.get("/{ticket_id}/comments", response_model=list[CommentRead], summary="Comments (internal notes for writers)")
async def list_comments(ticket_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[CommentRead]:
    ticket = await _load(session, principal, ticket_id)
    rows = await service.comments(session, ticket.id, include_internal=principal.has("tickets:write"))
    return [CommentRead.model_validate(c) for c in rows]


@router.post(
    "/{ticket_id}/contacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactRead,
    summary="Record a closed-loop contact with the customer (optionally asking for a follow-up survey)",
)
async def add_contact(
    ticket_id: uuid.UUID, body: ContactCreate, session: SessionDep, principal: Writer, ctx: CtxDep
) -> ContactRead:
    ticket = await _load(session, principal, ticket_id, lock=True)
    contact = await service.record_contact(
        session,
        ctx,
        ticket,
        Actor.of(principal),
        method=body.method,
        outcome=body.outcome,
        summary=body.summary,
        contacted_at=body.contacted_at,
        follow_up_survey=body.follow_up_survey,
        follow_up_distribution_id=body.follow_up_distribution_id,
    )
    await session.commit()
    return ContactRead.model_validate(contact)
