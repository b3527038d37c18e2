"""clusters: runs of NLP clustering over unmatched feedback, and their ranked clusters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
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
        "cluster_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("noise_count", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_runs")),
    )
    op.create_index(op.f("ix_ingest_cluster_runs_tenant_id"), "cluster_runs", ["tenant_id"], unique=False)
    op.create_table(
        "clusters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("keywords", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("member_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("representatives", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("promoted_codebook_id", sa.Uuid(), nullable=True),
        sa.Column("promoted_node_id", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["cluster_runs.id"], name=op.f("fk_clusters_run_id_cluster_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clusters")),
    )
    op.create_index(op.f("ix_ingest_clusters_run_id"), "clusters", ["run_id"], unique=False)
    op.create_index(op.f("ix_ingest_clusters_tenant_id"), "clusters", ["tenant_id"], unique=False)
    # Clustering reads recent analysed items that matched no codebook node.
    op.create_index(
        "ix_feedback_items_unmatched",
        "feedback_items",
        ["tenant_id", "analyzed_at"],
        unique=False,
        postgresql_where=sa.text("unmatched"),
    )


def downgrade() -> None:
    op.drop_index("ix_feedback_items_unmatched", table_name="feedback_items")
    op.drop_table("clusters")
    op.drop_table("cluster_runs")
