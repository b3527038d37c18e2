"""In-app notifications (the inbox every channel adapter reads from)."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TenantMixin, TimestampMixin, new_id


class Notification(TenantMixin, TimestampMixin, Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user", "tenant_id", "user_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))  # alert | ticket_assigned | ticket_escalated | task_* | ...
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    alert_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class NotificationChannel(TenantMixin, TimestampMixin, Base):
    """An outbound chat webhook of a tenant (WeCom, DingTalk, Slack or generic JSON), signed with HMAC-SHA256."""

    __tablename__ = "notification_channels"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    format: Mapped[str] = mapped_column(String(16), default="generic")  # generic | wecom | dingtalk | slack
    secret: Mapped[str] = mapped_column(String(200))
    kinds: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)  # empty: every kind
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class NotificationPreference(TenantMixin, TimestampMixin, Base):
    __tablename__ = "notification_preferences"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)  # null: the address from the org directory
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    muted_kinds: Mapped[list[str]] = mapped_column(ARRAY(String(40)), default=list)


class Delivery(TenantMixin, TimestampMixin, Base):
    """One outbound message (e-mail or webhook call): retried with backoff until delivered or given up."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_deliveries_due", "next_attempt_at", postgresql_where="status = 'pending'"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    notification_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    channel_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    target: Mapped[str] = mapped_column(String(2000))
    subject: Mapped[str] = mapped_column(String(300), default="")
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # null: due at once (the service clock decides when a retry is due)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
