"""SLA policies, business calendars and durable timers."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TenantMixin, TimestampMixin, new_id


class BusinessCalendar(TenantMixin, TimestampMixin, Base):
    __tablename__ = "business_calendars"
    __table_args__ = (UniqueConstraint("tenant_id", "org_unit_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    org_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # null: the tenant's default
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)  # null: the org unit's time zone
    working_hours: Mapped[dict[str, Any]] = mapped_column(JSONB)  # {"mon": [["09:00", "18:00"]], ...}
    holidays: Mapped[list[dt.date]] = mapped_column(ARRAY(Date), default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)


class SlaPolicy(TenantMixin, TimestampMixin, Base):
    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "priority"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    priority: Mapped[str] = mapped_column(String(2))
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    escalation_minutes: Mapped[int] = mapped_column(Integer)
    business_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)


class SlaTimer(TenantMixin, Base):
    """A deadline that fires once: claimed with FOR UPDATE SKIP LOCKED, marked fired in the same transaction."""

    __tablename__ = "sla_timers"
    __table_args__ = (
        Index("ix_sla_timers_due", "due_at", postgresql_where="fired_at IS NULL AND cancelled_at IS NULL"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # first_response | resolution | escalation
    reason: Mapped[str] = mapped_column(String(20), default="")  # for escalation: first_response | resolution
    level: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str] = mapped_column(String(200), default="")
