"""demo data loads: which parts of the demo tenant's cross-service sample data are in (seed-demo runs them once)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 04:10:00
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
        "demo_loads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("part", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "part", name=op.f("pk_demo_loads")),
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_table("demo_loads", schema="gateway")
