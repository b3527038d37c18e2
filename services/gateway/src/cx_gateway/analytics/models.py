import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_gateway.database import Base

UNKNOWN_ORG = uuid.UUID(int=0)  # events without (or with an unknown) org unit roll up here; tenant-wide scope only

DIMENSIONS = ("day", "org_unit_id", "touchpoint", "stage", "channel")


class _Dims:
    tenant_id: Mapped[uuid.UUID] = mapped_column()
    day: Mapped[dt.date] = mapped_column(Date)
    org_unit_id: Mapped[uuid.UUID] = mapped_column()
    touchpoint: Mapped[str] = mapped_column(String(64), default="")
    stage: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(32), default="")


class _DailyCounters:
    """The additive counters of a day (responses, NPS buckets, CSAT/CES sums, sentiment, needs, tickets, tasks)."""

    responses: Mapped[int] = mapped_column(Integer, default=0)
    nps_count: Mapped[int] = mapped_column(Integer, default=0)
    promoters: Mapped[int] = mapped_column(Integer, default=0)
    passives: Mapped[int] = mapped_column(Integer, default=0)
    detractors: Mapped[int] = mapped_column(Integer, default=0)
    csat_sum: Mapped[float] = mapped_column(Float, default=0.0)
    csat_count: Mapped[int] = mapped_column(Integer, default=0)
    ces_sum: Mapped[float] = mapped_column(Float, default=0.0)
    ces_count: Mapped[int] = mapped_column(Integer, default=0)
    feedback: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    neutral: Mapped[int] = mapped_column(Integer, default=0)
    positive: Mapped[int] = mapped_column(Integer, default=0)
    pain: Mapped[int] = mapped_column(Integer, default=0)
    itch: Mapped[int] = mapped_column(Integer, default=0)
    delight: Mapped[int] = mapped_column(Integer, default=0)
    complaints: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    tickets_created: Mapped[int] = mapped_column(Integer, default=0)
    tickets_resolved: Mapped[int] = mapped_column(Integer, default=0)
    tickets_resolved_in_sla: Mapped[int] = mapped_column(Integer, default=0)
    tickets_escalated: Mapped[int] = mapped_column(Integer, default=0)
    tasks_created: Mapped[int] = mapped_column(Integer, default=0)
    tasks_completed: Mapped[int] = mapped_column(Integer, default=0)
    tasks_accepted: Mapped[int] = mapped_column(Integer, default=0)


class DailyRollup(_Dims, _DailyCounters, Base):
    """Additive counters per day × org unit × touchpoint × journey stage × channel."""

    __tablename__ = "rollup_daily"
    __table_args__ = (UniqueConstraint("tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)


class AspectRollup(_Dims, Base):
    """Aspect mentions at each level of the codebook path (`path` = levels joined by ` > `) by polarity."""

    __tablename__ = "rollup_aspects"
    __table_args__ = (
        UniqueConstraint("tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel", "path", "polarity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    level: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(400))
    polarity: Mapped[str] = mapped_column(String(16))
    mentions: Mapped[int] = mapped_column(Integer, default=0)


class TermRollup(_Dims, Base):
    """Counts of intents, keywords, product SKUs (kind) with how many came from negative feedback."""

    __tablename__ = "rollup_terms"
    __table_args__ = (
        UniqueConstraint("tenant_id", "day", "org_unit_id", "touchpoint", "stage", "channel", "kind", "term"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # intent | keyword | sku | need
    term: Mapped[str] = mapped_column(String(200))
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)


class _Subtree:
    """Subtree totals: one row per (tenant, `scope_id`, day) where `scope_id` is an org unit and the counters add up
    everything recorded on it or anywhere below it (events without a known unit count under UNKNOWN_ORG only).
    Maintained by the projection in the same transaction as the per-unit rollups above (`analytics/subtree.py`);
    dashboards read one unit's row instead of aggregating every store under it. No touchpoint/stage/channel: queries
    filtering on those read the per-unit rollups."""

    tenant_id: Mapped[uuid.UUID] = mapped_column()
    scope_id: Mapped[uuid.UUID] = mapped_column()
    day: Mapped[dt.date] = mapped_column(Date)


class SubtreeDaily(_Subtree, _DailyCounters, Base):
    __tablename__ = "rollup_subtree_daily"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "scope_id", "day"),)


class SubtreeAspects(_Subtree, Base):
    """Aspect mentions of a subtree per codebook path, polarities as columns (primary key ordered for
    `scope + level + day range`)."""

    __tablename__ = "rollup_subtree_aspects"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "scope_id", "level", "day", "path"),)

    level: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(400))
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    neutral: Mapped[int] = mapped_column(Integer, default=0)
    positive: Mapped[int] = mapped_column(Integer, default=0)


class SubtreeTerms(_Subtree, Base):
    __tablename__ = "rollup_subtree_terms"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "scope_id", "kind", "day", "term"),)

    kind: Mapped[str] = mapped_column(String(16))
    term: Mapped[str] = mapped_column(String(200))
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)


class TicketState(TenantMixin, Base):
    """Latest state of each ticket (open volumes, first resolution counted once)."""

    __tablename__ = "ticket_states"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_unit_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(8), default="")
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    breached: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution_due: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    counted_resolved: Mapped[bool] = mapped_column(default=False)
    touchpoint: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(32), default="")


class TaskState(TenantMixin, Base):
    __tablename__ = "task_states"

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_unit_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(64), default="")
    metric_before: Mapped[float | None] = mapped_column(Float, nullable=True)
    metric_after: Mapped[float | None] = mapped_column(Float, nullable=True)


class ResponseFact(TenantMixin, Base):
    """One slim row per survey response, for X+O fusion with customer attributes (joined at query time)."""

    __tablename__ = "response_facts"
    __table_args__ = (Index("ix_gateway_response_facts_survey", "tenant_id", "survey_id", "day"),)

    response_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(64), default="")
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    org_unit_id: Mapped[uuid.UUID] = mapped_column()
    customer_key: Mapped[str] = mapped_column(String(200), default="", index=True)
    nps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    csat: Mapped[float | None] = mapped_column(Float, nullable=True)
    ces: Mapped[float | None] = mapped_column(Float, nullable=True)


class Freshness(Base):
    """How current a tenant's read model is: when the latest applied event happened and when it was applied."""

    __tablename__ = "analytics_freshness"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_event_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    events: Mapped[int] = mapped_column(BigInteger, default=0)


class Competitor(TenantMixin, TimestampMixin, Base):
    """A competitor the tenant tracks: analysed feedback mentioning its name or an alias counts as a
    `competitor` term (from the time it is added on)."""

    __tablename__ = "competitors"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    aliases: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of strings


class CustomerAttributes(TenantMixin, TimestampMixin, Base):
    """O-data per customer (merged attributes of `odata.upserted` events), keyed by customer key."""

    __tablename__ = "customer_attributes"
    __table_args__ = (UniqueConstraint("tenant_id", "customer_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    customer_key: Mapped[str] = mapped_column(String(200))
    attributes: Mapped[str] = mapped_column(Text, default="{}")  # JSON object


class Kpi(TenantMixin, TimestampMixin, Base):
    """A tenant-defined KPI: a formula over the metric variables, evaluated per org unit and period."""

    __tablename__ = "kpis"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    formula: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    target: Mapped[float | None] = mapped_column(Float, nullable=True)
