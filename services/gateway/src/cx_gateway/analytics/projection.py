"""Event handlers of the read model. Each runs inside the EventConsumer's transaction (claimed event id + changes
commit together), so a redelivered event is never applied twice."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_gateway.analytics import subtree
from cx_gateway.analytics.models import (
    UNKNOWN_ORG,
    AspectRollup,
    Competitor,
    CustomerAttributes,
    DailyRollup,
    Freshness,
    ResponseFact,
    TaskState,
    TermRollup,
    TicketState,
)

EVENT_TYPES = [
    "survey.response.submitted",
    "feedback.analyzed",
    "ticket.*",
    "task.*",
    "odata.upserted",
]
COMPLAINT_THRESHOLD = 0.5


def _org(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value) if value else UNKNOWN_ORG
    except ValueError:
        return UNKNOWN_ORG


def _day(ts: Any, fallback: Any) -> dt.date:
    source = ts if ts is not None and (ts.seconds or ts.nanos) else fallback
    return dt.datetime.fromtimestamp(source.seconds, dt.UTC).date()


def _dt(ts: Any) -> dt.datetime | None:
    if ts is None or not (ts.seconds or ts.nanos):
        return None
    return dt.datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, dt.UTC)


async def _resolved(session: AsyncSession, dims: Mapping[str, Any]) -> tuple[dict[str, Any], list[uuid.UUID]]:
    """The per-unit rollup dimensions (unknown unit → UNKNOWN_ORG) and the units whose subtree totals count it."""
    unit, scopes = await subtree.resolve(session, dims["tenant_id"], dims["org_unit_id"])
    return {**dims, "org_unit_id": unit}, scopes


async def _bump_unit(session: AsyncSession, dims: Mapping[str, Any], counters: Mapping[str, float]) -> None:
    table = cast(Table, DailyRollup.__table__)
    stmt = insert(table).values(**dims, **counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel"],
        set_={k: table.c[k] + stmt.excluded[k] for k in counters},
    )
    await session.execute(stmt)


async def bump(session: AsyncSession, dims: Mapping[str, Any], **counters: float) -> uuid.UUID:
    """Add to the daily counters of one dimension tuple (insert or increment) and to the subtree totals of the unit
    and its ancestors; returns the unit it was recorded on."""
    unit_dims, scopes = await _resolved(session, dims)
    counters = {k: v for k, v in counters.items() if v}
    if counters:
        await _bump_unit(session, unit_dims, counters)
        await subtree.add_daily(session, dims["tenant_id"], scopes, dims["day"], counters)
    return cast(uuid.UUID, unit_dims["org_unit_id"])


async def _bump_aspects(session: AsyncSession, dims: Mapping[str, Any], mentions: list[tuple[str, int, str]]) -> None:
    """`mentions`: distinct (path, level, polarity) of one feedback item, one mention each."""
    if not mentions:
        return
    table = cast(Table, AspectRollup.__table__)
    rows = [{**dims, "path": p, "level": level, "polarity": pol, "mentions": 1} for p, level, pol in mentions]
    stmt = insert(table).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel", "path", "polarity"],
        set_={"mentions": table.c.mentions + stmt.excluded.mentions},
    )
    await session.execute(stmt)


async def _bump_terms(
    session: AsyncSession, dims: Mapping[str, Any], terms: list[tuple[str, str]], negative: bool
) -> None:
    """`terms`: distinct (kind, term) of one feedback item."""
    if not terms:
        return
    table = cast(Table, TermRollup.__table__)
    stmt = insert(table).values(
        [{**dims, "kind": kind, "term": term, "mentions": 1, "negative": int(negative)} for kind, term in terms]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel", "kind", "term"],
        set_={c: table.c[c] + stmt.excluded[c] for c in ("mentions", "negative")},
    )
    await session.execute(stmt)


async def on_response(session: AsyncSession, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    e = env.survey_response_submitted
    dims = {
        "tenant_id": tenant,
        "day": _day(e.submitted_at, env.occurred_at),
        "org_unit_id": _org(e.org_unit_id),
        "touchpoint": e.touchpoint_id[:64],
        "stage": e.journey_stage[:64],
        "channel": e.channel[:32],
    }
    nps = e.nps if e.HasField("nps") else None
    csat = e.csat if e.HasField("csat") else None
    ces = e.ces if e.HasField("ces") else None
    unit = await bump(
        session,
        dims,
        responses=1,
        nps_count=int(nps is not None),
        promoters=int(nps is not None and nps >= 9),
        passives=int(nps is not None and 7 <= nps <= 8),
        detractors=int(nps is not None and nps <= 6),
        csat_sum=csat or 0.0,
        csat_count=int(csat is not None),
        ces_sum=ces or 0.0,
        ces_count=int(ces is not None),
    )
    stmt = insert(cast(Table, ResponseFact.__table__)).values(
        tenant_id=tenant,
        response_id=e.response_id[:64] or env.event_id,
        survey_id=e.survey_id[:64],
        day=dims["day"],
        org_unit_id=unit,
        customer_key=e.customer_key[:200],
        nps=nps,
        csat=csat,
        ces=ces,
    )
    await session.execute(stmt.on_conflict_do_nothing())


async def on_feedback(session: AsyncSession, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    e = env.feedback_analyzed
    ctx = e.context
    day = _day(ctx.occurred_at, env.occurred_at)
    dims: dict[str, Any] = {
        "tenant_id": tenant,
        "day": day,
        "org_unit_id": _org(ctx.org_unit_id),
        "touchpoint": ctx.touchpoint_id[:64],
        "stage": ctx.journey_stage[:64],
        "channel": ctx.channel[:32],
    }
    sentiment = e.sentiment if e.sentiment in ("negative", "neutral", "positive") else ""
    complaint = any(i.intent == "complaint" and i.score >= COMPLAINT_THRESHOLD for i in e.intents)
    counters = {
        "feedback": 1,
        "negative": int(sentiment == "negative"),
        "neutral": int(sentiment == "neutral"),
        "positive": int(sentiment == "positive"),
        "pain": int(e.need_layer == "pain"),
        "itch": int(e.need_layer == "itch"),
        "delight": int(e.need_layer == "delight"),
        "complaints": int(complaint),
        "unmatched": int(e.unmatched),
    }
    counters = {k: v for k, v in counters.items() if v}
    unit_dims, scopes = await _resolved(session, dims)
    await _bump_unit(session, unit_dims, counters)
    await subtree.add_daily(session, tenant, scopes, day, counters)
    mentions: list[tuple[str, int, str]] = []
    seen: set[tuple[str, str]] = set()
    for aspect in e.aspects:
        parts = [p for p in aspect.path if p][:3]
        polarity = (aspect.polarity or "neutral")[:16]
        for level in range(1, len(parts) + 1):
            path = " > ".join(parts[:level])[:400]
            if (path, polarity) in seen:
                continue
            seen.add((path, polarity))
            mentions.append((path, level, polarity))
    await _bump_aspects(session, unit_dims, mentions)
    await subtree.add_aspects(session, tenant, scopes, day, mentions)
    negative = sentiment == "negative"
    found: set[tuple[str, str]] = set()
    found.update(("intent", i.intent[:200]) for i in e.intents if i.intent and i.score >= COMPLAINT_THRESHOLD)
    found.update(("keyword", k.strip().lower()[:200]) for k in e.keywords if k.strip())
    if ctx.product_sku:
        found.add(("sku", ctx.product_sku[:200]))
    found.update(("competitor", name) for name in await _competitors_in(session, tenant, e))
    terms = sorted(found)
    await _bump_terms(session, unit_dims, terms, negative)
    await subtree.add_terms(session, tenant, scopes, day, terms, negative)


async def on_ticket(session: AsyncSession, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    e = env.ticket_changed
    if not e.ticket_id:
        return
    state = (
        await session.execute(
            select(TicketState).where(TicketState.tenant_id == tenant, TicketState.ticket_id == e.ticket_id)
        )
    ).scalar_one_or_none()
    created_at = _dt(e.created_at) or _dt(env.occurred_at)
    breached = e.first_response_breached or e.resolution_breached
    if state is None:
        state = TicketState(
            tenant_id=tenant,
            ticket_id=e.ticket_id,
            org_unit_id=_org(e.org_unit_id),
            status=e.status or env.type.split(".")[-1],
            priority=e.priority,
            created_at=created_at,
            touchpoint=e.touchpoint_id[:64],
            channel=e.channel[:32],
        )
        session.add(state)
        assert created_at is not None
        await bump(session, _ticket_dims(tenant, state, created_at.date()), tickets_created=1)
    state.status = e.status or state.status
    state.priority = e.priority or state.priority
    if e.org_unit_id:
        state.org_unit_id = _org(e.org_unit_id)
    state.breached = state.breached or breached
    state.resolution_due = _dt(e.resolution_due) or state.resolution_due
    if env.type == "ticket.escalated":
        await bump(session, _ticket_dims(tenant, state, _day(None, env.occurred_at)), tickets_escalated=1)
    state.escalation_level = max(state.escalation_level, e.escalation_level)
    resolved_at = _dt(e.resolved_at)
    if env.type in ("ticket.resolved", "ticket.closed") or resolved_at is not None:
        state.resolved_at = resolved_at or _dt(env.occurred_at)
        if not state.counted_resolved:
            state.counted_resolved = True
            assert state.resolved_at is not None
            await bump(
                session,
                _ticket_dims(tenant, state, state.resolved_at.date()),
                tickets_resolved=1,
                tickets_resolved_in_sla=int(not state.breached),
            )
    await session.flush()


def _ticket_dims(tenant: uuid.UUID, state: TicketState, day: dt.date) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "day": day,
        "org_unit_id": state.org_unit_id,
        "touchpoint": state.touchpoint,
        "stage": "",
        "channel": state.channel,
    }


async def on_task(session: AsyncSession, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    e = env.task_changed
    if not e.task_id:
        return
    state = (
        await session.execute(select(TaskState).where(TaskState.tenant_id == tenant, TaskState.task_id == e.task_id))
    ).scalar_one_or_none()
    dims = {
        "tenant_id": tenant,
        "day": _day(None, env.occurred_at),
        "org_unit_id": _org(e.org_unit_id),
        "touchpoint": "",
        "stage": "",
        "channel": "",
    }
    if state is None:
        state = TaskState(tenant_id=tenant, task_id=e.task_id, org_unit_id=dims["org_unit_id"], status="created")
        session.add(state)
        await bump(session, dims, tasks_created=1)
    previous = state.status
    state.status = e.status or env.type.split(".")[-1]
    state.metric = e.metric or state.metric
    if e.HasField("metric_before"):
        state.metric_before = e.metric_before
    if e.HasField("metric_after"):
        state.metric_after = e.metric_after
    if env.type == "task.completed" and previous != "completed":
        await bump(session, dims, tasks_completed=1)
    if env.type == "task.accepted" and previous != "accepted":
        await bump(session, dims, tasks_accepted=1)
    await session.flush()


ORDER_VALUE_BANDS = ((100.0, "<100"), (300.0, "100-299"), (1000.0, "300-999"))


def order_value_band(value: str) -> str:
    """The band of an order value (for X+O fusion by order value); "" when it is not a number."""
    try:
        amount = float(value)
    except ValueError:
        return ""
    if amount != amount or amount < 0:  # NaN or negative
        return ""
    return next((label for limit, label in ORDER_VALUE_BANDS if amount < limit), "≥1000")


async def on_odata(session: AsyncSession, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    e = env.odata_upserted
    if not e.customer_key:
        return
    row = (
        await session.execute(
            select(CustomerAttributes)
            .where(CustomerAttributes.tenant_id == tenant, CustomerAttributes.customer_key == e.customer_key)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        row = CustomerAttributes(tenant_id=tenant, customer_key=e.customer_key[:200], attributes="{}")
        session.add(row)
    merged = json.loads(row.attributes or "{}")
    merged.update(dict(e.attributes))
    band = order_value_band(e.attributes.get("order_value", ""))
    if band:
        merged["order_value_band"] = band
    row.attributes = json.dumps(merged, ensure_ascii=False)
    await session.flush()


async def _competitors_in(session: AsyncSession, tenant: uuid.UUID, e: events_pb2.FeedbackAnalyzed) -> list[str]:
    """The tenant's tracked competitors whose name or an alias occurs in the text, a turn or a keyword."""
    query = select(Competitor.name, Competitor.aliases).where(Competitor.tenant_id == tenant)
    rows = (await session.execute(query)).all()
    if not rows:
        return []
    haystack = "\n".join([e.text, *(t.text for t in e.turns), *e.keywords]).casefold()
    found = []
    for name, aliases in rows:
        needles = [name, *(a for a in json.loads(aliases or "[]") if isinstance(a, str))]
        if any(n.strip() and n.strip().casefold() in haystack for n in needles):
            found.append(name[:200])
    return found


async def _fresh(session: AsyncSession, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    occurred = _dt(env.occurred_at) or dt.datetime.now(dt.UTC)
    table = cast(Table, Freshness.__table__)
    stmt = insert(table).values(tenant_id=tenant, last_event_at=occurred, applied_at=func.now(), events=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={
            "last_event_at": func.greatest(table.c.last_event_at, stmt.excluded.last_event_at),
            "applied_at": stmt.excluded.applied_at,
            "events": table.c.events + 1,
        },
    )
    await session.execute(stmt)


async def handle(session: AsyncSession, env: events_pb2.Envelope) -> None:
    tenant = uuid.UUID(env.tenant_id)
    kind = env.WhichOneof("payload")
    await _fresh(session, tenant, env)
    if kind == "survey_response_submitted":
        await on_response(session, tenant, env)
    elif kind == "feedback_analyzed":
        await on_feedback(session, tenant, env)
    elif kind == "ticket_changed":
        await on_ticket(session, tenant, env)
    elif kind == "task_changed":
        await on_task(session, tenant, env)
    elif kind == "odata_upserted":
        await on_odata(session, tenant, env)
