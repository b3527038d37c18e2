import datetime as dt
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.db import utcnow
from cx_common.errors import Problem, not_found
from cx_survey.distributions.models import Distribution, ScheduledMessage
from cx_survey.distributions.schemas import DistributionCreate, SendCreate
from cx_survey.journeys.service import get_touchpoint
from cx_survey.responses.models import Invitation
from cx_survey.responses.service import check_link_hidden, hash_token, link_definition, new_token
from cx_survey.surveys.models import Survey


async def create(session: AsyncSession, survey: Survey, data: DistributionCreate) -> Distribution:
    if data.touchpoint_id is not None:
        await get_touchpoint(session, survey.tenant_id, data.touchpoint_id)
    distribution = Distribution(
        tenant_id=survey.tenant_id,
        survey_id=survey.id,
        name=data.name,
        channel=data.channel,
        webhook_url=str(data.webhook_url) if data.webhook_url else None,
        touchpoint_id=data.touchpoint_id or survey.touchpoint_id,
        delay_seconds=int(data.delay_hours * 3600),
        reminder_after_seconds=int(data.reminder_after_hours * 3600) if data.reminder_after_hours else None,
        max_reminders=data.max_reminders,
        frequency_days=data.frequency_days,
        link_valid_hours=data.link_valid_hours,
    )
    session.add(distribution)
    await session.flush()
    await session.refresh(distribution)
    return distribution


async def get(session: AsyncSession, tenant_id: uuid.UUID, distribution_id: uuid.UUID) -> Distribution:
    found = (
        await session.execute(
            select(Distribution).where(Distribution.tenant_id == tenant_id, Distribution.id == distribution_id)
        )
    ).scalar_one_or_none()
    if found is None:
        raise not_found("distribution", distribution_id)
    return found


async def schedule_send(
    session: AsyncSession, distribution: Distribution, data: SendCreate, public_base_url: str
) -> ScheduledMessage:
    survey = await session.get(Survey, distribution.survey_id)
    if survey is None or survey.status != "published":
        raise Problem(409, "survey_id: the survey is not published", field="survey_id")
    check_link_hidden(await link_definition(session, survey), data.hidden)
    due = data.send_at or utcnow() + dt.timedelta(seconds=distribution.delay_seconds)
    if distribution.frequency_days:
        await check_frequency(session, distribution.tenant_id, data.customer_key, distribution.frequency_days, due)
    return await add_send(
        session,
        distribution,
        customer_key=data.customer_key,
        recipient=data.recipient,
        language=data.language,
        hidden=data.hidden,
        due=due,
        public_base_url=public_base_url,
    )


async def check_frequency(
    session: AsyncSession, tenant_id: uuid.UUID, customer_key: str, days: int, due: dt.datetime
) -> None:
    """The contact-frequency rule: 409 when the customer has an invitation (pending or sent) within `days` of `due`."""
    # One customer at a time (advisory lock on tenant + customer) so two triggers cannot both pass the rule.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"{tenant_id}:{customer_key}"))))
    window = dt.timedelta(days=days)
    recent = await session.scalar(
        select(func.count())
        .select_from(ScheduledMessage)
        .where(
            ScheduledMessage.tenant_id == tenant_id,
            ScheduledMessage.customer_key == customer_key,
            ScheduledMessage.kind == "invite",
            ScheduledMessage.status.in_(("pending", "sent")),
            ScheduledMessage.due_at > due - window,
            ScheduledMessage.due_at < due + window,
        )
    )
    if recent:
        raise Problem(
            409,
            f"customer_key: {customer_key} is already surveyed within {days} days",
            field="customer_key",
            rule="contact_frequency",
        )


async def add_send(
    session: AsyncSession,
    distribution: Distribution,
    *,
    customer_key: str,
    recipient: str,
    language: str,
    hidden: dict[str, str],
    due: dt.datetime,
    public_base_url: str,
    touchpoint_id: uuid.UUID | None = None,
) -> ScheduledMessage:
    """A personal link for the customer and its invitation message, due at `due` (the scheduler sends it)."""
    token = new_token()
    invitation = Invitation(
        tenant_id=distribution.tenant_id,
        survey_id=distribution.survey_id,
        token_hash=hash_token(token),
        customer_key=customer_key,
        touchpoint_id=distribution.touchpoint_id or touchpoint_id,
        hidden=hidden,
        expires_at=due + dt.timedelta(hours=distribution.link_valid_hours),
    )
    session.add(invitation)
    await session.flush()
    link = f"{public_base_url.rstrip('/')}/s/{distribution.survey_id}?t={token}&lang={language}"
    message = ScheduledMessage(
        tenant_id=distribution.tenant_id,
        distribution_id=distribution.id,
        invitation_id=invitation.id,
        kind="invite",
        seq=0,
        customer_key=customer_key,
        recipient=recipient,
        language=language,
        link=link,
        due_at=due,
        created_at=utcnow(),
    )
    session.add(message)
    await session.flush()
    return message
