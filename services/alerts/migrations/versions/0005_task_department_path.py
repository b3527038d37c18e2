"""improvement tasks keep their department's org path (visibility: a unit sees tasks of itself and below)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "improvement_tasks",
        sa.Column("department_path", postgresql.ARRAY(sa.String(length=64)), nullable=False, server_default="{}"),
        schema="alerts",
    )
    op.alter_column("improvement_tasks", "department_path", server_default=None, schema="alerts")
    op.create_index(
        "ix_improvement_tasks_department_path",
        "improvement_tasks",
        ["department_path"],
        postgresql_using="gin",
        schema="alerts",
    )


def downgrade() -> None:
    op.drop_index("ix_improvement_tasks_department_path", table_name="improvement_tasks", schema="alerts")
    op.drop_column("improvement_tasks", "department_path", schema="alerts")
