import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from cx_alerts.audit import service as audit
from cx_alerts.org import service as org
from cx_alerts.sla import service
from cx_alerts.sla.calendar import add_business_minutes
from cx_alerts.sla.models import BusinessCalendar, SlaPolicy
from cx_alerts.sla.schemas import CalendarRead, CalendarWrite, DuePreview, PolicyRead, PolicyWrite, Priority
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.db import new_id
from cx_common.errors import Problem, not_found

router = APIRouter(prefix="/v1", tags=["sla"])

Reader = Annotated[Principal, Depends(require_scopes("sla:read"))]
Writer = Annotated[Principal, Depends(require_scopes("sla:write"))]


def _policy_snapshot(p: SlaPolicy) -> dict[str, object]:
    return {
        "first_response_minutes": p.first_response_minutes,
        "resolution_minutes": p.resolution_minutes,
        "escalation_minutes": p.escalation_minutes,
        "business_hours": p.business_hours,
        "version": p.version,
    }


@router.get("/sla-policies", response_model=list[PolicyRead], summary="Effective SLA policy of every priority")
async def list_policies(session: SessionDep, principal: Reader) -> list[PolicyRead]:
    out = []
    for priority in service.DEFAULT_POLICIES:
        row = (
            await session.execute(
                select(SlaPolicy).where(SlaPolicy.tenant_id == principal.tenant_id, SlaPolicy.priority == priority)
            )
        ).scalar_one_or_none()
        if row is not None:
            out.append(PolicyRead.model_validate(row))
        else:
            eff = await service.policy_for(session, principal.tenant_id, priority)
            out.append(PolicyRead(version=0, **eff.__dict__))
    return out


@router.put("/sla-policies/{priority}", response_model=PolicyRead, summary="Set the SLA policy of a priority")
async def put_policy(priority: Priority, body: PolicyWrite, session: SessionDep, principal: Writer) -> PolicyRead:
    row = (
        await session.execute(
            select(SlaPolicy)
            .where(SlaPolicy.tenant_id == principal.tenant_id, SlaPolicy.priority == priority)
            .with_for_update()
        )
    ).scalar_one_or_none()
    before = _policy_snapshot(row) if row else None
    if row is None:
        row = SlaPolicy(id=new_id(), tenant_id=principal.tenant_id, priority=priority, version=0)
        session.add(row)
    row.first_response_minutes = body.first_response_minutes
    row.resolution_minutes = body.resolution_minutes
    row.escalation_minutes = body.escalation_minutes or body.first_response_minutes
    row.business_hours = body.business_hours
    row.version += 1
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        audit.Actor.of(principal),
        entity_type="sla_policy",
        entity_id=priority,
        action="set",
        before=before,
        after=_policy_snapshot(row),
    )
    await session.commit()
    return PolicyRead.model_validate(row)


async def _refuse_second_calendar(
    session: SessionDep, tenant_id: uuid.UUID, org_unit_id: str | None, but: uuid.UUID | None = None
) -> None:
    """One calendar per org unit (and one tenant default): a second one answers 409 naming the first."""
    query = select(BusinessCalendar.id).where(
        BusinessCalendar.tenant_id == tenant_id,
        BusinessCalendar.org_unit_id.is_(None) if org_unit_id is None else BusinessCalendar.org_unit_id == org_unit_id,
    )
    if but is not None:
        query = query.where(BusinessCalendar.id != but)
    existing = (await session.execute(query)).first()
    if existing is not None:
        raise Problem(
            409, f"org_unit_id: a calendar for this org unit exists already ({existing[0]})", field="org_unit_id"
        )


def _calendar_snapshot(c: BusinessCalendar) -> dict[str, object]:
    return {
        "name": c.name,
        "org_unit_id": c.org_unit_id,
        "timezone": c.timezone,
        "working_hours": c.working_hours,
        "holidays": [str(d) for d in c.holidays],
        "version": c.version,
    }


@router.post("/calendars", status_code=status.HTTP_201_CREATED, response_model=CalendarRead, summary="Add a calendar")
async def create_calendar(body: CalendarWrite, session: SessionDep, principal: Writer) -> CalendarRead:
    if body.org_unit_id is not None:
        await org.check_references(session, principal.tenant_id, units=[("org_unit_id", body.org_unit_id)])
    await _refuse_second_calendar(session, principal.tenant_id, body.org_unit_id)
    cal = BusinessCalendar(
        id=new_id(),
        tenant_id=principal.tenant_id,
        name=body.name,
        org_unit_id=body.org_unit_id,
        timezone=body.timezone,
        working_hours={k: [list(i) for i in v] for k, v in body.working_hours.items()},
        holidays=sorted(set(body.holidays)),
        version=1,
    )
    session.add(cal)
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        audit.Actor.of(principal),
        entity_type="calendar",
        entity_id=cal.id,
        action="created",
        after=_calendar_snapshot(cal),
    )
    await session.commit()
    return CalendarRead.model_validate(cal)


@router.get("/calendars", response_model=list[CalendarRead], summary="List calendars")
async def list_calendars(session: SessionDep, principal: Reader) -> list[CalendarRead]:
    rows = await session.execute(
        select(BusinessCalendar)
        .where(BusinessCalendar.tenant_id == principal.tenant_id)
        .order_by(BusinessCalendar.name)
    )
    return [CalendarRead.model_validate(r) for r in rows.scalars()]


@router.put("/calendars/{calendar_id}", response_model=CalendarRead, summary="Replace a calendar")
async def put_calendar(
    calendar_id: uuid.UUID, body: CalendarWrite, session: SessionDep, principal: Writer
) -> CalendarRead:
    cal = (
        await session.execute(
            select(BusinessCalendar)
            .where(BusinessCalendar.tenant_id == principal.tenant_id, BusinessCalendar.id == calendar_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if cal is None:
        raise not_found("calendar", calendar_id)
    if body.org_unit_id is not None:
        await org.check_references(session, principal.tenant_id, units=[("org_unit_id", body.org_unit_id)])
    await _refuse_second_calendar(session, principal.tenant_id, body.org_unit_id, but=cal.id)
    before = _calendar_snapshot(cal)
    cal.name = body.name
    cal.org_unit_id = body.org_unit_id
    cal.timezone = body.timezone
    cal.working_hours = {k: [list(i) for i in v] for k, v in body.working_hours.items()}
    cal.holidays = sorted(set(body.holidays))
    cal.version += 1
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        audit.Actor.of(principal),
        entity_type="calendar",
        entity_id=cal.id,
        action="updated",
        before=before,
        after=_calendar_snapshot(cal),
    )
    await session.commit()
    return CalendarRead.model_validate(cal)


@router.get("/calendars:due", response_model=DuePreview, summary="When N working minutes after a start are over")
async def preview_due(
    session: SessionDep,
    principal: Reader,
    start: dt.datetime,
    minutes: Annotated[int, Query(ge=0, le=60 * 24 * 365)],
    org_unit_id: str | None = None,
) -> DuePreview:
    if start.tzinfo is None:
        raise Problem(422, "start: needs a time zone offset", field="start")
    calendar = await service.calendar_for(session, principal.tenant_id, org_unit_id)
    return DuePreview(
        start=start,
        minutes=minutes,
        due=add_business_minutes(start, minutes, calendar),
        timezone="24x7" if calendar.always_open else calendar.timezone,
    )
