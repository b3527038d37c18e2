"""SLA policies, calendars and the timers of a ticket."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.org import service as org
from cx_alerts.sla.calendar import WEEKDAYS, WorkCalendar, add_business_minutes, parse_hhmm
from cx_alerts.sla.models import BusinessCalendar, SlaPolicy, SlaTimer
from cx_common.db import new_id

# (first response, resolution, escalation step) in minutes; used when a tenant has not configured a priority
DEFAULT_POLICIES: dict[str, tuple[int, int, int]] = {
    "P1": (60, 8 * 60, 60),
    "P2": (4 * 60, 24 * 60, 4 * 60),
    "P3": (8 * 60, 72 * 60, 8 * 60),
    "P4": (24 * 60, 168 * 60, 24 * 60),
}


@dataclass(frozen=True)
class EffectivePolicy:
    priority: str
    first_response_minutes: int
    resolution_minutes: int
    escalation_minutes: int
    business_hours: bool


async def policy_for(session: AsyncSession, tenant_id: uuid.UUID, priority: str) -> EffectivePolicy:
    row = (
        await session.execute(select(SlaPolicy).where(SlaPolicy.tenant_id == tenant_id, SlaPolicy.priority == priority))
    ).scalar_one_or_none()
    if row is not None:
        return EffectivePolicy(
            priority, row.first_response_minutes, row.resolution_minutes, row.escalation_minutes, row.business_hours
        )
    first, resolution, escalation = DEFAULT_POLICIES[priority]
    return EffectivePolicy(priority, first, resolution, escalation, business_hours=False)


def to_work_calendar(row: BusinessCalendar, fallback_tz: str) -> WorkCalendar:
    hours: dict[int, list[tuple[int, int]]] = {}
    for index, name in enumerate(WEEKDAYS):
        hours[index] = [(parse_hhmm(a), parse_hhmm(b)) for a, b in row.working_hours.get(name, [])]
    return WorkCalendar(timezone=row.timezone or fallback_tz or "UTC", hours=hours, holidays=frozenset(row.holidays))


async def calendar_for(session: AsyncSession, tenant_id: uuid.UUID, org_unit_id: str | None) -> WorkCalendar:
    """The calendar of the unit, else of its nearest ancestor that has one, else the tenant default, else 24x7.
    The time zone is the calendar's own, else the unit's (or nearest ancestor's), else UTC."""
    unit = await org.get_unit(session, tenant_id, org_unit_id)
    chain = list(reversed(org.path_of(unit, org_unit_id)))
    tz = ""
    if unit is not None:
        for uid in chain:
            u = unit if uid == unit.id else await org.get_unit(session, tenant_id, uid)
            if u is not None and u.timezone:
                tz = u.timezone
                break
    rows = (
        await session.execute(
            select(BusinessCalendar).where(
                BusinessCalendar.tenant_id == tenant_id,
                (BusinessCalendar.org_unit_id.in_(chain)) | BusinessCalendar.org_unit_id.is_(None),
            )
        )
    ).scalars()
    by_unit = {r.org_unit_id: r for r in rows}
    candidates: list[str | None] = [*chain, None]
    for candidate in candidates:
        if candidate in by_unit:
            return to_work_calendar(by_unit[candidate], tz)
    return WorkCalendar.twenty_four_seven()


async def due(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    org_unit_id: str | None,
    start: dt.datetime,
    minutes: int,
    business: bool,
) -> dt.datetime:
    calendar = await calendar_for(session, tenant_id, org_unit_id) if business else WorkCalendar.twenty_four_seven()
    return add_business_minutes(start, minutes, calendar)


async def deadlines(
    session: AsyncSession, tenant_id: uuid.UUID, org_unit_id: str | None, start: dt.datetime, policy: EffectivePolicy
) -> tuple[dt.datetime, dt.datetime]:
    """(first response due, resolution due) of a ticket opened at `start`, with one calendar lookup."""
    calendar = (
        await calendar_for(session, tenant_id, org_unit_id)
        if policy.business_hours
        else WorkCalendar.twenty_four_seven()
    )
    return (
        add_business_minutes(start, policy.first_response_minutes, calendar),
        add_business_minutes(start, policy.resolution_minutes, calendar),
    )


def add_timer(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    kind: str,
    due_at: dt.datetime,
    *,
    level: int = 0,
    reason: str = "",
) -> SlaTimer:
    timer = SlaTimer(
        id=new_id(), tenant_id=tenant_id, ticket_id=ticket_id, kind=kind, due_at=due_at, level=level, reason=reason
    )
    session.add(timer)
    return timer


async def cancel_timers(
    session: AsyncSession, ticket_id: uuid.UUID, now: dt.datetime, kinds: tuple[str, ...], reason: str | None = None
) -> None:
    query = update(SlaTimer).where(
        SlaTimer.ticket_id == ticket_id,
        SlaTimer.fired_at.is_(None),
        SlaTimer.cancelled_at.is_(None),
        SlaTimer.kind.in_(kinds),
    )
    if reason is not None:
        query = query.where(SlaTimer.reason == reason)
    await session.execute(query.values(cancelled_at=now))


async def timers_of(session: AsyncSession, ticket_id: uuid.UUID) -> list[SlaTimer]:
    rows = await session.execute(select(SlaTimer).where(SlaTimer.ticket_id == ticket_id).order_by(SlaTimer.due_at))
    return list(rows.scalars())
