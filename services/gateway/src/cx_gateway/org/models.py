import uuid

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_gateway.database import Base


class OrgUnit(TenantMixin, TimestampMixin, Base):
    """One node of a tenant's org tree. `path` is `/<root id>/.../<own id>/`, so a subtree is a prefix match."""

    __tablename__ = "org_units"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_gateway_org_units_path", "tenant_id", "path", postgresql_ops={"path": "text_pattern_ops"}),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("org_units.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32), default="store")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    path: Mapped[str] = mapped_column(Text)
    depth: Mapped[int] = mapped_column(Integer, default=0)
    attributes: Mapped[str] = mapped_column(Text, default="{}")  # JSON object, e.g. {"size": "large"}
    manager_user_id: Mapped[uuid.UUID | None] = mapped_column(nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
