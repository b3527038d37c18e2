"""Event handlers of the read model. They run inside the consumer's transaction (claimed event ids + changes commit
together, so a redelivered event is never applied twice) and add their increments to a `Changes`, written once per
transaction (`changes.py`); per-entity state (tickets, tasks, customers) is read and updated as they go."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_gateway.analytics.changes import Changes
from cx_gateway.analytics.models import (
    UNKNOWN_ORG,
    CustomerAttributes,
    TaskState,
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


async def bump(session: AsyncSession, changes: Changes, dims: Mapping[str, Any], **counters: float) -> uuid.UUID:
    """Add to the daily counters of one dimension tuple and to the subtree totals of the unit and its ancestors;
    returns the unit it is recorded on (unknown unit → UNKNOWN_ORG)."""
    unit, scopes = await changes.resolve(session, dims["tenant_id"], dims["org_unit_id"])
    changes.add_daily({**dims, "org_unit_id": unit}, scopes, counters)
    return unit


async def on_response(session: AsyncSession, changes: Changes, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
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
        changes,
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
    changes.add_fact(
        {
            "tenant_id": tenant,
            "response_id": e.response_id[:64] or env.event_id,
            "survey_id": e.survey_id[:64],
            "day": dims["day"],
            "org_unit_id": unit,
            "customer_key": e.customer_key[:200],
            "nps": nps,
            "csat": csat,
            "ces": ces,
        }
    )


async def on_feedback(session: AsyncSession, changes: Changes, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
    e = env.feedback_analyzed
    ctx = e.context
    dims: dict[str, Any] = {
        "tenant_id": tenant,
        "day": _day(ctx.occurred_at, env.occurred_at),
        "org_unit_id": _org(ctx.org_unit_id),
        "touchpoint": ctx.touchpoint_id[:64],
        "stage": ctx.journey_stage[:64],
        "channel": ctx.channel[:32],
    }
    sentiment = e.sentiment if e.sentiment in ("negative", "neutral", "positive") else ""
    complaint = any(i.intent == "complaint" and i.score >= COMPLAINT_THRESHOLD for i in e.intents)
    unit, scopes = await changes.resolve(session, tenant, dims["org_unit_id"])
    dims["org_unit_id"] = unit
    changes.add_daily(
        dims,
        scopes,
        {
            "feedback": 1,
            "negative": int(sentiment == "negative"),
            "neutral": int(sentiment == "neutral"),
            "positive": int(sentiment == "positive"),
            "pain": int(e.need_layer == "pain"),
            "itch": int(e.need_layer == "itch"),
            "delight": int(e.need_layer == "delight"),
            "complaints": int(complaint),
            "unmatched": int(e.unmatched),
        },
    )
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
    changes.add_aspects(dims, scopes, mentions)
    found: set[tuple[str, str]] = set()
    found.update(("intent", i.intent[:200]) for i in e.intents if i.intent and i.score >= COMPLAINT_THRESHOLD)
    found.update(("keyword", k.strip().lower()[:200]) for k in e.keywords if k.strip())
    if ctx.product_sku:
        found.add(("sku", ctx.product_sku[:200]))
    found.update(("competitor", name) for name in await _competitors_in(session, changes, tenant, e))
    changes.add_terms(dims, scopes, sorted(found), sentiment == "negative")


async def _competitors_in(
    session: AsyncSession, changes: Changes, tenant: uuid.UUID, e: events_pb2.FeedbackAnalyzed
) -> list[str]:
    """The tenant's tracked competitors whose name or an alias occurs in the text, a turn or a keyword."""
    tracked = await changes.competitors_of(session, tenant)
    if not tracked:
        return []
    haystack = "\n".join([e.text, *(t.text for t in e.turns), *e.keywords]).casefold()
    return [
        name[:200]
        for name, aliases in tracked
        if any(n.strip() and n.strip().casefold() in haystack for n in (name, *aliases))
    ]


async def on_ticket(session: AsyncSession, changes: Changes, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
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
            escalation_level=0,
            breached=False,
            counted_resolved=False,
        )
        session.add(state)
        assert created_at is not None
        await bump(session, changes, _ticket_dims(tenant, state, created_at.date()), tickets_created=1)
    state.status = e.status or state.status
    state.priority = e.priority or state.priority
    if e.org_unit_id:
        state.org_unit_id = _org(e.org_unit_id)
    state.breached = state.breached or breached
    state.resolution_due = _dt(e.resolution_due) or state.resolution_due
    if env.type == "ticket.escalated":
        await bump(session, changes, _ticket_dims(tenant, state, _day(None, env.occurred_at)), tickets_escalated=1)
    state.escalation_level = max(state.escalation_level, e.escalation_level)
    resolved_at = _dt(e.resolved_at)
    if env.type in ("ticket.resolved", "ticket.closed") or resolved_at is not None:
        state.resolved_at = resolved_at or _dt(env.occurred_at)
        if not state.counted_resolved:
            state.counted_resolved = True
            assert state.resolved_at is not None
            await bump(
                session,
                changes,
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


async def on_task(session: AsyncSession, changes: Changes, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
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
        state = TaskState(
            tenant_id=tenant, task_id=e.task_id, org_unit_id=dims["org_unit_id"], status="created", metric=""
        )
        session.add(state)
        await bump(session, changes, dims, tasks_created=1)
    previous = state.status
    state.status = e.status or env.type.split(".")[-1]
    state.metric = e.metric or state.metric
    if e.HasField("metric_before"):
        state.metric_before = e.metric_before
    if e.HasField("metric_after"):
        state.metric_after = e.metric_after
    if env.type == "task.completed" and previous != "completed":
        await bump(session, changes, dims, tasks_completed=1)
    if env.type == "task.accepted" and previous != "accepted":
        await bump(session, changes, dims, tasks_accepted=1)
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


async def on_odata(session: AsyncSession, changes: Changes, tenant: uuid.UUID, env: events_pb2.Envelope) -> None:
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


HANDLERS = {
    "survey_response_submitted": on_response,
    "feedback_analyzed": on_feedback,
    "ticket_changed": on_ticket,
    "task_changed": on_task,
    "odata_upserted": on_odata,
}


def _org_of(env: events_pb2.Envelope) -> str:
    kind = env.WhichOneof("payload")
    if kind == "survey_response_submitted":
        return env.survey_response_submitted.org_unit_id
    if kind == "feedback_analyzed":
        return env.feedback_analyzed.context.org_unit_id
    if kind == "ticket_changed":
        return env.ticket_changed.org_unit_id
    if kind == "task_changed":
        return env.task_changed.org_unit_id
    return ""


async def apply(session: AsyncSession, changes: Changes, env: events_pb2.Envelope) -> None:
    """Apply one event to the changes of the transaction."""
    tenant = uuid.UUID(env.tenant_id)
    changes.seen(tenant, _dt(env.occurred_at) or dt.datetime.now(dt.UTC))
    handler = HANDLERS.get(env.WhichOneof("payload") or "")
    if handler is not None:
        await handler(session, changes, tenant, env)


async def apply_batch(session: AsyncSession, envelopes: Sequence[events_pb2.Envelope]) -> None:
    """Apply events in order and write what they add up to (the units they name are looked up in one go)."""
    changes = Changes()
    await changes.prefetch(session, {(uuid.UUID(e.tenant_id), _org(_org_of(e))) for e in envelopes})
    for env in envelopes:
        await apply(session, changes, env)
    await changes.flush(session)


async def handle(session: AsyncSession, env: events_pb2.Envelope) -> None:
    """One event on its own (the per-message path of the consumer)."""
    await apply_batch(session, [env])
