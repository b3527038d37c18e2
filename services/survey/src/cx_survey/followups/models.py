import datetime as dt
import uuid

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_survey.database import Base


class FollowUpRequest(TenantMixin, Base):
    """A follow-up survey asked for by alerts (ticket.follow_up_requested), and what became of it: `scheduled` (a
    triggered send, `message_id`) or `undeliverable` (`reason`). One row per request, however often it is delivered."""

    __tablename__ = "follow_up_requests"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id"),
        Index("ix_follow_up_requests_ticket", "tenant_id", "ticket_id"),
        Index("ix_follow_up_requests_distribution", "tenant_id", "distribution_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    request_id: Mapped[uuid.UUID]  # alerts' contact id
    event_id: Mapped[uuid.UUID]
    ticket_id: Mapped[str] = mapped_column(String(64))
    customer_key: Mapped[str] = mapped_column(String(200), index=True)
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")
    source_response_id: Mapped[str] = mapped_column(String(64), default="")
    source_feedback_id: Mapped[str] = mapped_column(String(64), default="")
    requested_by: Mapped[str] = mapped_column(String(200), default="")
    requested_distribution_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)  # as asked (None: default)
    distribution_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)  # the one used
    message_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)  # the invitation scheduled
    recipient_source: Mapped[str | None] = mapped_column(String(32), nullable=True)  # original_invitation | history
    status: Mapped[str] = mapped_column(String(16))  # scheduled | undeliverable
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class FollowUpDefault(TimestampMixin, Base):
    """The tenant's distribution for follow-up surveys when a request names none."""

    __tablename__ = "follow_up_defaults"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    distribution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("distributions.id", ondelete="CASCADE"))
