"""Recent signals (normalised survey responses and analysed feedback): dry runs and volume baselines read them."""

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, Index, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import new_id


class RecentSignal(Base):
    __tablename__ = "recent_signals"
    __table_args__ = (
        Index("ix_recent_signals_tenant_time", "tenant_id", "occurred_at"),
        Index("ix_recent_signals_aspects", "aspect_keys", postgresql_using="gin"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    tenant_id: Mapped[uuid.UUID] = mapped_column()
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")
    org_path: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    customer_key: Mapped[str] = mapped_column(String(200), default="")
    # every prefix of every aspect path, joined by "/" ("服务", "服务/态度", ...), for spike counting
    aspect_keys: Mapped[list[str]] = mapped_column(ARRAY(String(400)), default=list)
    negative_aspect_keys: Mapped[list[str]] = mapped_column(ARRAY(String(400)), default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
