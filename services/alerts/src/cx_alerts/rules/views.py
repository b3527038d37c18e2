import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status

from cx_alerts.audit.service import Actor
from cx_alerts.clock import Clock, request_clock
from cx_alerts.concurrency import check_version, expected_version, set_etag
from cx_alerts.rules import service
from cx_alerts.rules.models import AlertRule
from cx_alerts.rules.schemas import (
    DryRunRequest,
    DryRunResult,
    RuleCreate,
    RuleDefinition,
    RuleRead,
    RuleUpdate,
    RuleVersionRead,
    Trigger,
)
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.errors import not_found
from cx_common.pagination import Page, clamp_limit

router = APIRouter(prefix="/v1/rules", tags=["rules"])

Reader = Annotated[Principal, Depends(require_scopes("rules:read"))]
Writer = Annotated[Principal, Depends(require_scopes("rules:write"))]
ClockDep = Annotated[Clock, Depends(request_clock)]


async def _load(session: SessionDep, principal: Principal, rule_id: uuid.UUID, lock: bool = False) -> AlertRule:
    rule = await service.get(session, principal.tenant_id, rule_id, lock=lock)
    if rule is None:
        raise not_found("rule", rule_id)
    return rule


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RuleRead, summary="Create a rule (version 1)")
async def create_rule(body: RuleCreate, session: SessionDep, principal: Writer, response: Response) -> RuleRead:
    rule = await service.create(session, principal.tenant_id, Actor.of(principal), body)
    await session.commit()
    await session.refresh(rule)
    set_etag(response, rule.version)
    return RuleRead.model_validate(rule)


@router.get("", response_model=Page[RuleRead], summary="List rules")
async def list_rules(
    session: SessionDep,
    principal: Reader,
    enabled: bool | None = None,
    trigger: Trigger | None = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[RuleRead]:
    rows, next_cursor = await service.list_page(
        session, principal.tenant_id, limit=clamp_limit(limit), cursor=cursor, enabled=enabled, trigger=trigger
    )
    return Page[RuleRead](items=[RuleRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/dry-run", response_model=DryRunResult, summary="Evaluate a rule definition against recent signals")
async def dry_run(body: DryRunRequest, session: SessionDep, principal: Reader, clock: ClockDep) -> DryRunResult:
    since = clock.now() - dt.timedelta(hours=body.since_hours)
    return await service.dry_run(session, principal.tenant_id, body.definition, since=since, limit=body.limit)


@router.get("/{rule_id}", response_model=RuleRead, summary="Get a rule")
async def get_rule(rule_id: uuid.UUID, session: SessionDep, principal: Reader, response: Response) -> RuleRead:
    rule = await _load(session, principal, rule_id)
    set_etag(response, rule.version)
    return RuleRead.model_validate(rule)


@router.put("/{rule_id}", response_model=RuleRead, summary="Replace a rule's definition (creates a new version)")
async def update_rule(
    rule_id: uuid.UUID,
    body: RuleUpdate,
    session: SessionDep,
    principal: Writer,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> RuleRead:
    expected = expected_version(if_match, body.version)
    rule = await _load(session, principal, rule_id, lock=True)
    check_version(rule.version, expected, "rule")
    await service.update(session, rule, Actor.of(principal), body)
    await session.commit()
    await session.refresh(rule)
    set_etag(response, rule.version)
    return RuleRead.model_validate(rule)


@router.post("/{rule_id}/enable", response_model=RuleRead, summary="Enable a rule")
async def enable_rule(rule_id: uuid.UUID, session: SessionDep, principal: Writer) -> RuleRead:
    rule = await _load(session, principal, rule_id, lock=True)
    await service.set_enabled(session, rule, Actor.of(principal), True)
    await session.commit()
    await session.refresh(rule)
    return RuleRead.model_validate(rule)


@router.post("/{rule_id}/disable", response_model=RuleRead, summary="Disable a rule")
async def disable_rule(rule_id: uuid.UUID, session: SessionDep, principal: Writer) -> RuleRead:
    rule = await _load(session, principal, rule_id, lock=True)
    await service.set_enabled(session, rule, Actor.of(principal), False)
    await session.commit()
    await session.refresh(rule)
    return RuleRead.model_validate(rule)


@router.get("/{rule_id}/versions", response_model=list[RuleVersionRead], summary="Every version of a rule")
async def rule_versions(rule_id: uuid.UUID, session: SessionDep, principal: Reader) -> list[RuleVersionRead]:
    await _load(session, principal, rule_id)
    return [RuleVersionRead.model_validate(v) for v in await service.versions(session, rule_id)]


@router.post("/{rule_id}/dry-run", response_model=DryRunResult, summary="Dry run of a stored rule")
async def dry_run_stored(
    rule_id: uuid.UUID,
    session: SessionDep,
    principal: Reader,
    clock: ClockDep,
    since_hours: Annotated[int, Query(ge=1, le=24 * 35)] = 24 * 7,
) -> DryRunResult:
    rule = await _load(session, principal, rule_id)
    definition = RuleDefinition.model_validate(rule.definition)
    since = clock.now() - dt.timedelta(hours=since_hours)
    return await service.dry_run(session, principal.tenant_id, definition, since=since, limit=10000)
