"""The durable scheduler: polls `scheduled_messages` (FOR UPDATE SKIP LOCKED), sends, schedules reminders.

Rows are claimed inside one transaction and marked sent in the same transaction, so a message is sent by one worker
only, and anything not yet marked sent (crash, restart) is picked up again. The mail sink writes in that same
transaction (exactly once); outbound webhooks carry `Idempotency-Key: <message id>` so receivers can drop the rare
resend after a crash between the HTTP call and the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import smtplib
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_common.app import Runtime
from cx_common.db import utcnow
from cx_common.logging import get_logger
from cx_survey.distributions.models import Distribution, OutgoingMail, ScheduledMessage
from cx_survey.responses.models import Invitation
from cx_survey.settings import Settings
from cx_survey.surveys.models import Survey

log = get_logger(__name__)

TEXTS = {
    "zh-Hans": ("邀请您参与调查：{title}", "您好！请花一分钟告诉我们您的体验：{link}", "提醒：{title}"),
    "zh-Hant": ("邀請您參與調查：{title}", "您好！請花一分鐘告訴我們您的體驗：{link}", "提醒：{title}"),
    "en": (
        "We'd love your feedback: {title}",
        "Hello! Please take a minute to tell us about your experience: {link}",
        "Reminder: {title}",
    ),
}


def compose(message: ScheduledMessage, title: str) -> tuple[str, str]:
    invite, body, reminder = TEXTS.get(message.language, TEXTS["zh-Hans"])
    subject = (reminder if message.kind == "reminder" else invite).format(title=title)
    return subject, body.format(link=message.link)


def _smtp_send(settings: Settings, to: str, subject: str, body: str) -> None:
    assert settings.smtp_host is not None
    mail = EmailMessage()
    mail["From"] = settings.mail_from
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content(body)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(mail)


async def deliver(
    session: AsyncSession,
    settings: Settings,
    http: httpx.AsyncClient,
    message: ScheduledMessage,
    distribution: Distribution,
    title: str,
) -> None:
    subject, body = compose(message, title)
    if distribution.channel == "email":
        if settings.smtp_host:
            await asyncio.to_thread(_smtp_send, settings, message.recipient, subject, body)
        else:
            session.add(
                OutgoingMail(
                    tenant_id=message.tenant_id,
                    message_id=message.id,
                    recipient=message.recipient,
                    subject=subject,
                    body=body,
                    created_at=utcnow(),
                )
            )
        return
    assert distribution.webhook_url is not None
    payload: dict[str, Any] = {
        "message_id": str(message.id),
        "kind": message.kind,
        "tenant_id": str(message.tenant_id),
        "survey_id": str(distribution.survey_id),
        "distribution_id": str(distribution.id),
        "customer_key": message.customer_key,
        "recipient": message.recipient,
        "language": message.language,
        "subject": subject,
        "text": body,
        "link": message.link,
    }
    response = await http.post(distribution.webhook_url, json=payload, headers={"Idempotency-Key": str(message.id)})
    response.raise_for_status()


async def tick(sessions: async_sessionmaker[AsyncSession], settings: Settings, http: httpx.AsyncClient) -> int:
    """Send what is due; returns how many messages were handled."""
    async with sessions() as session, session.begin():
        due = list(
            (
                await session.execute(
                    select(ScheduledMessage)
                    .where(ScheduledMessage.status == "pending", ScheduledMessage.due_at <= utcnow())
                    .order_by(ScheduledMessage.due_at)
                    .limit(settings.scheduler_batch)
                    .with_for_update(skip_locked=True)
                )
            ).scalars()
        )
        for message in due:
            await _handle(session, settings, http, message)
        return len(due)


async def _handle(
    session: AsyncSession, settings: Settings, http: httpx.AsyncClient, message: ScheduledMessage
) -> None:
    invitation = await session.get(Invitation, message.invitation_id)
    distribution = await session.get(Distribution, message.distribution_id)
    survey = await session.get(Survey, distribution.survey_id) if distribution else None
    if invitation is None or distribution is None or survey is None:
        message.status = "skipped"
        message.last_error = "distribution or invitation deleted"
        return
    if invitation.used_at is not None:
        message.status, message.last_error = "skipped", "already answered"
        return
    if survey.status != "published":
        message.status, message.last_error = "skipped", f"survey {survey.status}"
        return
    try:
        async with session.begin_nested():
            await deliver(session, settings, http, message, distribution, survey.title)
    except Exception as exc:  # a failed send is retried with backoff, then given up
        message.attempts += 1
        message.last_error = repr(exc)[:1000]
        if message.attempts >= settings.scheduler_max_attempts:
            message.status = "failed"
        else:
            message.due_at = utcnow() + dt.timedelta(seconds=min(3600, 30 * 2**message.attempts))
        log.warning("survey_send_failed", message_id=str(message.id), error=repr(exc))
        return
    now = utcnow()
    message.status, message.sent_at, message.attempts = "sent", now, message.attempts + 1
    if distribution.reminder_after_seconds and message.seq < distribution.max_reminders:
        session.add(
            ScheduledMessage(
                tenant_id=message.tenant_id,
                distribution_id=message.distribution_id,
                invitation_id=message.invitation_id,
                kind="reminder",
                seq=message.seq + 1,
                customer_key=message.customer_key,
                recipient=message.recipient,
                language=message.language,
                link=message.link,
                due_at=now + dt.timedelta(seconds=distribution.reminder_after_seconds),
                created_at=now,
            )
        )


async def run_scheduler(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    assert runtime.sessions is not None
    stop: asyncio.Event = runtime.extras["scheduler_stop"]
    http: httpx.AsyncClient = runtime.extras["http"]
    while not stop.is_set():
        handled = 0
        try:
            handled = await tick(runtime.sessions, settings, http)
        except Exception as exc:
            log.error("scheduler_tick_failed", error=repr(exc))
        if handled == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_poll_seconds)


async def start_scheduler(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    runtime.extras["scheduler_stop"] = asyncio.Event()
    runtime.extras["http"] = httpx.AsyncClient(timeout=settings.webhook_timeout_seconds)
    if settings.scheduler_enabled and runtime.sessions is not None:
        runtime.spawn(run_scheduler(runtime), "survey-scheduler")


async def stop_scheduler(runtime: Runtime) -> None:
    if (stop := runtime.extras.get("scheduler_stop")) is not None:
        stop.set()
    if (http := runtime.extras.get("http")) is not None:
        await http.aclose()
