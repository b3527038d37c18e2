import uuid

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TimestampMixin
from cx_ingest.database import Base


class OrgUnit(TimestampMixin, Base):
    __tablename__ = "org_units"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    parent_id: Mapped[str] = mapped_column(String(200), default="")
    ancestor_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)  # root first
    name: Mapped[str] = mapped_column(String(300), default="")
    deleted: Mapped[bool] = mapped_column(default=False)
