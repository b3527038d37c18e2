import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_ingest.database import Base


class Codebook(TenantMixin, TimestampMixin, Base):
    """A tenant's aspect codebook: a draft node tree that is published as immutable numbered versions."""

    __tablename__ = "codebooks"
    __table_args__ = (
        Index("uq_codebooks_one_active_per_tenant", "tenant_id", unique=True, postgresql_where=text("active")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    primary_language: Mapped[str] = mapped_column(String(16), default="zh-Hans")
    active: Mapped[bool] = mapped_column(default=False)  # the one the analysis worker codes against
    draft_nodes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    latest_version: Mapped[int] = mapped_column(BigInteger, default=0)


class CodebookVersion(TenantMixin, Base):
    __tablename__ = "codebook_versions"
    __table_args__ = (UniqueConstraint("codebook_id", "version", name="uq_codebook_versions_version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    codebook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("codebooks.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(BigInteger)
    nodes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    fingerprint: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(500), default="")
    published_by: Mapped[str] = mapped_column(String(200), default="")
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class CodebookHistory(TenantMixin, Base):
    """Append-only: who changed what in a codebook, with before/after."""

    __tablename__ = "codebook_history"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    codebook_id: Mapped[uuid.UUID] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    before: Mapped[Any] = mapped_column(JSONB, nullable=True, default=None)
    after: Mapped[Any] = mapped_column(JSONB, nullable=True, default=None)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))


class RecodeJob(TenantMixin, TimestampMixin, Base):
    """Re-coding backfill after a new version of the active codebook: items coded against older versions are
    re-queued for analysis in id order; `cursor` commits with each chunk so the job resumes after a restart."""

    __tablename__ = "recode_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    codebook_id: Mapped[uuid.UUID] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed | superseded
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    queued: Mapped[int] = mapped_column(BigInteger, default=0)
    cursor: Mapped[uuid.UUID | None] = mapped_column(default=None)
