"""Agent compliance on transcripts: profiles (what must / must not be said) and per-conversation results."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TenantMixin, TimestampMixin, new_id


class ComplianceProfile(TenantMixin, TimestampMixin, Base):
    __tablename__ = "compliance_profiles"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ComplianceResult(TenantMixin, Base):
    __tablename__ = "compliance_results"
    __table_args__ = (
        Index("ix_compliance_results_agent", "tenant_id", "agent_id", "occurred_at"),
        Index("ix_compliance_results_once", "profile_id", "source_event_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    profile_id: Mapped[uuid.UUID] = mapped_column()
    source_event_id: Mapped[uuid.UUID] = mapped_column()
    feedback_id: Mapped[str] = mapped_column(String(64), default="")
    agent_id: Mapped[str] = mapped_column(String(64), default="")
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    violations: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
