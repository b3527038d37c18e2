"""Normalise incoming events into one `Signal` shape that rules evaluate, and keep a window of recent ones."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.json_format import MessageToDict
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_alerts.signals.models import RecentSignal

SURVEY = "survey.response.submitted"
FEEDBACK = "feedback.analyzed"


def intent_name(name: str) -> str:
    """One spelling of an intent: the nlp service's (`churn_risk`); `churn-risk` and `Churn-Risk` mean the same."""
    return name.strip().casefold().replace("-", "_").replace(" ", "_")


@dataclass
class Aspect:
    path: list[str]
    polarity: str
    confidence: float
    opinion: str = ""


@dataclass
class Signal:
    event_id: uuid.UUID
    event_type: str
    tenant_id: uuid.UUID
    occurred_at: dt.datetime
    org_unit_id: str = ""
    touchpoint_id: str = ""
    channel: str = ""
    customer_key: str = ""
    response_id: str = ""
    feedback_id: str = ""
    agent_id: str = ""
    nps: float | None = None
    csat: float | None = None
    ces: float | None = None
    sentiment: str = ""
    sentiment_score: float = 0.0
    aspects: list[Aspect] = field(default_factory=list)
    intents: dict[str, float] = field(default_factory=dict)
    keywords: list[str] = field(default_factory=list)
    text: str = ""
    turns: list[dict[str, Any]] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)

    def aspect_keys(self, *, negative_only: bool = False) -> list[str]:
        keys: set[str] = set()
        for aspect in self.aspects:
            if negative_only and aspect.polarity != "negative":
                continue
            for depth in range(1, len(aspect.path) + 1):
                keys.add("/".join(aspect.path[:depth]))
        return sorted(keys)


def from_envelope(envelope: events_pb2.Envelope) -> Signal:
    occurred = envelope.occurred_at.ToDatetime(tzinfo=dt.UTC) if envelope.HasField("occurred_at") else None
    base: dict[str, Any] = {
        "event_id": uuid.UUID(envelope.event_id),
        "event_type": envelope.type,
        "tenant_id": uuid.UUID(envelope.tenant_id),
        "occurred_at": occurred or dt.datetime.now(dt.UTC),
    }
    which = envelope.WhichOneof("payload")
    if which == "survey_response_submitted":
        r = envelope.survey_response_submitted
        texts = [a.text_value for a in r.answers if a.text_value] + [a.other_text for a in r.answers if a.other_text]
        if r.HasField("submitted_at"):
            base["occurred_at"] = r.submitted_at.ToDatetime(tzinfo=dt.UTC)
        return Signal(
            **base,
            org_unit_id=r.org_unit_id,
            touchpoint_id=r.touchpoint_id,
            channel=r.channel or "survey",
            customer_key=r.customer_key,
            response_id=r.response_id,
            nps=float(r.nps) if r.HasField("nps") else None,
            csat=r.csat if r.HasField("csat") else None,
            ces=r.ces if r.HasField("ces") else None,
            text="\n".join(texts),
            payload=MessageToDict(r, preserving_proto_field_name=True),
        )
    if which == "feedback_analyzed":
        f = envelope.feedback_analyzed
        c = f.context
        if c.HasField("occurred_at"):
            base["occurred_at"] = c.occurred_at.ToDatetime(tzinfo=dt.UTC)
        turns = [{"seq": t.seq, "speaker": t.speaker, "text": t.text} for t in f.turns]
        text = f.text or "\n".join(t.text for t in f.turns)
        return Signal(
            **base,
            org_unit_id=c.org_unit_id,
            touchpoint_id=c.touchpoint_id,
            channel=c.channel,
            customer_key=c.customer_key,
            response_id=c.source_response_id,
            feedback_id=c.feedback_id,
            agent_id=c.agent_id,
            sentiment=f.sentiment,
            sentiment_score=f.sentiment_score,
            aspects=[Aspect(list(a.path), a.polarity, a.confidence, a.opinion) for a in f.aspects],
            intents={intent_name(i.intent): max(i.score, 0.0) for i in f.intents},
            keywords=list(f.keywords),
            text=text,
            turns=turns,
            payload=MessageToDict(f, preserving_proto_field_name=True),
        )
    raise ValueError(f"event type {envelope.type!r} is not a signal")


def from_stored(row: RecentSignal) -> Signal:
    p = row.payload
    s = p.get("_signal", {})
    return Signal(
        event_id=row.event_id,
        event_type=row.event_type,
        tenant_id=row.tenant_id,
        occurred_at=row.occurred_at,
        org_unit_id=row.org_unit_id,
        touchpoint_id=s.get("touchpoint_id", ""),
        channel=s.get("channel", ""),
        customer_key=row.customer_key,
        response_id=s.get("response_id", ""),
        feedback_id=s.get("feedback_id", ""),
        agent_id=s.get("agent_id", ""),
        nps=s.get("nps"),
        csat=s.get("csat"),
        ces=s.get("ces"),
        sentiment=s.get("sentiment", ""),
        sentiment_score=s.get("sentiment_score", 0.0),
        aspects=[Aspect(a["path"], a["polarity"], a["confidence"], a.get("opinion", "")) for a in s.get("aspects", [])],
        intents={intent_name(k): v for k, v in s.get("intents", {}).items()},
        keywords=s.get("keywords", []),
        text=s.get("text", ""),
        turns=s.get("turns", []),
        payload=p.get("event", {}),
    )


async def remember(session: AsyncSession, signal: Signal, org_path: list[str]) -> None:
    stored = {
        "event": signal.payload,
        "_signal": {
            "touchpoint_id": signal.touchpoint_id,
            "channel": signal.channel,
            "response_id": signal.response_id,
            "feedback_id": signal.feedback_id,
            "agent_id": signal.agent_id,
            "nps": signal.nps,
            "csat": signal.csat,
            "ces": signal.ces,
            "sentiment": signal.sentiment,
            "sentiment_score": signal.sentiment_score,
            "aspects": [a.__dict__ for a in signal.aspects],
            "intents": signal.intents,
            "keywords": signal.keywords,
            "text": signal.text,
            "turns": signal.turns,
        },
    }
    await session.execute(
        insert(RecentSignal)
        .values(
            tenant_id=signal.tenant_id,
            event_id=signal.event_id,
            event_type=signal.event_type,
            occurred_at=signal.occurred_at,
            org_unit_id=signal.org_unit_id,
            org_path=org_path,
            customer_key=signal.customer_key,
            aspect_keys=signal.aspect_keys(),
            negative_aspect_keys=signal.aspect_keys(negative_only=True),
            payload=stored,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
    )


async def recent(
    session: AsyncSession, tenant_id: uuid.UUID, *, event_type: str, since: dt.datetime, limit: int
) -> list[Signal]:
    rows = await session.execute(
        select(RecentSignal)
        .where(
            RecentSignal.tenant_id == tenant_id,
            RecentSignal.event_type == event_type,
            RecentSignal.occurred_at >= since,
        )
        .order_by(RecentSignal.occurred_at.desc())
        .limit(limit)
    )
    return [from_stored(r) for r in rows.scalars()]


async def count_aspect(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    aspect_key: str,
    *,
    since: dt.datetime,
    until: dt.datetime,
    org_unit_id: str | None = None,
    negative_only: bool = False,
) -> int:
    column = RecentSignal.negative_aspect_keys if negative_only else RecentSignal.aspect_keys
    query = select(func.count()).where(
        RecentSignal.tenant_id == tenant_id,
        column.contains([aspect_key]),
        RecentSignal.occurred_at >= since,
        RecentSignal.occurred_at < until,
    )
    if org_unit_id:
        query = query.where(RecentSignal.org_path.contains([org_unit_id]))
    return int((await session.execute(query)).scalar_one())


async def prune(session: AsyncSession, older_than: dt.datetime) -> int:
    result = await session.execute(delete(RecentSignal).where(RecentSignal.occurred_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)
