"""survey id on response facts (survey results), read-model freshness per tenant, tracked competitors

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "response_facts",
        sa.Column("survey_id", sa.String(length=64), server_default="", nullable=False),
        schema="gateway",
    )
    op.alter_column("response_facts", "survey_id", server_default=None, schema="gateway")
    op.create_index(
        "ix_gateway_response_facts_survey",
        "response_facts",
        ["tenant_id", "survey_id", "day"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "analytics_freshness",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_analytics_freshness")),
        schema="gateway",
    )
    op.create_table(
        "competitors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_competitors")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_competitors_tenant_id_name")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_competitors_tenant_id"), "competitors", ["tenant_id"], unique=False, schema="gateway"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_competitors_tenant_id"), table_name="competitors", schema="gateway")
    op.drop_table("competitors", schema="gateway")
    op.drop_table("analytics_freshness", schema="gateway")
    op.drop_index("ix_gateway_response_facts_survey", table_name="response_facts", schema="gateway")
    op.drop_column("response_facts", "survey_id", schema="gateway")
