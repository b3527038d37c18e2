import uuid
from typing import Any

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_survey.database import Base


class JourneyStage(TenantMixin, TimestampMixin, Base):
    __tablename__ = "journey_stages"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[dict[str, Any]] = mapped_column(JSONB)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Touchpoint(TenantMixin, TimestampMixin, Base):
    __tablename__ = "touchpoints"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    stage_key: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    org_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
