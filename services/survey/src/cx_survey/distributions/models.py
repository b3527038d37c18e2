import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_survey.database import Base


class Distribution(TenantMixin, TimestampMixin, Base):
    __tablename__ = "distributions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    touchpoint_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    delay_seconds: Mapped[int] = mapped_column(Integer, default=0)
    reminder_after_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_reminders: Mapped[int] = mapped_column(Integer, default=1)
    frequency_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    link_valid_hours: Mapped[int] = mapped_column(Integer, default=24 * 14)


class ScheduledMessage(TenantMixin, Base):
    """One message to send at `due_at`; polled with FOR UPDATE SKIP LOCKED, so each is sent once, across restarts."""

    __tablename__ = "scheduled_messages"
    __table_args__ = (
        UniqueConstraint("invitation_id", "kind", "seq"),
        Index("ix_scheduled_messages_due", "due_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    distribution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("distributions.id", ondelete="CASCADE"), index=True)
    invitation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # invite | reminder
    seq: Mapped[int] = mapped_column(Integer, default=0)
    customer_key: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    language: Mapped[str] = mapped_column(String(16))
    link: Mapped[str] = mapped_column(Text)
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | skipped | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class OutgoingMail(TenantMixin, Base):
    """The development mail sink: with no SMTP host configured, mail lands here (in the sender's transaction)."""

    __tablename__ = "outgoing_mail"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    message_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class IncentiveCode(TenantMixin, Base):
    """A coupon code pool per survey; a code goes to one completed response, never twice."""

    __tablename__ = "incentive_codes"
    __table_args__ = (UniqueConstraint("survey_id", "code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(100))
    response_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True, unique=True)
    assigned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
