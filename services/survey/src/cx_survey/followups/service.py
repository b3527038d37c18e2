"""Follow-up surveys asked for by alerts when a ticket's customer was contacted (ticket.follow_up_requested).

The request becomes a triggered send through a distribution (the one named, else the tenant's follow-up default),
addressed where the customer's original invitation went (the response that opened the ticket), else to the address
of the last invitation sent to that customer through the same channel. It is not subject to the contact-frequency
rule: the customer has just been contacted about their complaint and the follow-up asks whether that helped, and the
response that opened the ticket would otherwise block it nearly always. The follow-up counts for later sends, which
the rule does limit. The personal link carries the ticket and request ids (cx_ticket_id / cx_follow_up_id), so its
response and survey.response.submitted name them. What cannot be sent is recorded as undeliverable, with the reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.db import new_id, utcnow
from cx_common.errors import Problem
from cx_common.pagination import cursor_uuid, encode_cursor
from cx_survey.distributions import service as distributions
from cx_survey.distributions.models import Distribution, ScheduledMessage
from cx_survey.followups.models import FollowUpDefault, FollowUpRequest
from cx_survey.orgs.models import OrgUnit
from cx_survey.responses.models import Response
from cx_survey.responses.service import REQUEST_FIELD, TICKET_FIELD, link_definition, visible_org_filter
from cx_survey.surveys.models import Survey

EVENT_TYPE = "ticket.follow_up_requested"
SCHEDULED, UNDELIVERABLE = "scheduled", "undeliverable"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


@dataclass
class UndeliverableError(Exception):
    reason: str
    distribution_id: uuid.UUID | None = None


async def handle(session: AsyncSession, envelope: events_pb2.Envelope, public_base_url: str) -> FollowUpRequest | None:
    """Schedule one follow-up per request (a request seen before is left as it is) or record why it cannot be."""
    if not envelope.HasField("ticket_follow_up_requested"):
        return None
    req = envelope.ticket_follow_up_requested
    tenant_id, event_id = uuid.UUID(envelope.tenant_id), uuid.UUID(envelope.event_id)
    request_id = _uuid(req.request_id) or event_id
    # The request's row first, claimed on its key: the same request again (under another event id) stops here.
    claimed = await session.scalar(
        insert(FollowUpRequest)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            request_id=request_id,
            event_id=event_id,
            ticket_id=req.ticket_id[:64],
            customer_key=req.customer_key[:200],
            org_unit_id=req.org_unit_id[:64],
            source_response_id=req.source_response_id[:64],
            source_feedback_id=req.source_feedback_id[:64],
            requested_by=req.requested_by[:200],
            requested_distribution_id=_uuid(req.distribution_id),
            status=SCHEDULED,
            requested_at=req.requested_at.ToDatetime(tzinfo=dt.UTC) if req.HasField("requested_at") else utcnow(),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "request_id"])
        .returning(FollowUpRequest.id)
    )
    if claimed is None:
        return None
    row = await session.get(FollowUpRequest, claimed)
    assert row is not None
    try:
        await _schedule(session, row, req, public_base_url)
    except UndeliverableError as exc:
        row.status, row.reason, row.distribution_id = UNDELIVERABLE, exc.reason, exc.distribution_id
    await session.flush()
    return row


async def _distribution(session: AsyncSession, tenant_id: uuid.UUID, asked: str) -> Distribution:
    """The distribution named by the request, else the tenant's follow-up default."""
    if asked:
        wanted = _uuid(asked)
        distribution = (
            await session.scalar(
                select(Distribution).where(Distribution.tenant_id == tenant_id, Distribution.id == wanted)
            )
            if wanted
            else None
        )
        if distribution is None:
            raise UndeliverableError(f"distribution {asked} not found")
        return distribution
    default = await session.get(FollowUpDefault, tenant_id)
    distribution = await session.get(Distribution, default.distribution_id) if default else None
    if distribution is None:
        raise UndeliverableError(
            "no distribution: the request names none and the tenant has no follow-up default "
            "(PUT /v1/distributions/follow-up-default)"
        )
    return distribution


async def _source_response(session: AsyncSession, tenant_id: uuid.UUID, response_id: str) -> Response | None:
    wanted = _uuid(response_id)
    if wanted is None:
        return None
    found = await session.execute(select(Response).where(Response.tenant_id == tenant_id, Response.id == wanted))
    return found.scalar_one_or_none()


async def find_recipient(
    session: AsyncSession, tenant_id: uuid.UUID, channel: str, customer_key: str, source: Response | None
) -> tuple[str, str] | None:
    """(address, where it came from): the original response's invitation, else the customer's last invitation sent
    through a distribution of the same channel (an e-mail address is no use to an SMS gateway, nor a phone number
    to SMTP)."""
    invites = (
        select(ScheduledMessage.recipient)
        .join(Distribution, Distribution.id == ScheduledMessage.distribution_id)
        .where(
            ScheduledMessage.tenant_id == tenant_id,
            ScheduledMessage.kind == "invite",
            Distribution.channel == channel,
        )
        .limit(1)
    )
    if source is not None and source.invitation_id is not None:
        found = await session.scalar(invites.where(ScheduledMessage.invitation_id == source.invitation_id))
        if found:
            return found, "original_invitation"
    found = await session.scalar(
        invites.where(ScheduledMessage.customer_key == customer_key, ScheduledMessage.status == "sent").order_by(
            ScheduledMessage.sent_at.desc()
        )
    )
    return (found, "customer_history") if found else None


async def _schedule(
    session: AsyncSession, row: FollowUpRequest, req: events_pb2.TicketFollowUpRequested, public_base_url: str
) -> None:
    distribution = await _distribution(session, row.tenant_id, req.distribution_id)
    survey = await session.get(Survey, distribution.survey_id)
    if survey is None or survey.status != "published":
        raise UndeliverableError(f"survey {distribution.survey_id} is not published", distribution.id)
    definition = await link_definition(session, survey)
    if definition is None:  # a published survey always has its version; this only guards the types
        raise UndeliverableError(f"survey {survey.id} has no definition", distribution.id)
    if not row.customer_key:
        raise UndeliverableError("the ticket names no customer", distribution.id)
    source = await _source_response(session, row.tenant_id, row.source_response_id)
    found = await find_recipient(session, row.tenant_id, distribution.channel, row.customer_key, source)
    if found is None:
        raise UndeliverableError(
            f"no known {distribution.channel} address for customer {row.customer_key}", distribution.id
        )
    recipient, recipient_source = found
    languages = definition.languages
    language = next(
        (lang for lang in (req.language, source.language if source else "") if lang in languages),
        definition.default_language,
    )
    # The original response's context (order, store …) where the follow-up survey declares it, plus the ids that
    # tie the answer to the ticket.
    carried = {k: str(v) for k, v in (source.hidden if source else {}).items() if k in definition.hidden_fields}
    hidden = {**carried, TICKET_FIELD: row.ticket_id, REQUEST_FIELD: str(row.request_id)}
    message = await distributions.add_send(
        session,
        distribution,
        customer_key=row.customer_key,
        recipient=recipient,
        language=language,
        hidden=hidden,
        due=utcnow() + dt.timedelta(seconds=distribution.delay_seconds),
        public_base_url=public_base_url,
        touchpoint_id=source.touchpoint_id if source else None,
    )
    row.status, row.reason = SCHEDULED, None
    row.distribution_id, row.message_id, row.recipient_source = distribution.id, message.id, recipient_source


async def get_default(session: AsyncSession, tenant_id: uuid.UUID) -> uuid.UUID | None:
    found = await session.get(FollowUpDefault, tenant_id)
    return found.distribution_id if found else None


async def set_default(session: AsyncSession, tenant_id: uuid.UUID, distribution_id: uuid.UUID | None) -> None:
    if distribution_id is None:
        found = await session.get(FollowUpDefault, tenant_id)
        if found is not None:
            await session.delete(found)
        return
    exists = await session.scalar(
        select(Distribution.id).where(Distribution.tenant_id == tenant_id, Distribution.id == distribution_id)
    )
    if exists is None:
        raise Problem(
            422,
            f"distribution_id: unknown distribution {distribution_id}",
            field="distribution_id",
            errors=[{"field": "distribution_id", "message": "unknown distribution"}],
        )
    stmt = insert(FollowUpDefault).values(tenant_id=tenant_id, distribution_id=distribution_id)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id"], set_={"distribution_id": distribution_id, "updated_at": utcnow()}
        )
    )


async def list_page(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    org_unit_id: str | None,
    *,
    limit: int,
    cursor: str | None,
    ticket_id: str | None = None,
    status: str | None = None,
    distribution_id: uuid.UUID | None = None,
) -> tuple[list[tuple[FollowUpRequest, str | None]], str | None]:
    """Newest first, with the scheduled message's status; a caller confined to an org unit sees its subtree."""
    query = (
        select(FollowUpRequest, ScheduledMessage.status)
        .outerjoin(ScheduledMessage, ScheduledMessage.id == FollowUpRequest.message_id)
        .where(FollowUpRequest.tenant_id == tenant_id)
    )
    if (unit := await visible_org_filter(session, tenant_id, org_unit_id)) is not None:
        below = select(OrgUnit.id).where(OrgUnit.tenant_id == tenant_id, OrgUnit.ancestor_ids.contains([unit]))
        query = query.where(or_(FollowUpRequest.org_unit_id == unit, FollowUpRequest.org_unit_id.in_(below)))
    if ticket_id:
        query = query.where(FollowUpRequest.ticket_id == ticket_id)
    if status:
        query = query.where(FollowUpRequest.status == status)
    if distribution_id:
        query = query.where(FollowUpRequest.distribution_id == distribution_id)
    if (last := cursor_uuid(cursor)) is not None:
        query = query.where(FollowUpRequest.id < last)
    found = await session.execute(query.order_by(FollowUpRequest.id.desc()).limit(limit + 1))
    rows: list[tuple[FollowUpRequest, str | None]] = [(r, s) for r, s in found]
    next_cursor = encode_cursor({"id": str(rows[limit - 1][0].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
