"""Tickets, their comments and the closed-loop customer contacts."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TenantMixin, TimestampMixin, new_id


class Ticket(TenantMixin, TimestampMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_org_path", "org_path", postgresql_using="gin"),
        Index("ix_tickets_customer", "tenant_id", "customer_key", "opened_at"),
        Index("ix_tickets_source_response", "tenant_id", "source_response_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(24), default="open")
    priority: Mapped[str] = mapped_column(String(2))
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")  # where the signal came from (the store)
    org_path: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)  # root first, ends with org_unit_id
    assigned_org_unit_id: Mapped[str] = mapped_column(String(64), default="")  # moves up on escalation
    owner_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    watchers: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    customer_key: Mapped[str] = mapped_column(String(200), default="")
    touchpoint_id: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(32), default="")
    rule_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    source_event_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    source_type: Mapped[str] = mapped_column(String(64), default="manual")
    source_response_id: Mapped[str] = mapped_column(String(64), default="")
    source_feedback_id: Mapped[str] = mapped_column(String(64), default="")
    source_payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    # NLP analysis of a survey response's open answers (from the feedback.analyzed that names the response)
    source_analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    first_response_due: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution_due: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    first_responded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    first_response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_code: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)


class TicketComment(TenantMixin, TimestampMixin, Base):
    __tablename__ = "ticket_comments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomerContact(TenantMixin, TimestampMixin, Base):
    __tablename__ = "customer_contacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # call | message | visit | email
    outcome: Mapped[str] = mapped_column(String(32))  # reached | no_answer | resolved | follow_up | refused
    summary: Mapped[str] = mapped_column(Text, default="")
    contacted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(200))
    follow_up_survey: Mapped[bool] = mapped_column(Boolean, default=False)
    # the survey distribution asked for (None: the tenant's follow-up default, chosen by the survey service)
    follow_up_distribution_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    # the follow-up's answer, once its survey.response.submitted names this contact (cx_follow_up_id)
    follow_up_response_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    follow_up_scores: Mapped[dict[str, float] | None] = mapped_column(JSONB, nullable=True)
    follow_up_responded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
