"""follow-up surveys asked for by tickets (ticket.follow_up_requested) and the tenant's follow-up distribution

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "follow_up_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("source_response_id", sa.String(length=64), nullable=False),
        sa.Column("source_feedback_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("requested_distribution_id", sa.Uuid(), nullable=True),
        sa.Column("distribution_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("recipient_source", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_requests")),
        sa.UniqueConstraint("tenant_id", "request_id", name=op.f("uq_follow_up_requests_tenant_id_request_id")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_follow_up_requests_tenant_id"),
        "follow_up_requests",
        ["tenant_id"],
        unique=False,
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_follow_up_requests_customer_key"),
        "follow_up_requests",
        ["customer_key"],
        unique=False,
        schema="survey",
    )
    op.create_index(
        "ix_follow_up_requests_ticket", "follow_up_requests", ["tenant_id", "ticket_id"], unique=False, schema="survey"
    )
    op.create_index(
        "ix_follow_up_requests_distribution",
        "follow_up_requests",
        ["tenant_id", "distribution_id"],
        unique=False,
        schema="survey",
    )
    op.create_table(
        "follow_up_defaults",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("distribution_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["distribution_id"],
            ["survey.distributions.id"],
            name=op.f("fk_follow_up_defaults_distribution_id_distributions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_follow_up_defaults")),
        schema="survey",
    )


def downgrade() -> None:
    op.drop_table("follow_up_defaults", schema="survey")
    op.drop_table("follow_up_requests", schema="survey")
