"""outbound notifications: webhook channels, per-user preferences, deliveries with retries

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:05:13.315123
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("kinds", postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_notification_channels_tenant_id"),
        "notification_channels",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("notification_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_notification_deliveries_tenant_id"),
        "notification_deliveries",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )
    op.create_index(
        "ix_deliveries_due",
        "notification_deliveries",
        ["next_attempt_at"],
        unique=False,
        schema="alerts",
        postgresql_where="status = 'pending'",
    )
    op.create_table(
        "notification_preferences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("email_enabled", sa.Boolean(), nullable=False),
        sa.Column("muted_kinds", postgresql.ARRAY(sa.String(length=40)), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_preferences")),
        sa.UniqueConstraint("tenant_id", "user_id", name=op.f("uq_notification_preferences_tenant_id_user_id")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_notification_preferences_tenant_id"),
        "notification_preferences",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_alerts_notification_preferences_tenant_id"), table_name="notification_preferences", schema="alerts"
    )
    op.drop_table("notification_preferences", schema="alerts")
    op.drop_index(
        "ix_deliveries_due",
        table_name="notification_deliveries",
        schema="alerts",
        postgresql_where="status = 'pending'",
    )
    op.drop_index(
        op.f("ix_alerts_notification_deliveries_tenant_id"), table_name="notification_deliveries", schema="alerts"
    )
    op.drop_table("notification_deliveries", schema="alerts")
    op.drop_index(
        op.f("ix_alerts_notification_channels_tenant_id"), table_name="notification_channels", schema="alerts"
    )
    op.drop_table("notification_channels", schema="alerts")
