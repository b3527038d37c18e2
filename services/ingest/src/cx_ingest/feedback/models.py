import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import Mapped, mapped_column

from cx_common.db import TenantMixin, TimestampMixin, new_id
from cx_ingest.database import Base


class FeedbackItem(TenantMixin, TimestampMixin, Base):
    """One piece of feedback from any channel: a single text or a conversation (ordered turns).

    `source_key` names where it came from (`partner:<id>` or `survey`); (tenant, source_key, external_id) is the
    natural key used for dedup with update semantics. `text`/`turns` are PII-redacted; `raw_*` only when the tenant
    keeps originals. `analysis_state` drives the analysis worker: pending -> processing (claimed, with lease and
    claim token) -> done | failed.
    """

    __tablename__ = "feedback_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source_key", "external_id", name="uq_feedback_items_natural_key"),
        Index(
            "ix_feedback_items_analysis_queue",
            "next_attempt_at",
            postgresql_where=sql_text("analysis_state IN ('pending', 'processing')"),
        ),
        Index("ix_feedback_items_tenant_created", "tenant_id", "id"),
        Index("ix_feedback_items_unmatched", "tenant_id", "analyzed_at", postgresql_where=sql_text("unmatched")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_key: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    external_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    touchpoint_id: Mapped[str] = mapped_column(String(200), default="")
    journey_stage: Mapped[str] = mapped_column(String(200), default="")
    org_unit_id: Mapped[str] = mapped_column(String(200), default="")
    customer_key: Mapped[str] = mapped_column(String(200), default="")
    product_sku: Mapped[str] = mapped_column(String(200), default="")
    agent_id: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(16), default="")
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    title: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    turns: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, default=None)
    raw_text: Mapped[str | None] = mapped_column(Text, default=None)
    raw_turns: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, default=None)
    redactions: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict)
    scores: Mapped[dict[str, float]] = mapped_column(JSONB, default=dict)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    source_response_id: Mapped[str] = mapped_column(String(200), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=1)

    analysis_state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=sql_text("now()"))
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    sentiment: Mapped[str | None] = mapped_column(String(16), default=None)
    sentiment_score: Mapped[float | None] = mapped_column(Float, default=None)
    unmatched: Mapped[bool | None] = mapped_column(default=None)
    analyzed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    analysis_count: Mapped[int] = mapped_column(Integer, default=0)
    embedding: Mapped[list[float] | None] = mapped_column(ARRAY(REAL), default=None)  # L2-normalised, from NLP Embed


class ODataRecord(TenantMixin, TimestampMixin, Base):
    """Operational data (orders, customers, CRM attributes) upserted by (kind, record key)."""

    __tablename__ = "odata_records"
    __table_args__ = (UniqueConstraint("tenant_id", "kind", "record_key", name="uq_odata_records_natural_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(200))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    customer_key: Mapped[str] = mapped_column(String(200), default="", index=True)
    org_unit_id: Mapped[str] = mapped_column(String(200), default="")
    occurred_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class ImportBatch(TenantMixin, TimestampMixin, Base):
    """One batch request (or one file import) and its per-record results."""

    __tablename__ = "imports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    partner_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    kind: Mapped[str] = mapped_column(String(64))  # feedback | odata:<kind> | file
    status: Mapped[str] = mapped_column(String(16), default="completed")
    total: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicate: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # File imports: streamed in chunks; `processed_rows` is committed with each chunk, so a restart resumes there.
    filename: Mapped[str | None] = mapped_column(String(300), default=None)
    file_format: Mapped[str | None] = mapped_column(String(8), default=None)
    stored_path: Mapped[str | None] = mapped_column(Text, default=None)
    column_map: Mapped[dict[str, str] | None] = mapped_column(JSONB, default=None)
    total_rows: Mapped[int | None] = mapped_column(Integer, default=None)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, default=None)


class ImportError_(TenantMixin, Base):  # noqa: N801 - avoid shadowing the builtin
    """One rejected row of a file import (the downloadable error report)."""

    __tablename__ = "import_errors"

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"), primary_key=True)
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based data row (header excluded)
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    reason: Mapped[str] = mapped_column(Text)


class IdempotencyRecord(TenantMixin, Base):
    """`Idempotency-Key` of a partner request: the body's hash and the response that was sent."""

    __tablename__ = "idempotency_keys"

    partner_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[str | None] = mapped_column(Text, default=None)  # exact bytes sent, for identical replays
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=sql_text("now()"))
