"""file imports: progress/resume columns on imports, import_errors (error report)

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
    op.add_column("imports", sa.Column("filename", sa.String(length=300), nullable=True))
    op.add_column("imports", sa.Column("file_format", sa.String(length=8), nullable=True))
    op.add_column("imports", sa.Column("stored_path", sa.Text(), nullable=True))
    op.add_column("imports", sa.Column("column_map", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("imports", sa.Column("total_rows", sa.Integer(), nullable=True))
    op.add_column("imports", sa.Column("processed_rows", sa.Integer(), server_default="0", nullable=False))
    op.add_column("imports", sa.Column("error", sa.Text(), nullable=True))
    op.create_table(
        "import_errors",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"], ["imports.id"], name=op.f("fk_import_errors_import_id_imports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("import_id", "row_number", name=op.f("pk_import_errors")),
    )
    op.create_index(op.f("ix_ingest_import_errors_tenant_id"), "import_errors", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_table("import_errors")
    for column in ("error", "processed_rows", "total_rows", "column_map", "stored_path", "file_format", "filename"):
        op.drop_column("imports", column)
