"""Improvement tasks: plan → manager approval → execution → acceptance with a before/after metric."""

import datetime as dt
import uuid

from sqlalchemy import Date, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from cx_alerts.database import Base
from cx_common.db import TenantMixin, TimestampMixin, new_id


class ImprovementTask(TenantMixin, TimestampMixin, Base):
    __tablename__ = "improvement_tasks"
    __table_args__ = (Index("ix_improvement_tasks_department_path", "department_path", postgresql_using="gin"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    source_kind: Mapped[str] = mapped_column(String(16))  # aspect | cluster | tickets
    aspect_path: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)
    cluster_id: Mapped[str] = mapped_column(String(64), default="")
    ticket_ids: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    org_unit_id: Mapped[str] = mapped_column(String(64), default="")  # scope of the metric (e.g. a region)
    department_id: Mapped[str] = mapped_column(String(64))  # owner department (an org unit)
    department_path: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)  # root first, for scoping
    assignee_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(Text, default="")
    due_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    approver_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approval_comment: Mapped[str] = mapped_column(Text, default="")
    verifier_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acceptance_comment: Mapped[str] = mapped_column(Text, default="")
    metric: Mapped[str] = mapped_column(String(40), default="negative_share")
    metric_window_days: Mapped[int] = mapped_column(Integer, default=30)
    metric_before: Mapped[float | None] = mapped_column(Float, nullable=True)
    metric_after: Mapped[float | None] = mapped_column(Float, nullable=True)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    opened_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1)


class TaskUpdate(TenantMixin, TimestampMixin, Base):
    __tablename__ = "improvement_task_updates"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("improvement_tasks.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # progress | approval | rejection | acceptance | return
    note: Mapped[str] = mapped_column(Text, default="")
    progress_percent: Mapped[int | None] = mapped_column(Integer, nullable=True)
