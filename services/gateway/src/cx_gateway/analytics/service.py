"""Queries over the rollups, always limited to the caller's org subtree."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from cx_gateway.analytics.models import (
    UNKNOWN_ORG,
    AspectRollup,
    CustomerAttributes,
    DailyRollup,
    Freshness,
    ResponseFact,
    SubtreeAspects,
    SubtreeDaily,
    SubtreeTerms,
    TaskState,
    TermRollup,
    TicketState,
)
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.service import OrgScope

COUNTERS = [
    c.name
    for c in DailyRollup.__table__.columns
    if c.name not in ("id", "tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel")
]
METRIC_NAMES = (
    "responses",
    "feedback",
    "nps",
    "csat",
    "ces",
    "negative_rate",
    "neutral_rate",
    "positive_rate",
    "complaint_rate",
    "pain_rate",
    "itch_rate",
    "delight_rate",
    "sla_compliance",
    "tickets_created",
    "tickets_resolved",
    "tickets_escalated",
    "tasks_created",
    "tasks_completed",
    "tasks_accepted",
)


@dataclass(frozen=True)
class Filters:
    date_from: dt.date
    date_to: dt.date
    touchpoint: str | None = None
    stage: str | None = None
    channel: str | None = None


def _ratio(num: float, den: float) -> float | None:
    return None if not den else num / den


def metrics(sums: dict[str, Any]) -> dict[str, Any]:
    s = {k: (sums.get(k) or 0) for k in COUNTERS}
    return {
        "responses": int(s["responses"]),
        "feedback": int(s["feedback"]),
        "nps": None if not s["nps_count"] else round((s["promoters"] - s["detractors"]) * 100.0 / s["nps_count"], 2),
        "nps_count": int(s["nps_count"]),
        "promoters": int(s["promoters"]),
        "passives": int(s["passives"]),
        "detractors": int(s["detractors"]),
        "csat": _round(_ratio(s["csat_sum"], s["csat_count"])),
        "ces": _round(_ratio(s["ces_sum"], s["ces_count"])),
        "sentiment": {"negative": int(s["negative"]), "neutral": int(s["neutral"]), "positive": int(s["positive"])},
        "negative_rate": _round(_ratio(s["negative"], s["feedback"])),
        "neutral_rate": _round(_ratio(s["neutral"], s["feedback"])),
        "positive_rate": _round(_ratio(s["positive"], s["feedback"])),
        "needs": {"pain": int(s["pain"]), "itch": int(s["itch"]), "delight": int(s["delight"])},
        "pain_rate": _round(_ratio(s["pain"], s["feedback"])),
        "itch_rate": _round(_ratio(s["itch"], s["feedback"])),
        "delight_rate": _round(_ratio(s["delight"], s["feedback"])),
        "complaint_rate": _round(_ratio(s["complaints"], s["feedback"])),
        "unmatched": int(s["unmatched"]),
        "tickets_created": int(s["tickets_created"]),
        "tickets_resolved": int(s["tickets_resolved"]),
        "tickets_escalated": int(s["tickets_escalated"]),
        "sla_compliance": _round(_ratio(s["tickets_resolved_in_sla"], s["tickets_resolved"])),
        "tasks_created": int(s["tasks_created"]),
        "tasks_completed": int(s["tasks_completed"]),
        "tasks_accepted": int(s["tasks_accepted"]),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _sums(model: Any = DailyRollup) -> list[Any]:
    return [func.coalesce(func.sum(getattr(model, c)), 0).label(c) for c in COUNTERS]


def is_tenant_wide(scope: OrgScope) -> bool:
    return scope.root_path is None or scope.root_path.count("/") == 2  # "/<root>/"


def scope_clause(column: Any, scope: OrgScope) -> ColumnElement[bool]:
    clause: ColumnElement[bool] = column.in_(scope.unit_ids_query())
    if is_tenant_wide(scope):
        clause = or_(clause, column == UNKNOWN_ORG)
    return clause


def by_dimension(f: Filters) -> bool:
    """Filtered by touchpoint, stage or channel: only the per-unit rollups have those."""
    return f.touchpoint is not None or f.stage is not None or f.channel is not None


def subtree_clause(column: Any, scope: OrgScope) -> ColumnElement[bool]:
    """The subtree rows that hold the scope's totals: its unit's (tenant-wide: the root's and UNKNOWN_ORG's)."""
    if scope.root_id is not None and scope.root_path is not None:
        ids = [scope.root_id, UNKNOWN_ORG] if is_tenant_wide(scope) else [scope.root_id]
        clause: ColumnElement[bool] = column.in_(ids)
        return clause
    roots = select(OrgUnit.id).where(OrgUnit.tenant_id == scope.tenant_id, OrgUnit.parent_id.is_(None))
    return or_(column.in_(roots), column == UNKNOWN_ORG)


def _in_subtree(query: Any, model: Any, scope: OrgScope, f: Filters) -> Any:
    return query.where(
        model.tenant_id == scope.tenant_id,
        model.day >= f.date_from,
        model.day <= f.date_to,
        subtree_clause(model.scope_id, scope),
    )


def _filtered(query: Any, table: Any, scope: OrgScope, f: Filters) -> Any:
    query = query.where(
        table.tenant_id == scope.tenant_id,
        table.day >= f.date_from,
        table.day <= f.date_to,
        scope_clause(table.org_unit_id, scope),
    )
    for name in ("touchpoint", "stage", "channel"):
        value = getattr(f, name)
        if value is not None:
            query = query.where(getattr(table, name) == value)
    return query


async def overview(session: AsyncSession, scope: OrgScope, f: Filters) -> dict[str, Any]:
    if by_dimension(f):
        query = _filtered(select(*_sums()), DailyRollup, scope, f)
    else:
        query = _in_subtree(select(*_sums(SubtreeDaily)), SubtreeDaily, scope, f)
    row = (await session.execute(query)).mappings().one()
    result = metrics(dict(row))
    open_q = select(func.count()).where(
        TicketState.tenant_id == scope.tenant_id,
        TicketState.resolved_at.is_(None),
        scope_clause(TicketState.org_unit_id, scope),
    )
    result["tickets_open"] = int(await session.scalar(open_q) or 0)
    result["tickets_open_breached"] = int(await session.scalar(open_q.where(TicketState.breached.is_(True))) or 0)
    return result


async def breakdown(session: AsyncSession, scope: OrgScope, f: Filters, by: str) -> list[dict[str, Any]]:
    if by == "day" and not by_dimension(f):
        day = SubtreeDaily.day
        query = _in_subtree(select(day.label("key"), *_sums(SubtreeDaily)), SubtreeDaily, scope, f)
        rows = (await session.execute(query.group_by(day).order_by(day))).mappings()
        return [{"key": str(r["key"]), **metrics(dict(r))} for r in rows]
    column = {
        "touchpoint": DailyRollup.touchpoint,
        "stage": DailyRollup.stage,
        "channel": DailyRollup.channel,
        "day": DailyRollup.day,
    }[by]
    query = _filtered(select(column.label("key"), *_sums()), DailyRollup, scope, f).group_by(column).order_by(column)
    return [{"key": str(r["key"]), **metrics(dict(r))} for r in (await session.execute(query)).mappings()]


async def drilldown(session: AsyncSession, scope: OrgScope, parent: OrgUnit, f: Filters) -> list[dict[str, Any]]:
    """One row per child of `parent` with the totals of its whole subtree (plus `parent` itself for data recorded
    directly on it)."""
    children = list(
        (await session.execute(select(OrgUnit).where(OrgUnit.parent_id == parent.id).order_by(OrgUnit.code))).scalars()
    )
    if by_dimension(f):
        by_child = await _drilldown_units(session, scope, parent, f)
    else:
        by_child = await _drilldown_subtrees(session, scope, parent, [c.id for c in children], f)
    with_children = set(
        (
            await session.execute(
                select(OrgUnit.parent_id).where(OrgUnit.parent_id.in_([c.id for c in children])).distinct()
            )
        ).scalars()
    )
    rows: list[dict[str, Any]] = []
    if "" in by_child:
        rows.append(
            {
                "org_unit_id": str(parent.id),
                "name": parent.name,
                "code": parent.code,
                "kind": parent.kind,
                "has_children": False,
                "self": True,
                **metrics(by_child[""]),
            }
        )
    for child in children:
        rows.append(
            {
                "org_unit_id": str(child.id),
                "name": child.name,
                "code": child.code,
                "kind": child.kind,
                "has_children": child.id in with_children,
                "self": False,
                **metrics(by_child.get(str(child.id), {})),
            }
        )
    return rows


async def _drilldown_units(
    session: AsyncSession, scope: OrgScope, parent: OrgUnit, f: Filters
) -> dict[str, dict[str, Any]]:
    """Per-unit rollups summed by the child whose subtree the unit is in ("" = the parent itself)."""
    segment = func.split_part(OrgUnit.path, "/", parent.depth + 3)
    query = (
        _filtered(
            select(segment.label("child"), *_sums()).join(
                OrgUnit, and_(OrgUnit.id == DailyRollup.org_unit_id, OrgUnit.tenant_id == DailyRollup.tenant_id)
            ),
            DailyRollup,
            scope,
            f,
        )
        .where(OrgUnit.path.startswith(parent.path, autoescape=True))
        .group_by(segment)
    )
    return {r["child"]: dict(r) for r in (await session.execute(query)).mappings()}


async def _drilldown_subtrees(
    session: AsyncSession, scope: OrgScope, parent: OrgUnit, children: list[uuid.UUID], f: Filters
) -> dict[str, dict[str, Any]]:
    """The children's subtree totals; what the parent's total has beyond them was recorded on the parent itself."""
    if not scope.contains(parent):
        return {}
    t = SubtreeDaily
    query = (
        select(t.scope_id, *_sums(t))
        .where(
            t.tenant_id == scope.tenant_id,
            t.day >= f.date_from,
            t.day <= f.date_to,
            t.scope_id.in_([parent.id, *children]),
        )
        .group_by(t.scope_id)
    )
    totals = {r["scope_id"]: dict(r) for r in (await session.execute(query)).mappings()}
    out = {str(k): v for k, v in totals.items() if k != parent.id}
    if parent.id in totals:
        own = {c: totals[parent.id][c] - sum(v[c] for v in out.values()) for c in COUNTERS}
        if any(own[c] for c in COUNTERS if not c.endswith("_sum")):
            out[""] = own
    return out


async def aspects(
    session: AsyncSession, scope: OrgScope, f: Filters, level: int, parent_path: str | None, limit: int
) -> list[dict[str, Any]]:
    query: Any
    if by_dimension(f):
        t: Any = AspectRollup
        total = func.sum(t.mentions)
        query = _filtered(
            select(
                t.path,
                total.label("mentions"),
                func.sum(case((t.polarity == "negative", t.mentions), else_=0)).label("negative"),
                func.sum(case((t.polarity == "neutral", t.mentions), else_=0)).label("neutral"),
                func.sum(case((t.polarity == "positive", t.mentions), else_=0)).label("positive"),
            ),
            t,
            scope,
            f,
        )
    else:
        t = SubtreeAspects
        total = func.sum(t.mentions)
        query = _in_subtree(
            select(
                t.path,
                total.label("mentions"),
                func.sum(t.negative).label("negative"),
                func.sum(t.neutral).label("neutral"),
                func.sum(t.positive).label("positive"),
            ),
            t,
            scope,
            f,
        )
    query = query.where(t.level == level)
    if parent_path:
        query = query.where(t.path.startswith(parent_path + " > ", autoescape=True))
    query = query.group_by(t.path).order_by(total.desc(), t.path).limit(limit)
    out = []
    for r in (await session.execute(query)).mappings():
        n = int(r["mentions"])
        out.append(
            {
                "path": r["path"].split(" > "),
                "mentions": n,
                "negative": int(r["negative"]),
                "neutral": int(r["neutral"]),
                "positive": int(r["positive"]),
                "net_sentiment": round((int(r["positive"]) - int(r["negative"])) / n, 4) if n else None,
            }
        )
    return out


async def terms(session: AsyncSession, scope: OrgScope, f: Filters, kind: str, limit: int) -> list[dict[str, Any]]:
    t: Any = TermRollup if by_dimension(f) else SubtreeTerms
    total = func.sum(t.mentions)
    base = select(t.term, total.label("mentions"), func.sum(t.negative).label("negative"))
    query = (
        (_filtered(base, t, scope, f) if by_dimension(f) else _in_subtree(base, t, scope, f))
        .where(t.kind == kind)
        .group_by(t.term)
        .order_by(total.desc(), t.term)
        .limit(limit)
    )
    return [
        {"term": r["term"], "mentions": int(r["mentions"]), "negative": int(r["negative"])}
        for r in (await session.execute(query)).mappings()
    ]


async def freshness(session: AsyncSession, tenant: uuid.UUID) -> dict[str, Any]:
    """When the latest event applied to this tenant's read model happened and was applied (None: nothing yet)."""
    row = await session.get(Freshness, tenant)
    if row is None:
        return {"last_event_at": None, "applied_at": None, "events": 0}
    return {
        "last_event_at": row.last_event_at.isoformat(),
        "applied_at": row.applied_at.isoformat(),
        "events": int(row.events),
    }


def _response_metrics(r: Any) -> dict[str, Any]:
    n = int(r["nps_count"])
    return {
        "responses": int(r["responses"]),
        "nps": round((int(r["promoters"]) - int(r["detractors"])) * 100.0 / n, 2) if n else None,
        "nps_count": n,
        "promoters": int(r["promoters"]),
        "detractors": int(r["detractors"]),
        "csat": _round(r["csat"]),
        "ces": _round(r["ces"]),
    }


def _response_aggregates() -> list[Any]:
    r_ = ResponseFact
    return [
        func.count().label("responses"),
        func.count(r_.nps).label("nps_count"),
        func.count(r_.nps).filter(r_.nps >= 9).label("promoters"),
        func.count(r_.nps).filter(r_.nps <= 6).label("detractors"),
        func.avg(r_.csat).label("csat"),
        func.avg(r_.ces).label("ces"),
    ]


async def survey_results(session: AsyncSession, scope: OrgScope, f: Filters, survey_id: str) -> dict[str, Any]:
    """One survey's results in scope: totals, by day and by org unit (where the responses were collected)."""
    r_ = ResponseFact
    base = [
        r_.tenant_id == scope.tenant_id,
        r_.survey_id == survey_id,
        r_.day >= f.date_from,
        r_.day <= f.date_to,
        scope_clause(r_.org_unit_id, scope),
    ]
    total = (await session.execute(select(*_response_aggregates()).where(*base))).mappings().one()
    days = (
        await session.execute(select(r_.day, *_response_aggregates()).where(*base).group_by(r_.day).order_by(r_.day))
    ).mappings()
    units = (
        await session.execute(
            select(r_.org_unit_id, func.coalesce(OrgUnit.name, literal("—")).label("name"), *_response_aggregates())
            .outerjoin(OrgUnit, and_(OrgUnit.tenant_id == r_.tenant_id, OrgUnit.id == r_.org_unit_id))
            .where(*base)
            .group_by(r_.org_unit_id, OrgUnit.name)
            .order_by(func.count().desc(), OrgUnit.name)
            .limit(100)
        )
    ).mappings()
    return {
        "survey_id": survey_id,
        **_response_metrics(total),
        "by_day": [{"day": str(d["day"]), **_response_metrics(d)} for d in days],
        "by_org_unit": [
            {"org_unit_id": str(u["org_unit_id"]), "name": u["name"], **_response_metrics(u)} for u in units
        ],
    }


async def fusion(
    session: AsyncSession, scope: OrgScope, f: Filters, source: str, attribute: str
) -> list[dict[str, Any]]:
    """Experience metrics grouped by an operational attribute: of the org unit (e.g. store `size`) or of the
    customer (O-data, e.g. `segment`, `order_value_band`)."""
    if source == "org":
        value = cast(OrgUnit.attributes, JSONB)[attribute].astext
        query = (
            _filtered(
                select(func.coalesce(value, literal("(none)")).label("value"), *_sums()).join(
                    OrgUnit, OrgUnit.id == DailyRollup.org_unit_id
                ),
                DailyRollup,
                scope,
                f,
            )
            .group_by("value")
            .order_by("value")
        )
        return [{"value": r["value"], **metrics(dict(r))} for r in (await session.execute(query)).mappings()]
    value = cast(CustomerAttributes.attributes, JSONB)[attribute].astext
    label = func.coalesce(value, literal("(none)")).label("value")
    r_ = ResponseFact
    query = (
        select(
            label,
            func.count().label("responses"),
            func.count(r_.nps).label("nps_count"),
            func.count(r_.nps).filter(r_.nps >= 9).label("promoters"),
            func.count(r_.nps).filter(r_.nps <= 6).label("detractors"),
            func.avg(r_.csat).label("csat"),
            func.avg(r_.ces).label("ces"),
        )
        .select_from(r_)
        .outerjoin(
            CustomerAttributes,
            and_(CustomerAttributes.tenant_id == r_.tenant_id, CustomerAttributes.customer_key == r_.customer_key),
        )
        .where(
            r_.tenant_id == scope.tenant_id,
            r_.day >= f.date_from,
            r_.day <= f.date_to,
            scope_clause(r_.org_unit_id, scope),
        )
        .group_by(label)
        .order_by(label)
    )
    out = []
    for r in (await session.execute(query)).mappings():
        n = int(r["nps_count"])
        out.append(
            {
                "value": r["value"],
                "responses": int(r["responses"]),
                "nps": round((int(r["promoters"]) - int(r["detractors"])) * 100.0 / n, 2) if n else None,
                "nps_count": n,
                "csat": _round(r["csat"]),
                "ces": _round(r["ces"]),
            }
        )
    return out


async def task_outcomes(session: AsyncSession, scope: OrgScope) -> dict[str, Any]:
    """Improvement tasks by status, and the measured change of the accepted ones (after - before)."""
    base = [TaskState.tenant_id == scope.tenant_id, scope_clause(TaskState.org_unit_id, scope)]
    by_status = {
        str(status): int(n)
        for status, n in (
            await session.execute(select(TaskState.status, func.count()).where(*base).group_by(TaskState.status))
        ).all()
    }
    delta = TaskState.metric_after - TaskState.metric_before
    measured = (
        await session.execute(
            select(TaskState.metric, func.count(), func.avg(delta), func.sum(case((delta > 0, 1), else_=0)))
            .where(*base, TaskState.metric_before.is_not(None), TaskState.metric_after.is_not(None))
            .group_by(TaskState.metric)
            .order_by(TaskState.metric)
        )
    ).all()
    return {
        "by_status": by_status,
        "measured": [
            {"metric": m or "", "tasks": int(n), "avg_change": _round(avg), "improved": int(improved or 0)}
            for m, n, avg, improved in measured
        ],
    }


def kpi_variables(m: dict[str, Any]) -> dict[str, float | None]:
    return {name: m.get(name) for name in METRIC_NAMES}
