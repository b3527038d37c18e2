"""Ticket lifecycle: open (owner through the org tree, SLA deadlines), transitions, edits, comments, closed-loop
contacts, and escalation one level up the org tree when an SLA timer fires."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_alerts.audit import service as audit
from cx_alerts.context import Ctx
from cx_alerts.notifications import service as notifications
from cx_alerts.org import service as org
from cx_alerts.sla import service as sla
from cx_alerts.sla.models import SlaTimer
from cx_alerts.tickets.models import CustomerContact, Ticket, TicketComment
from cx_common.auth import Principal
from cx_common.db import new_id
from cx_common.errors import Problem
from cx_common.pagination import cursor_uuid, encode_cursor

STATUSES = ("open", "acknowledged", "in_progress", "waiting_customer", "resolved", "closed")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("acknowledged", "in_progress", "resolved"),
    "acknowledged": ("in_progress", "waiting_customer", "resolved"),
    "in_progress": ("waiting_customer", "resolved"),
    "waiting_customer": ("in_progress", "resolved"),
    "resolved": ("closed", "in_progress"),  # in_progress = reopen
    "closed": ("in_progress",),  # reopen
}
ACTIVE = ("open", "acknowledged", "in_progress", "waiting_customer")
PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


def snapshot(t: Ticket) -> dict[str, Any]:
    return {
        "status": t.status,
        "priority": t.priority,
        "title": t.title,
        "owner_user_id": t.owner_user_id,
        "assigned_org_unit_id": t.assigned_org_unit_id,
        "escalation_level": t.escalation_level,
        "watchers": list(t.watchers),
        "first_response_due": t.first_response_due,
        "resolution_due": t.resolution_due,
        "first_response_breached": t.first_response_breached,
        "resolution_breached": t.resolution_breached,
        "resolution_code": t.resolution_code,
        "outcome": t.outcome,
        "version": t.version,
    }


def to_event(t: Ticket) -> events_pb2.TicketChanged:
    event = events_pb2.TicketChanged(
        ticket_id=str(t.id),
        status=t.status,
        priority=t.priority,
        org_unit_id=t.org_unit_id,
        owner_user_id=t.owner_user_id or "",
        alert_id=str(t.alert_id) if t.alert_id else "",
        source_feedback_id=t.source_feedback_id,
        source_response_id=t.source_response_id,
        escalation_level=t.escalation_level,
        first_response_breached=t.first_response_breached,
        resolution_breached=t.resolution_breached,
        resolution_code=t.resolution_code,
        touchpoint_id=t.touchpoint_id,
        channel=t.channel,
    )
    for name, value in (
        ("first_response_due", t.first_response_due),
        ("resolution_due", t.resolution_due),
        ("created_at", t.opened_at),
        ("resolved_at", t.resolved_at),
    ):
        if value is not None:
            getattr(event, name).FromDatetime(value.astimezone(dt.UTC).replace(tzinfo=None))
    return event


async def emit(session: AsyncSession, ctx: Ctx, ticket: Ticket, event_type: str) -> None:
    await ctx.emit(session, ticket.tenant_id, event_type, to_event(ticket))


async def _record_change(
    session: AsyncSession,
    ctx: Ctx,
    ticket: Ticket,
    actor: audit.Actor,
    action: str,
    *,
    before: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    with_snapshot: bool = True,
    event: str | None = "ticket.updated",
) -> None:
    """Bump the ticket's version, audit the change (the ticket as it now is, plus `details`) and emit `event`, all in
    the caller's transaction."""
    ticket.version += 1
    await session.flush()
    after = {**snapshot(ticket), **(details or {})} if with_snapshot else details
    await audit.record(
        session,
        ticket.tenant_id,
        actor,
        entity_type="ticket",
        entity_id=ticket.id,
        action=action,
        before=before,
        after=after,
    )
    if event:
        await emit(session, ctx, ticket, event)


def visible_to(principal: Principal, ticket: Ticket) -> bool:
    return principal.org_unit_id is None or principal.org_unit_id in ticket.org_path


async def get(
    session: AsyncSession, tenant_id: uuid.UUID, ticket_id: uuid.UUID, *, lock: bool = False
) -> Ticket | None:
    query = select(Ticket).where(Ticket.tenant_id == tenant_id, Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def list_page(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    status: Sequence[str] = (),
    priority: str | None = None,
    owner_user_id: str | None = None,
    org_unit_id: str | None = None,
    customer_key: str | None = None,
) -> tuple[list[Ticket], str | None]:
    query = select(Ticket).where(Ticket.tenant_id == principal.tenant_id)
    if principal.org_unit_id is not None:
        query = query.where(Ticket.org_path.contains([principal.org_unit_id]))
    if status:
        query = query.where(Ticket.status.in_(status))
    if priority:
        query = query.where(Ticket.priority == priority)
    if owner_user_id:
        query = query.where(Ticket.owner_user_id == owner_user_id)
    if org_unit_id:
        query = query.where(Ticket.org_path.contains([org_unit_id]))
    if customer_key:
        query = query.where(Ticket.customer_key == customer_key)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(Ticket.id < after)
    rows = list((await session.execute(query.order_by(Ticket.id.desc()).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def _arm(session: AsyncSession, ctx: Ctx, ticket: Ticket, *, first: bool, resolution: bool) -> None:
    policy = await sla.policy_for(session, ticket.tenant_id, ticket.priority)
    start = ticket.opened_at
    now = ctx.now()
    if first:
        await sla.cancel_timers(session, ticket.id, now, ("first_response",))
        ticket.first_response_due = await sla.due(
            session, ticket.tenant_id, ticket.org_unit_id, start, policy.first_response_minutes, policy.business_hours
        )
        sla.add_timer(session, ticket.tenant_id, ticket.id, "first_response", ticket.first_response_due)
    if resolution:
        await sla.cancel_timers(session, ticket.id, now, ("resolution",))
        ticket.resolution_due = await sla.due(
            session, ticket.tenant_id, ticket.org_unit_id, start, policy.resolution_minutes, policy.business_hours
        )
        sla.add_timer(session, ticket.tenant_id, ticket.id, "resolution", ticket.resolution_due)


async def open_ticket(
    session: AsyncSession,
    ctx: Ctx,
    tenant_id: uuid.UUID,
    actor: audit.Actor,
    *,
    title: str,
    priority: str,
    org_unit_id: str,
    customer_key: str = "",
    touchpoint_id: str = "",
    channel: str = "",
    rule_id: uuid.UUID | None = None,
    alert_id: uuid.UUID | None = None,
    source_event_id: uuid.UUID | None = None,
    source_type: str = "manual",
    response_id: str = "",
    feedback_id: str = "",
    payload: dict[str, Any] | None = None,
    watchers: Sequence[str] = (),
    owner_user_id: str | None = None,
) -> Ticket:
    unit = await org.get_unit(session, tenant_id, org_unit_id)
    owner: str | None
    if owner_user_id:
        owner, assigned = owner_user_id, org_unit_id
    else:
        owner, found = await org.manager_for(session, tenant_id, org_unit_id)
        assigned = found or org_unit_id
    opened_at = ctx.now()
    policy = await sla.policy_for(session, tenant_id, priority)
    first_due, resolution_due = await sla.deadlines(session, tenant_id, org_unit_id, opened_at, policy)
    ticket = Ticket(
        id=new_id(),
        tenant_id=tenant_id,
        title=title,
        status="open",
        priority=priority,
        org_unit_id=org_unit_id,
        org_path=org.path_of(unit, org_unit_id),
        assigned_org_unit_id=assigned or "",
        owner_user_id=owner,
        watchers=list(dict.fromkeys(watchers)),
        escalation_level=0,
        customer_key=customer_key,
        touchpoint_id=touchpoint_id,
        channel=channel,
        rule_id=rule_id,
        alert_id=alert_id,
        source_event_id=source_event_id,
        source_type=source_type,
        source_response_id=response_id,
        source_feedback_id=feedback_id,
        source_payload=payload,
        opened_at=opened_at,
        first_response_due=first_due,
        resolution_due=resolution_due,
        first_response_breached=False,
        resolution_breached=False,
        resolution_code="",
        outcome="",
        created_by=f"{actor.type}:{actor.id}",
        version=1,
    )
    session.add(ticket)
    await session.flush()  # the timers reference it
    sla.add_timer(session, tenant_id, ticket.id, "first_response", first_due)
    sla.add_timer(session, tenant_id, ticket.id, "resolution", resolution_due)
    await audit.record(
        session, tenant_id, actor, entity_type="ticket", entity_id=ticket.id, action="created", after=snapshot(ticket)
    )
    await emit(session, ctx, ticket, "ticket.created")
    await notifications.notify(
        session,
        tenant_id,
        [ticket.owner_user_id, *ticket.watchers],
        kind="ticket_assigned",
        title=f"[{priority}] {title}",
        template="ticket_assigned",
        params={"priority": priority, "title": title},
        body=f"due for first response at {ticket.first_response_due:%Y-%m-%d %H:%M} UTC",
        ticket_id=ticket.id,
        alert_id=alert_id,
    )
    return ticket


async def _mark_responded(session: AsyncSession, ctx: Ctx, ticket: Ticket) -> None:
    if ticket.first_responded_at is None:
        now = ctx.now()
        ticket.first_responded_at = now
        await sla.cancel_timers(session, ticket.id, now, ("first_response",))
        await sla.cancel_timers(session, ticket.id, now, ("escalation",), reason="first_response")


async def transition(
    session: AsyncSession,
    ctx: Ctx,
    ticket: Ticket,
    actor: audit.Actor,
    to: str,
    *,
    resolution_code: str | None = None,
    outcome: str | None = None,
    note: str | None = None,
) -> Ticket:
    allowed = TRANSITIONS[ticket.status]
    if to not in allowed:
        raise Problem(
            409,
            f"status: cannot go from {ticket.status} to {to}; allowed: {', '.join(allowed)}",
            field="status",
            current_status=ticket.status,
            allowed=list(allowed),
        )
    if to == "resolved" and not resolution_code:
        raise Problem(
            422,
            "resolution_code: required to resolve a ticket",
            title="Validation failed",
            errors=[{"field": "resolution_code", "message": "required to resolve a ticket", "type": "missing"}],
        )
    before = snapshot(ticket)
    now = ctx.now()
    reopen = ticket.status in ("resolved", "closed") and to == "in_progress"
    if to != "closed":
        await _mark_responded(session, ctx, ticket)
    event_type = {"acknowledged": "ticket.acknowledged", "resolved": "ticket.resolved", "closed": "ticket.closed"}.get(
        to, "ticket.updated"
    )
    if to == "resolved":
        ticket.resolved_at = now
        ticket.resolution_code = resolution_code or ""
        ticket.outcome = outcome or ticket.outcome
        await sla.cancel_timers(session, ticket.id, now, ("resolution", "escalation"))
    elif to == "closed":
        ticket.closed_at = now
    if reopen:
        event_type = "ticket.reopened"
        ticket.resolved_at = None
        ticket.closed_at = None
        ticket.resolution_code = ""
        policy = await sla.policy_for(session, ticket.tenant_id, ticket.priority)
        ticket.resolution_due = await sla.due(
            session, ticket.tenant_id, ticket.org_unit_id, now, policy.resolution_minutes, policy.business_hours
        )
        ticket.resolution_breached = False
        sla.add_timer(session, ticket.tenant_id, ticket.id, "resolution", ticket.resolution_due)
    ticket.status = to
    if note:
        session.add(
            TicketComment(
                id=new_id(),
                tenant_id=ticket.tenant_id,
                ticket_id=ticket.id,
                author_id=actor.id,
                body=note,
                internal=True,
            )
        )
    await _record_change(session, ctx, ticket, actor, f"status:{to}", before=before, event=event_type)
    return ticket


async def edit(
    session: AsyncSession,
    ctx: Ctx,
    ticket: Ticket,
    actor: audit.Actor,
    changes: dict[str, Any],
) -> Ticket:
    before = snapshot(ticket)
    if (
        "owner_user_id" in changes
        and changes["owner_user_id"] is not None
        and await org.get_user(session, ticket.tenant_id, changes["owner_user_id"]) is None
    ):
        raise Problem(
            422,
            f"owner_user_id: unknown user {changes['owner_user_id']}",
            title="Validation failed",
            errors=[{"field": "owner_user_id", "message": "unknown or inactive user", "type": "unknown"}],
        )
    if "watchers" in changes:
        for index, user_id in enumerate(changes["watchers"]):
            if await org.get_user(session, ticket.tenant_id, user_id) is None:
                raise Problem(
                    422,
                    f"watchers.{index}: unknown user {user_id}",
                    title="Validation failed",
                    errors=[{"field": f"watchers.{index}", "message": "unknown or inactive user", "type": "unknown"}],
                )
        ticket.watchers = list(dict.fromkeys(changes["watchers"]))
    if "title" in changes:
        ticket.title = changes["title"]
    new_owner = changes.get("owner_user_id")
    if "owner_user_id" in changes and new_owner != ticket.owner_user_id:
        ticket.owner_user_id = new_owner
        await notifications.notify(
            session,
            ticket.tenant_id,
            [new_owner],
            kind="ticket_assigned",
            title=f"[{ticket.priority}] {ticket.title}",
            template="ticket_assigned",
            params={"priority": ticket.priority, "title": ticket.title},
            ticket_id=ticket.id,
        )
    if "priority" in changes and changes["priority"] != ticket.priority:
        ticket.priority = changes["priority"]
        await _arm(session, ctx, ticket, first=ticket.first_responded_at is None, resolution=ticket.resolved_at is None)
    await _record_change(session, ctx, ticket, actor, "updated", before=before)
    return ticket


async def add_comment(
    session: AsyncSession, ctx: Ctx, ticket: Ticket, actor: audit.Actor, body: str, internal: bool
) -> TicketComment:
    comment = TicketComment(
        id=new_id(),
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.id,
        author_id=actor.id,
        body=body,
        internal=internal,
    )
    session.add(comment)
    if not internal:
        await _mark_responded(session, ctx, ticket)
    await _record_change(
        session,
        ctx,
        ticket,
        actor,
        "internal_note" if internal else "comment",
        details={"comment_id": str(comment.id), "body": body},
        with_snapshot=False,
        event=None,
    )
    await notifications.notify(
        session,
        ticket.tenant_id,
        [u for u in [ticket.owner_user_id, *ticket.watchers] if u != actor.id],
        kind="ticket_comment",
        title=f"comment on {ticket.title}",
        template="ticket_comment",
        params={"title": ticket.title},
        body=body[:500],
        ticket_id=ticket.id,
    )
    return comment


async def comments(session: AsyncSession, ticket_id: uuid.UUID, *, include_internal: bool) -> list[TicketComment]:
    query = select(TicketComment).where(TicketComment.ticket_id == ticket_id)
    if not include_internal:
        query = query.where(TicketComment.internal.is_(False))
    return list((await session.execute(query.order_by(TicketComment.created_at, TicketComment.id))).scalars())


FOLLOW_UP_EVENT = "ticket.follow_up_requested"
# hidden fields the survey service puts on a follow-up's personal link (reserved there: no survey may declare them)
FOLLOW_UP_TICKET_FIELD = "cx_ticket_id"
FOLLOW_UP_REQUEST_FIELD = "cx_follow_up_id"
FOLLOW_UP_ACTOR = audit.Actor("system", "follow-up")


def source_language(ticket: Ticket) -> str:
    """The language of the signal that opened the ticket (survey response or analysed feedback), "" when unknown."""
    payload = ticket.source_payload or {}
    context = payload.get("context")
    found = payload.get("language") or (context.get("language") if isinstance(context, dict) else None)
    return found if isinstance(found, str) else ""


def follow_up_event(
    ticket: Ticket, contact: CustomerContact, requested_at: dt.datetime
) -> events_pb2.TicketFollowUpRequested:
    event = events_pb2.TicketFollowUpRequested(
        ticket_id=str(ticket.id),
        request_id=str(contact.id),
        customer_key=ticket.customer_key,
        org_unit_id=ticket.org_unit_id,
        touchpoint_id=ticket.touchpoint_id,
        channel=ticket.channel,
        source_response_id=ticket.source_response_id,
        source_feedback_id=ticket.source_feedback_id,
        language=source_language(ticket),
        distribution_id=str(contact.follow_up_distribution_id) if contact.follow_up_distribution_id else "",
        requested_by=contact.recorded_by,
    )
    event.requested_at.FromDatetime(requested_at.astimezone(dt.UTC).replace(tzinfo=None))
    return event


async def record_contact(
    session: AsyncSession,
    ctx: Ctx,
    ticket: Ticket,
    actor: audit.Actor,
    *,
    method: str,
    outcome: str,
    summary: str,
    contacted_at: dt.datetime | None,
    follow_up_survey: bool,
    follow_up_distribution_id: uuid.UUID | None = None,
) -> CustomerContact:
    """Record a closed-loop contact; with `follow_up_survey`, ask the survey service (ticket.follow_up_requested, in
    this transaction's outbox) to send the customer a follow-up survey that names this ticket and contact."""
    if follow_up_survey and not ticket.customer_key:
        raise Problem(
            422,
            "follow_up_survey: the ticket names no customer to survey",
            title="Validation failed",
            errors=[{"field": "follow_up_survey", "message": "the ticket has no customer_key", "type": "value_error"}],
        )
    contact = CustomerContact(
        id=new_id(),
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.id,
        method=method,
        outcome=outcome,
        summary=summary,
        contacted_at=contacted_at or ctx.now(),
        recorded_by=actor.id,
        follow_up_survey=follow_up_survey,
        follow_up_distribution_id=follow_up_distribution_id if follow_up_survey else None,
    )
    session.add(contact)
    await _mark_responded(session, ctx, ticket)
    await _record_change(
        session,
        ctx,
        ticket,
        actor,
        "customer_contact",
        details={
            "contact_id": str(contact.id),
            "method": method,
            "outcome": outcome,
            "summary": summary,
            "follow_up_survey": follow_up_survey,
            "follow_up_distribution_id": str(follow_up_distribution_id) if follow_up_distribution_id else None,
        },
        with_snapshot=False,
    )
    if follow_up_survey:
        await ctx.emit(session, ticket.tenant_id, FOLLOW_UP_EVENT, follow_up_event(ticket, contact, ctx.now()))
    return contact


async def link_follow_up(
    session: AsyncSession, tenant_id: uuid.UUID, response: events_pb2.SurveyResponseSubmitted
) -> CustomerContact | None:
    """A survey response answering a follow-up request (its link's cx_ticket_id / cx_follow_up_id): record it, with
    its scores, on the contact that asked for it. The first answer counts (the personal link is single-use anyway);
    anything that names no such request of this tenant is an ordinary response."""
    ticket_field = response.hidden_fields.get(FOLLOW_UP_TICKET_FIELD, "")
    request_field = response.hidden_fields.get(FOLLOW_UP_REQUEST_FIELD, "")
    if not ticket_field or not request_field:
        return None
    try:
        ticket_id, contact_id = uuid.UUID(ticket_field), uuid.UUID(request_field)
    except ValueError:
        return None
    contact = (
        await session.execute(
            select(CustomerContact)
            .where(
                CustomerContact.tenant_id == tenant_id,
                CustomerContact.id == contact_id,
                CustomerContact.ticket_id == ticket_id,
                CustomerContact.follow_up_survey.is_(True),
                CustomerContact.follow_up_response_id.is_(None),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if contact is None:
        return None
    scores: dict[str, float] = {}
    for name in ("nps", "csat", "ces"):
        if response.HasField(name):
            scores[name] = float(getattr(response, name))
    contact.follow_up_response_id = response.response_id
    contact.follow_up_scores = scores
    contact.follow_up_responded_at = (
        response.submitted_at.ToDatetime(tzinfo=dt.UTC)
        if response.HasField("submitted_at")
        else dt.datetime.now(dt.UTC)
    )
    await session.flush()
    await audit.record(
        session,
        tenant_id,
        FOLLOW_UP_ACTOR,
        entity_type="ticket",
        entity_id=ticket_id,
        action="follow_up_response",
        after={"contact_id": str(contact.id), "response_id": response.response_id, "scores": scores},
    )
    return contact


async def contacts(session: AsyncSession, ticket_id: uuid.UUID) -> list[CustomerContact]:
    rows = await session.execute(
        select(CustomerContact).where(CustomerContact.ticket_id == ticket_id).order_by(CustomerContact.contacted_at)
    )
    return list(rows.scalars())


async def attach_analysis(
    session: AsyncSession, tenant_id: uuid.UUID, response_id: str, analysis: dict[str, Any]
) -> None:
    await session.execute(
        update(Ticket)
        .where(
            Ticket.tenant_id == tenant_id,
            Ticket.source_response_id == response_id,
            Ticket.source_type == "survey.response.submitted",
        )
        .values(source_analysis=analysis)
    )


async def open_for_customer(
    session: AsyncSession, tenant_id: uuid.UUID, customer_key: str, since: dt.datetime
) -> Ticket | None:
    rows = await session.execute(
        select(Ticket)
        .where(
            Ticket.tenant_id == tenant_id,
            Ticket.customer_key == customer_key,
            Ticket.status.in_(ACTIVE),
            Ticket.opened_at >= since,
        )
        .order_by(Ticket.opened_at.desc())
        .limit(1)
        .with_for_update()
    )
    return rows.scalar_one_or_none()


async def attach_alert(
    session: AsyncSession,
    ctx: Ctx,
    ticket: Ticket,
    actor: audit.Actor,
    *,
    alert_id: uuid.UUID,
    reason: str,
    priority: str,
) -> None:
    """A further alert of the same customer inside the grouping window: note it on the open ticket (and raise its
    priority if the new alert asks for a higher one)."""
    before = snapshot(ticket)
    session.add(
        TicketComment(
            id=new_id(),
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.id,
            author_id=f"{actor.type}:{actor.id}",
            body=f"grouped alert {alert_id}: {reason}",
            internal=True,
        )
    )
    if PRIORITY_RANK[priority] < PRIORITY_RANK[ticket.priority]:
        ticket.priority = priority
        await _arm(session, ctx, ticket, first=ticket.first_responded_at is None, resolution=ticket.resolved_at is None)
    await _record_change(
        session, ctx, ticket, actor, "alert_grouped", before=before, details={"alert_id": str(alert_id)}
    )


async def on_timer(session: AsyncSession, ctx: Ctx, timer: SlaTimer, ticket: Ticket) -> str:
    """Apply a due timer to its (locked) ticket; returns what happened."""
    if ticket.status not in ACTIVE:
        return f"no action: ticket is {ticket.status}"
    before = snapshot(ticket)
    reason = timer.reason or timer.kind
    if timer.kind == "first_response" or (timer.kind == "escalation" and reason == "first_response"):
        if ticket.first_responded_at is not None:
            return "no action: first response given"
        ticket.first_response_breached = True
    if timer.kind == "resolution":
        ticket.resolution_breached = True
    return await escalate(session, ctx, ticket, reason, before)


async def escalate(session: AsyncSession, ctx: Ctx, ticket: Ticket, reason: str, before: dict[str, Any]) -> str:
    now = ctx.now()
    current = await org.get_unit(session, ticket.tenant_id, ticket.assigned_org_unit_id)
    parent = await org.get_unit(session, ticket.tenant_id, current.parent_id if current else None)
    if parent is None:
        await _record_change(session, ctx, ticket, audit.SYSTEM_SLA, f"sla_breached:{reason}", before=before)
        await notifications.notify(
            session,
            ticket.tenant_id,
            [ticket.owner_user_id, *ticket.watchers],
            kind="sla_breached",
            title=f"SLA breached ({reason}): {ticket.title}",
            template="sla_breached",
            params={"reason": reason, "title": ticket.title},
            body="top of the org tree reached",
            ticket_id=ticket.id,
        )
        return "breached at the top of the org tree"
    previous_owner = ticket.owner_user_id
    new_owner, _ = await org.manager_for(session, ticket.tenant_id, parent.id)
    ticket.assigned_org_unit_id = parent.id
    ticket.owner_user_id = new_owner
    ticket.escalation_level += 1
    if previous_owner and previous_owner != new_owner and previous_owner not in ticket.watchers:
        ticket.watchers = [*ticket.watchers, previous_owner]
    policy = await sla.policy_for(session, ticket.tenant_id, ticket.priority)
    await sla.cancel_timers(session, ticket.id, now, ("escalation",))
    next_due = await sla.due(
        session, ticket.tenant_id, parent.id, now, policy.escalation_minutes, policy.business_hours
    )
    sla.add_timer(
        session, ticket.tenant_id, ticket.id, "escalation", next_due, level=ticket.escalation_level, reason=reason
    )
    await _record_change(
        session,
        ctx,
        ticket,
        audit.SYSTEM_SLA,
        "escalated",
        before=before,
        details={"reason": reason, "next_deadline": next_due},
        event="ticket.escalated",
    )
    await notifications.notify(
        session,
        ticket.tenant_id,
        [new_owner, *ticket.watchers],
        kind="ticket_escalated",
        title=f"[{ticket.priority}] escalated to {parent.name or parent.id}: {ticket.title}",
        template="ticket_escalated",
        params={"priority": ticket.priority, "unit": parent.name or parent.id, "title": ticket.title},
        body=f"{reason} deadline missed; next deadline {next_due:%Y-%m-%d %H:%M} UTC",
        ticket_id=ticket.id,
    )
    return f"escalated to {parent.id} (level {ticket.escalation_level})"
