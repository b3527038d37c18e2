import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from cx_alerts.audit import service as audit
from cx_alerts.compliance import service
from cx_alerts.compliance.models import ComplianceProfile, ComplianceResult
from cx_alerts.compliance.schemas import Interval, ProfileCreate, ProfileRead, ResultRead, Scorecard
from cx_alerts.context import CtxDep
from cx_common.app import SessionDep
from cx_common.auth import Principal, require_scopes
from cx_common.db import new_id

router = APIRouter(prefix="/v1/compliance", tags=["compliance"])

Reader = Annotated[Principal, Depends(require_scopes("compliance:read"))]
Writer = Annotated[Principal, Depends(require_scopes("compliance:write"))]


@router.post("/profiles", status_code=status.HTTP_201_CREATED, response_model=ProfileRead, summary="Add a profile")
async def create_profile(body: ProfileCreate, session: SessionDep, principal: Writer) -> ProfileRead:
    profile = ComplianceProfile(
        id=new_id(),
        tenant_id=principal.tenant_id,
        name=body.name,
        enabled=body.enabled,
        definition=body.definition.model_dump(mode="json"),
    )
    session.add(profile)
    await session.flush()
    await audit.record(
        session,
        principal.tenant_id,
        audit.Actor.of(principal),
        entity_type="compliance_profile",
        entity_id=profile.id,
        action="created",
        after={"name": profile.name, "definition": profile.definition},
    )
    await session.commit()
    return ProfileRead.model_validate(profile)


@router.get("/profiles", response_model=list[ProfileRead], summary="List profiles")
async def list_profiles(session: SessionDep, principal: Reader) -> list[ProfileRead]:
    rows = await session.execute(
        select(ComplianceProfile)
        .where(ComplianceProfile.tenant_id == principal.tenant_id)
        .order_by(ComplianceProfile.name)
    )
    return [ProfileRead.model_validate(r) for r in rows.scalars()]


@router.get("/results", response_model=list[ResultRead], summary="Per-conversation results (newest first)")
async def list_results(
    session: SessionDep,
    principal: Reader,
    agent_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ResultRead]:
    query = select(ComplianceResult).where(ComplianceResult.tenant_id == principal.tenant_id)
    if principal.org_unit_id is not None:  # a unit sees its own conversations and those below it
        query = query.where(
            service.in_subtree(ComplianceResult.org_unit_id, principal.tenant_id, principal.org_unit_id)
        )
    if agent_id:
        query = query.where(ComplianceResult.agent_id == agent_id)
    rows = await session.execute(query.order_by(ComplianceResult.occurred_at.desc()).limit(limit))
    return [ResultRead.model_validate(r) for r in rows.scalars()]


@router.get("/scorecards", response_model=list[Scorecard], summary="Per-agent scorecards over a period (and trend)")
async def get_scorecards(
    session: SessionDep,
    principal: Reader,
    ctx: CtxDep,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    agent_id: str | None = None,
    interval: Annotated[Interval | None, Query(description="add a trend per day or week")] = None,
) -> list[Scorecard]:
    now = ctx.now()
    return await service.scorecards(
        session,
        principal.tenant_id,
        since=since or now - dt.timedelta(days=30),
        until=until or now + dt.timedelta(seconds=1),
        agent_id=agent_id,
        org_unit_id=principal.org_unit_id,
        interval=interval,
    )
