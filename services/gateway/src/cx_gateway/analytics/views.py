import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from sqlalchemy import select

from cx_common.app import SessionDep
from cx_common.auth import Principal
from cx_common.errors import Problem, conflict, not_found
from cx_common.pagination import Page, clamp_limit, cursor_uuid, encode_cursor
from cx_gateway.analytics import service
from cx_gateway.analytics.formula import evaluate, parse
from cx_gateway.analytics.models import Competitor, Kpi
from cx_gateway.analytics.schemas import CompetitorCreate, CompetitorRead, KpiCreate, KpiRead, KpiValue
from cx_gateway.deps import ScopeDep
from cx_gateway.identity.deps import require
from cx_gateway.org import service as org_service
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.service import OrgScope

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])
kpi_router = APIRouter(prefix="/api/v1/kpis", tags=["kpis"])
competitor_router = APIRouter(prefix="/api/v1/competitors", tags=["analytics"])

Reader = Annotated[Principal, Depends(require("analytics:read"))]
KpiReader = Annotated[Principal, Depends(require("kpis:read"))]
KpiWriter = Annotated[Principal, Depends(require("kpis:write"))]
AnalyticsWriter = Annotated[Principal, Depends(require("analytics:write"))]
MAX_RANGE_DAYS = 731


async def narrowed_scope(
    session: SessionDep,
    scope: ScopeDep,
    org_unit_id: Annotated[uuid.UUID | None, Query(description="limit to this unit's subtree (drill-down)")] = None,
) -> tuple[OrgScope, OrgUnit | None]:
    """The caller's scope, narrowed to `org_unit_id` when given (404 when that unit is outside the caller's scope)."""
    unit_id = org_unit_id or scope.root_id
    if unit_id is None:
        root = (
            await session.execute(
                select(OrgUnit).where(OrgUnit.tenant_id == scope.tenant_id, OrgUnit.parent_id.is_(None))
            )
        ).scalar_one_or_none()
        return scope, root
    unit = await org_service.get_visible(session, scope, unit_id)
    return OrgScope(scope.tenant_id, unit.id, unit.path), unit


async def filters(
    date_from: Annotated[
        dt.date | None, Query(alias="from", description="first day (UTC), default 30 days ago")
    ] = None,
    date_to: Annotated[dt.date | None, Query(alias="to", description="last day (UTC), default today")] = None,
    touchpoint: Annotated[str | None, Query(max_length=64)] = None,
    stage: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[str | None, Query(max_length=32)] = None,
) -> service.Filters:
    end = date_to or dt.datetime.now(dt.UTC).date()
    start = date_from or end - dt.timedelta(days=29)
    if start > end:
        raise Problem(422, "from: must not be after `to`", field="from")
    if (end - start).days > MAX_RANGE_DAYS:
        raise Problem(422, f"from: the range may span at most {MAX_RANGE_DAYS} days", field="from")
    return service.Filters(start, end, touchpoint, stage, channel)


Scoped = Annotated[tuple[OrgScope, OrgUnit | None], Depends(narrowed_scope)]
FiltersDep = Annotated[service.Filters, Depends(filters)]


@router.get(
    "/overview",
    summary="Headline metrics: NPS/CSAT/CES, sentiment, needs, tickets + SLA, tasks; `freshness` of the read model",
)
async def overview(session: SessionDep, _: Reader, scoped: Scoped, f: FiltersDep) -> dict[str, Any]:
    body = await service.overview(session, scoped[0], f)
    body["freshness"] = await service.freshness(session, scoped[0].tenant_id)
    return body


@router.get("/drilldown", summary="Metrics per child org unit (subtree totals) of `org_unit_id` (default: yours)")
async def drilldown(session: SessionDep, _: Reader, scoped: Scoped, f: FiltersDep) -> dict[str, Any]:
    scope, unit = scoped
    if unit is None:
        return {"parent": None, "items": []}
    return {
        "parent": {"org_unit_id": str(unit.id), "name": unit.name, "parent_id": str(unit.parent_id or "")},
        "items": await service.drilldown(session, scope, unit, f),
    }


@router.get("/breakdown", summary="Metrics by touchpoint, journey stage, channel or day (trend)")
async def breakdown(
    session: SessionDep,
    _: Reader,
    scoped: Scoped,
    f: FiltersDep,
    by: Literal["touchpoint", "stage", "channel", "day"] = "day",
) -> dict[str, Any]:
    return {"by": by, "items": await service.breakdown(session, scoped[0], f, by)}


@router.get("/aspects", summary="Aspect mentions with sentiment at codebook level 1, 2 or 3")
async def aspects(
    session: SessionDep,
    _: Reader,
    scoped: Scoped,
    f: FiltersDep,
    level: Annotated[int, Query(ge=1, le=3)] = 1,
    parent: Annotated[
        str | None, Query(max_length=400, description="path of the parent, levels joined by ' > '")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return {"level": level, "items": await service.aspects(session, scoped[0], f, level, parent, limit)}


@router.get("/terms", summary="Top intents, keywords, product SKUs or tracked competitors")
async def terms(
    session: SessionDep,
    _: Reader,
    scoped: Scoped,
    f: FiltersDep,
    kind: Literal["keyword", "intent", "sku", "competitor"] = "keyword",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return {"kind": kind, "items": await service.terms(session, scoped[0], f, kind, limit)}


@router.get("/fusion", summary="X+O: experience metrics by an operational attribute (org unit or customer O-data)")
async def fusion(
    session: SessionDep,
    _: Reader,
    scoped: Scoped,
    f: FiltersDep,
    attribute: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    source: Literal["org", "customer"] = "customer",
) -> dict[str, Any]:
    return {
        "source": source,
        "attribute": attribute,
        "items": await service.fusion(session, scoped[0], f, source, attribute),
    }


@router.get("/surveys/{survey_id}", summary="One survey's results in scope: totals, by day, by org unit")
async def survey_results(
    survey_id: Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
    session: SessionDep,
    _: Reader,
    scoped: Scoped,
    f: FiltersDep,
) -> dict[str, Any]:
    return await service.survey_results(session, scoped[0], f, survey_id)


@router.get("/tasks", summary="Improvement task outcomes: counts by status, measured before/after change")
async def task_outcomes(session: SessionDep, _: Reader, scoped: Scoped) -> dict[str, Any]:
    return await service.task_outcomes(session, scoped[0])


@kpi_router.post("", status_code=201, response_model=KpiRead)
async def create_kpi(body: KpiCreate, session: SessionDep, principal: KpiWriter) -> KpiRead:
    exists = await session.scalar(select(Kpi.id).where(Kpi.tenant_id == principal.tenant_id, Kpi.code == body.code))
    if exists:
        raise conflict(f"code: a KPI with code {body.code!r} exists", field="code")
    row = Kpi(tenant_id=principal.tenant_id, **body.model_dump())
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await session.commit()
    return KpiRead.model_validate(row)


@kpi_router.get("", response_model=Page[KpiRead])
async def list_kpis(
    session: SessionDep,
    principal: KpiReader,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: str | None = None,
) -> Page[KpiRead]:
    n = clamp_limit(limit)
    query = select(Kpi).where(Kpi.tenant_id == principal.tenant_id).order_by(Kpi.id).limit(n + 1)
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(Kpi.id > after)
    rows = list((await session.execute(query)).scalars())
    nxt = encode_cursor({"id": str(rows[n - 1].id)}) if len(rows) > n else None
    return Page[KpiRead](items=[KpiRead.model_validate(r) for r in rows[:n]], next_cursor=nxt)


@kpi_router.get("/{kpi_id}/values", response_model=list[KpiValue], summary="KPI per child org unit for a period")
async def kpi_values(
    kpi_id: uuid.UUID, session: SessionDep, principal: KpiReader, scoped: Scoped, f: FiltersDep
) -> list[KpiValue]:
    kpi = await session.scalar(select(Kpi).where(Kpi.tenant_id == principal.tenant_id, Kpi.id == kpi_id))
    if kpi is None:
        raise not_found("kpi", kpi_id)
    tree = parse(kpi.formula, set(service.METRIC_NAMES))
    scope, unit = scoped
    out: list[KpiValue] = []
    if unit is not None:
        total = await service.overview(session, scope, f)
        variables = service.kpi_variables(total)
        out.append(
            KpiValue(org_unit_id=str(unit.id), name=unit.name, value=evaluate(tree, variables), variables=variables)
        )
        for row in await service.drilldown(session, scope, unit, f):
            if row["self"]:
                continue
            variables = service.kpi_variables(row)
            out.append(
                KpiValue(
                    org_unit_id=row["org_unit_id"],
                    name=row["name"],
                    value=evaluate(tree, variables),
                    variables=variables,
                )
            )
    return out


def _competitor(row: Competitor) -> CompetitorRead:
    return CompetitorRead(id=row.id, name=row.name, aliases=json.loads(row.aliases or "[]"), created_at=row.created_at)


@competitor_router.post(
    "", status_code=201, response_model=CompetitorRead, summary="Track a competitor in analysed feedback (from now on)"
)
async def create_competitor(body: CompetitorCreate, session: SessionDep, principal: AnalyticsWriter) -> CompetitorRead:
    exists = await session.scalar(
        select(Competitor.id).where(Competitor.tenant_id == principal.tenant_id, Competitor.name == body.name)
    )
    if exists:
        raise conflict(f"name: competitor {body.name!r} is tracked already", field="name")
    aliases = sorted({a for a in body.aliases if a.casefold() != body.name.casefold()})
    row = Competitor(tenant_id=principal.tenant_id, name=body.name, aliases=json.dumps(aliases, ensure_ascii=False))
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await session.commit()
    return _competitor(row)


@competitor_router.get("", response_model=list[CompetitorRead], summary="Tracked competitors")
async def list_competitors(session: SessionDep, principal: Reader) -> list[CompetitorRead]:
    rows = await session.execute(
        select(Competitor).where(Competitor.tenant_id == principal.tenant_id).order_by(Competitor.name).limit(500)
    )
    return [_competitor(r) for r in rows.scalars()]


@competitor_router.delete("/{competitor_id}", status_code=204, summary="Stop tracking (counted mentions stay)")
async def delete_competitor(competitor_id: uuid.UUID, session: SessionDep, principal: AnalyticsWriter) -> Response:
    row = await session.scalar(
        select(Competitor).where(Competitor.tenant_id == principal.tenant_id, Competitor.id == competitor_id)
    )
    if row is None:
        raise not_found("competitor", competitor_id)
    await session.delete(row)
    await session.commit()
    return Response(status_code=204)
