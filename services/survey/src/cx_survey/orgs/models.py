import uuid

from sqlalchemy import Boolean, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TimestampMixin
from cx_survey.database import Base


class OrgUnit(TimestampMixin, Base):
    """Projection of the gateway's org tree (from org.unit.* events)."""

    __tablename__ = "org_units"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(32), default="")
    ancestor_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
