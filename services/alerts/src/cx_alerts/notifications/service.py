from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.notifications.messages import render
from cx_alerts.notifications.models import Delivery, Notification, NotificationChannel
from cx_common.db import new_id
from cx_common.pagination import cursor_uuid, encode_cursor


async def notify(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    user_ids: Iterable[str | None],
    *,
    kind: str,
    title: str,
    body: str = "",
    ticket_id: uuid.UUID | None = None,
    task_id: uuid.UUID | None = None,
    alert_id: uuid.UUID | None = None,
    template: str | None = None,
    params: dict[str, Any] | None = None,
) -> list[Notification]:
    """In-app notifications, plus e-mails (per each user's preferences) and chat webhooks (per the tenant's channels).
    `title` is the fallback text; with `template` each recipient gets it in their own locale. Two queries: the
    recipients (directory + preferences) and, once per transaction, the tenant's channels."""
    recipients = list(dict.fromkeys(u for u in user_ids if u))
    if not recipients:
        return []
    people = await _people(session, tenant_id, recipients)
    notes = []
    deliveries = []
    for user_id in recipients:
        person = people[user_id]
        text_ = render(template, person.locale, params or {}) if template else title
        note = Notification(
            id=new_id(),
            tenant_id=tenant_id,
            user_id=user_id,
            kind=kind,
            title=text_[:300],
            body=body,
            ticket_id=ticket_id,
            task_id=task_id,
            alert_id=alert_id,
        )
        notes.append(note)
        muted = person.email_enabled is False or kind in (person.muted_kinds or ())
        address = person.pref_email or person.directory_email
        if address and not muted:
            deliveries.append(_delivery(tenant_id, note, "email", address, [user_id]))
    for channel in await _channels(session, tenant_id):
        if not channel.kinds or kind in channel.kinds:
            deliveries.append(_delivery(tenant_id, notes[0], "webhook", channel.url, recipients, channel.id))
    session.add_all([*notes, *deliveries])
    return notes


_RECIPIENTS = text(
    "SELECT r.user_id, u.locale, u.email AS directory_email, p.email AS pref_email, p.email_enabled, p.muted_kinds "
    "FROM unnest(CAST(:ids AS text[])) AS r(user_id) "
    "LEFT JOIN org_users u ON u.tenant_id = :tenant AND u.id = r.user_id "
    "LEFT JOIN notification_preferences p ON p.tenant_id = :tenant AND p.user_id = r.user_id"
)
_CHANNELS = "cx_alerts_channels"
_PEOPLE = "cx_alerts_recipients"


async def _people(session: AsyncSession, tenant_id: uuid.UUID, user_ids: list[str]) -> dict[str, Any]:
    """Locale, directory e-mail and preferences of each recipient; a transaction reads each user once (a signal
    usually notifies the same store manager of its alert and of its ticket)."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_PEOPLE)
    if cached is None or cached[0] is not transaction or cached[1] != tenant_id:
        cached = (transaction, tenant_id, {})
        session.info[_PEOPLE] = cached
    known: dict[str, Any] = cached[2]
    missing = [u for u in user_ids if u not in known]
    if missing:
        for row in await session.execute(_RECIPIENTS, {"tenant": tenant_id, "ids": missing}):
            known[row.user_id] = row
    return {u: known[u] for u in user_ids}


async def _channels(session: AsyncSession, tenant_id: uuid.UUID) -> list[NotificationChannel]:
    """The tenant's enabled webhook channels, read once per transaction."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_CHANNELS)
    if cached is not None and cached[0] is transaction and cached[1] == tenant_id:
        return list(cached[2])
    rows = list(
        (
            await session.execute(
                select(NotificationChannel).where(
                    NotificationChannel.tenant_id == tenant_id, NotificationChannel.enabled.is_(True)
                )
            )
        ).scalars()
    )
    session.info[_CHANNELS] = (transaction, tenant_id, rows)
    return rows


def _delivery(
    tenant_id: uuid.UUID,
    note: Notification,
    channel: str,
    target: str,
    recipients: list[str],
    channel_id: uuid.UUID | None = None,
) -> Delivery:
    return Delivery(
        id=new_id(),
        tenant_id=tenant_id,
        notification_id=note.id,
        channel=channel,
        channel_id=channel_id,
        target=target,
        subject=note.title,
        body=_message(note, recipients),
        status="pending",
        attempts=0,
    )


def _message(note: Notification, recipients: list[str]) -> dict[str, object]:
    return {
        "kind": note.kind,
        "title": note.title,
        "body": note.body,
        "recipients": recipients,
        "ticket_id": str(note.ticket_id) if note.ticket_id else None,
        "task_id": str(note.task_id) if note.task_id else None,
        "alert_id": str(note.alert_id) if note.alert_id else None,
    }


async def list_for_user(
    session: AsyncSession, tenant_id: uuid.UUID, user_id: str, *, limit: int, cursor: str | None, unread: bool
) -> tuple[list[Notification], str | None]:
    query = select(Notification).where(Notification.tenant_id == tenant_id, Notification.user_id == user_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(Notification.id > after)
    rows = list((await session.execute(query.order_by(Notification.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
