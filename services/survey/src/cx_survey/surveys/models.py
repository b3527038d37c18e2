import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_survey.database import Base


class Survey(TenantMixin, TimestampMixin, Base):
    __tablename__ = "surveys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    default_language: Mapped[str] = mapped_column(String(16), default="zh-Hans")
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published | closed
    definition: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)  # the editable draft
    current_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    touchpoint_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    quota: Mapped[int | None] = mapped_column(Integer, nullable=True)  # max complete responses


class SurveyVersion(TenantMixin, Base):
    """An immutable, published definition; responses point at the version they answered."""

    __tablename__ = "survey_versions"
    __table_args__ = (UniqueConstraint("survey_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
