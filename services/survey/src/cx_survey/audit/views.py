import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_survey.audit.models import AuditEntry

router = APIRouter(prefix="/v1/audit", tags=["audit"])
Reader = Annotated[Principal, Depends(require_scopes("surveys:read"))]


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    at: dt.datetime


@router.get("", response_model=list[AuditRead], summary="Audit trail of survey and distribution changes")
async def list_audit(
    session: SessionDep,
    principal: Reader,
    entity_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditRead]:
    query = select(AuditEntry).where(AuditEntry.tenant_id == principal.tenant_id)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    rows = await session.execute(query.order_by(AuditEntry.id).limit(limit))
    return [AuditRead.model_validate(r) for r in rows.scalars()]
