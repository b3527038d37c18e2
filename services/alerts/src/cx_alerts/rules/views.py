import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from cx_alerts.rules import service
from cx_alerts.rules.schemas import AlertRuleCreate, AlertRuleRead
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit

router = APIRouter(prefix="/v1/rules", tags=["alert_rules"])

Reader = Annotated[Principal, Depends(require_scopes("rules:read"))]
Writer = Annotated[Principal, Depends(require_scopes("rules:write"))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AlertRuleRead)
async def create_rule(body: AlertRuleCreate, session: SessionDep, principal: Writer) -> AlertRuleRead:
    record = await service.create(session, principal.tenant_id, body)
    await session.commit()
    return AlertRuleRead.model_validate(record)


@router.get("", response_model=Page[AlertRuleRead])
async def list_rules(
    session: SessionDep,
    principal: Reader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[AlertRuleRead]:
    rows, next_cursor = await service.list_page(session, principal.tenant_id, limit=clamp_limit(limit), cursor=cursor)
    return Page[AlertRuleRead](items=[AlertRuleRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{rule_id}", response_model=AlertRuleRead)
async def get_rule(rule_id: uuid.UUID, session: SessionDep, principal: Reader) -> AlertRuleRead:
    record = await service.get(session, principal.tenant_id, rule_id)
    if record is None:
        raise not_found("rule", rule_id)
    return AlertRuleRead.model_validate(record)
