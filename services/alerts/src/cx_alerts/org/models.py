"""Local projection of the gateway's org tree and users (from `org.unit.*` / `org.user.*` events)."""

import uuid

from sqlalchemy import Boolean, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TimestampMixin


class OrgUnit(TimestampMixin, Base):
    __tablename__ = "org_units"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(32), default="")
    code: Mapped[str] = mapped_column(String(64), default="")
    ancestor_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)  # root first
    timezone: Mapped[str] = mapped_column(String(64), default="")
    manager_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class OrgUser(TimestampMixin, Base):
    __tablename__ = "org_users"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_unit_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str] = mapped_column(String(32), default="")
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    locale: Mapped[str] = mapped_column(String(16), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
