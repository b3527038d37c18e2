import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from cx_alerts.alerts import flows
from cx_alerts.alerts.models import Alert
from cx_alerts.audit import service as audit
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit, cursor_uuid, encode_cursor

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

Reader = Annotated[Principal, Depends(require_scopes("alerts:read"))]


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    rule_id: uuid.UUID | None
    rule_version: int
    severity: str
    status: str
    source_event_id: uuid.UUID
    source_type: str
    response_id: str
    feedback_id: str
    org_unit_id: str
    customer_key: str
    reason: str
    ticket_id: uuid.UUID | None
    raised_at: dt.datetime


@router.get("", response_model=Page[AlertRead], summary="Alerts visible to the caller (newest first)")
async def list_alerts(
    session: SessionDep,
    principal: Reader,
    rule_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[AlertRead]:
    size = clamp_limit(limit)
    after = cursor_uuid(cursor)
    rows = await flows.list_alerts(
        session,
        principal.tenant_id,
        principal.org_unit_id,
        limit=size,
        after=after,
        rule_id=rule_id,
        ticket_id=ticket_id,
    )
    next_cursor = encode_cursor({"id": str(rows[size - 1].id)}) if len(rows) > size else None
    return Page[AlertRead](items=[AlertRead.model_validate(r) for r in rows[:size]], next_cursor=next_cursor)


Writer = Annotated[Principal, Depends(require_scopes("alerts:write"))]


@router.post("/{alert_id}/acknowledge", response_model=AlertRead, summary="Acknowledge an alert")
async def acknowledge(alert_id: uuid.UUID, session: SessionDep, principal: Writer) -> AlertRead:
    alert = (
        await session.execute(
            select(Alert).where(Alert.tenant_id == principal.tenant_id, Alert.id == alert_id).with_for_update()
        )
    ).scalar_one_or_none()
    if alert is None or (principal.org_unit_id is not None and principal.org_unit_id not in alert.org_path):
        raise not_found("alert", alert_id)
    if alert.status != "acknowledged":
        await audit.record(
            session,
            principal.tenant_id,
            audit.Actor.of(principal),
            entity_type="alert",
            entity_id=alert.id,
            action="acknowledged",
            before={"status": alert.status},
            after={"status": "acknowledged"},
        )
        alert.status = "acknowledged"
        await session.commit()
        await session.refresh(alert)
    return AlertRead.model_validate(alert)
