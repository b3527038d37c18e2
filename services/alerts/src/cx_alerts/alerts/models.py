"""Alerts: one row per rule match (or compliance violation)."""

import datetime as dt
import uuid

from sqlalchemy import DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TenantMixin, TimestampMixin, new_id


class Alert(TenantMixin, TimestampMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_rule_event", "rule_id", "source_event_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    rule_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    rule_version: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(20), default="rule")  # rule | compliance
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | acknowledged
    source_event_id: Mapped[uuid.UUID] = mapped_column()
    source_type: Mapped[str] = mapped_column(String(64))
    response_id: Mapped[str] = mapped_column(String(64), default="")
    feedback_id: Mapped[str] = mapped_column(String(64), default="")
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")
    org_path: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    customer_key: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, index=True)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
