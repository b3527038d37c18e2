import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_ingest.database import Base


class Partner(TenantMixin, TimestampMixin, Base):
    """A system that pushes data to us: CRM, hotline, chat, e-mail, review site, social listening, store system."""

    __tablename__ = "partners"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="crm")
    default_language: Mapped[str] = mapped_column(String(16), default="zh-Hans")
    default_channel: Mapped[str] = mapped_column(String(32), default="crm")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | disabled
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    rate_limit_burst: Mapped[int] = mapped_column(Integer, default=100)
    field_mapping: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)


class ApiKey(TenantMixin, Base):
    """A partner API key. Only `prefix` (public, for lookup) and the SHA-256 of the whole key are stored."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
