"""recode_jobs: resumable re-coding backfill after a codebook change

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recode_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("codebook_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("queued", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.Uuid(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recode_jobs")),
    )
    op.create_index(op.f("ix_ingest_recode_jobs_codebook_id"), "recode_jobs", ["codebook_id"], unique=False)
    op.create_index(op.f("ix_ingest_recode_jobs_tenant_id"), "recode_jobs", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("recode_jobs")
