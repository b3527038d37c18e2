"""audit trail: (tenant_id, id) index, so the head of a tenant's chain (read at every commit that audits) and the
tenant's trail in order are index lookups whatever the other tenants wrote

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_log_tenant_chain", "audit_log", ["tenant_id", "id"], unique=False, schema="alerts")
    op.drop_index("ix_alerts_audit_log_tenant_id", table_name="audit_log", schema="alerts")


def downgrade() -> None:
    op.create_index("ix_alerts_audit_log_tenant_id", "audit_log", ["tenant_id"], unique=False, schema="alerts")
    op.drop_index("ix_audit_log_tenant_chain", table_name="audit_log", schema="alerts")
