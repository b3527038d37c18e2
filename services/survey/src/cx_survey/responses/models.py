import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_survey.database import Base


class Response(TenantMixin, Base):
    __tablename__ = "responses"
    __table_args__ = (UniqueConstraint("survey_id", "submission_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("survey_versions.id"))
    submission_key: Mapped[str] = mapped_column(String(128))  # client idempotency key or invitation token id
    invitation_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    touchpoint_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    journey_stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    org_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    org_path: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    customer_key: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    language: Mapped[str] = mapped_column(String(16))
    answers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    hidden: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    nps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    nps_category: Mapped[str | None] = mapped_column(String(16), nullable=True)
    csat: Mapped[float | None] = mapped_column(Float, nullable=True)
    ces: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Invitation(TenantMixin, TimestampMixin, Base):
    """A personal single-use link with an expiry; the token itself is stored only as a hash."""

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), index=True)
    customer_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    touchpoint_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    hidden: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    response_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)


class PartialResponse(TenantMixin, TimestampMixin, Base):
    """Answers saved mid-way so a respondent can resume (keyed by a random resume id)."""

    __tablename__ = "partial_responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    answers: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
