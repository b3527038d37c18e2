"""improvement tasks (plan, approval, execution, acceptance) and their updates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 22:59:32.636392
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "improvement_tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source_kind", sa.String(length=16), nullable=False),
        sa.Column("aspect_path", postgresql.ARRAY(sa.String(length=200)), nullable=False),
        sa.Column("cluster_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_ids", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("department_id", sa.String(length=64), nullable=False),
        sa.Column("assignee_user_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("approver_id", sa.String(length=64), nullable=True),
        sa.Column("approval_comment", sa.Text(), nullable=False),
        sa.Column("verifier_id", sa.String(length=64), nullable=True),
        sa.Column("acceptance_comment", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("metric_window_days", sa.Integer(), nullable=False),
        sa.Column("metric_before", sa.Float(), nullable=True),
        sa.Column("metric_after", sa.Float(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_improvement_tasks")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_improvement_tasks_tenant_id"), "improvement_tasks", ["tenant_id"], unique=False, schema="alerts"
    )
    op.create_table(
        "improvement_task_updates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("progress_percent", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["alerts.improvement_tasks.id"],
            name=op.f("fk_improvement_task_updates_task_id_improvement_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_improvement_task_updates")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_improvement_task_updates_task_id"),
        "improvement_task_updates",
        ["task_id"],
        unique=False,
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_improvement_task_updates_tenant_id"),
        "improvement_task_updates",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_alerts_improvement_task_updates_tenant_id"), table_name="improvement_task_updates", schema="alerts"
    )
    op.drop_index(
        op.f("ix_alerts_improvement_task_updates_task_id"), table_name="improvement_task_updates", schema="alerts"
    )
    op.drop_table("improvement_task_updates", schema="alerts")
    op.drop_index(op.f("ix_alerts_improvement_tasks_tenant_id"), table_name="improvement_tasks", schema="alerts")
    op.drop_table("improvement_tasks", schema="alerts")
