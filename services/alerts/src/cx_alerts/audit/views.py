import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from cx_alerts.audit import service
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.pagination import Page, clamp_limit

router = APIRouter(prefix="/v1/audit", tags=["audit"])

Reader = Annotated[Principal, Depends(require_scopes("audit:read"))]


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: dt.datetime
    actor_type: str
    actor_id: str
    entity_type: str
    entity_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str
    prev_hash: str
    hash: str


class ChainCheck(BaseModel):
    intact: bool
    entries_checked: int
    first_broken_id: int | None


@router.get(
    "",
    response_model=Page[AuditEntryRead],
    summary="Query the audit trail (oldest first), limited to what the caller's org subtree may see",
)
async def list_audit(
    session: SessionDep,
    principal: Reader,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[AuditEntryRead]:
    rows, next_cursor = await service.list_page(
        session,
        principal.tenant_id,
        limit=clamp_limit(limit),
        cursor=cursor,
        entity_type=entity_type,
        entity_id=entity_id,
        actor_id=actor_id,
        action=action,
        since=since,
        until=until,
        visible_to=principal.org_unit_id,
    )
    return Page[AuditEntryRead](items=[AuditEntryRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/verify", response_model=ChainCheck, summary="Recompute the hash chain of this tenant's trail")
async def verify(session: SessionDep, principal: Reader) -> ChainCheck:
    intact, checked, broken = await service.verify_chain(session, principal.tenant_id)
    return ChainCheck(intact=intact, entries_checked=checked, first_broken_id=broken)
