"""closed-loop contacts: the follow-up survey asked for (distribution) and the follow-up response once it arrives

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for column in (
        sa.Column("follow_up_distribution_id", sa.Uuid(), nullable=True),
        sa.Column("follow_up_response_id", sa.String(length=64), nullable=True),
        sa.Column("follow_up_scores", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("follow_up_responded_at", sa.DateTime(timezone=True), nullable=True),
    ):
        op.add_column("customer_contacts", column, schema="alerts")


def downgrade() -> None:
    for name in ("follow_up_responded_at", "follow_up_scores", "follow_up_response_id", "follow_up_distribution_id"):
        op.drop_column("customer_contacts", name, schema="alerts")
