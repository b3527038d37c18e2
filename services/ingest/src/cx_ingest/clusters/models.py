import uuid
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_ingest.database import Base


class ClusterRun(TenantMixin, TimestampMixin, Base):
    __tablename__ = "cluster_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")  # manual | schedule
    status: Mapped[str] = mapped_column(String(16), default="completed")
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    noise_count: Mapped[int] = mapped_column(Integer, default=0)
    window_days: Mapped[int] = mapped_column(Integer, default=30)
    requested_by: Mapped[str] = mapped_column(String(200), default="")


class Cluster(TenantMixin, Base):
    __tablename__ = "clusters"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cluster_runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)
    keywords: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    member_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    representatives: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    promoted_codebook_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    promoted_node_id: Mapped[str | None] = mapped_column(String(64), default=None)
