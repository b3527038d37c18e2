from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.notifications.messages import render
from cx_alerts.notifications.models import Delivery, Notification, NotificationChannel, NotificationPreference
from cx_alerts.org.models import OrgUser
from cx_common.db import new_id
from cx_common.pagination import decode_cursor, encode_cursor


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
    """`title` is the fallback text; with `template` each recipient gets it in their own locale."""
    created = []
    recipients = list(dict.fromkeys(u for u in user_ids if u))
    locales: dict[str, str] = {}
    if template and recipients:
        rows = await session.execute(
            select(OrgUser.id, OrgUser.locale).where(OrgUser.tenant_id == tenant_id, OrgUser.id.in_(recipients))
        )
        locales = {row.id: row.locale for row in rows}
    for user_id in recipients:
        text = render(template, locales.get(user_id), params or {}) if template else title
        note = Notification(
            id=new_id(),
            tenant_id=tenant_id,
            user_id=user_id,
            kind=kind,
            title=text[:300],
            body=body,
            ticket_id=ticket_id,
            task_id=task_id,
            alert_id=alert_id,
        )
        session.add(note)
        created.append(note)
    await session.flush()
    if created:
        await _fan_out(session, tenant_id, created)
    return created


async def _fan_out(session: AsyncSession, tenant_id: uuid.UUID, notes: list[Notification]) -> None:
    """Queue e-mails (per the users' preferences) and chat webhooks (per the tenant's channels)."""
    first = notes[0]
    user_ids = [n.user_id for n in notes]
    prefs = {
        p.user_id: p
        for p in (
            await session.execute(
                select(NotificationPreference).where(
                    NotificationPreference.tenant_id == tenant_id, NotificationPreference.user_id.in_(user_ids)
                )
            )
        ).scalars()
    }
    directory = {
        u.id: u
        for u in (
            await session.execute(select(OrgUser).where(OrgUser.tenant_id == tenant_id, OrgUser.id.in_(user_ids)))
        ).scalars()
    }
    for note in notes:
        pref = prefs.get(note.user_id)
        if pref is not None and (not pref.email_enabled or note.kind in pref.muted_kinds):
            continue
        address = (pref.email if pref is not None else None) or (
            directory[note.user_id].email if note.user_id in directory else ""
        )
        if address:
            session.add(
                Delivery(
                    id=new_id(),
                    tenant_id=tenant_id,
                    notification_id=note.id,
                    channel="email",
                    target=address,
                    subject=note.title,
                    body=_message(note, [note.user_id]),
                    status="pending",
                )
            )
    channels = (
        await session.execute(
            select(NotificationChannel).where(
                NotificationChannel.tenant_id == tenant_id, NotificationChannel.enabled.is_(True)
            )
        )
    ).scalars()
    for channel in channels:
        if channel.kinds and first.kind not in channel.kinds:
            continue
        session.add(
            Delivery(
                id=new_id(),
                tenant_id=tenant_id,
                notification_id=first.id,
                channel="webhook",
                channel_id=channel.id,
                target=channel.url,
                subject=first.title,
                body=_message(first, user_ids),
                status="pending",
            )
        )
    await session.flush()


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
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(Notification.id > uuid.UUID(str(after.get("id"))))
    rows = list((await session.execute(query.order_by(Notification.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor
