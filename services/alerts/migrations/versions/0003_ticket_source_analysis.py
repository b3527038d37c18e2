"""tickets keep the NLP analysis of their source survey response

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column("source_analysis", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema="alerts",
    )
    op.create_index("ix_tickets_source_response", "tickets", ["tenant_id", "source_response_id"], schema="alerts")


def downgrade() -> None:
    op.drop_index("ix_tickets_source_response", table_name="tickets", schema="alerts")
    op.drop_column("tickets", "source_analysis", schema="alerts")
