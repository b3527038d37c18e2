"""analytics read model: daily rollups, aspect/term rollups, ticket/task states, response facts, O-data, KPIs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 23:00:10.208560
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_attributes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_attributes")),
        sa.UniqueConstraint("tenant_id", "customer_key", name=op.f("uq_customer_attributes_tenant_id_customer_key")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_customer_attributes_tenant_id"),
        "customer_attributes",
        ["tenant_id"],
        unique=False,
        schema="gateway",
    )
    op.create_table(
        "kpis",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("formula", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpis")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_kpis_tenant_id_code")),
        schema="gateway",
    )
    op.create_index(op.f("ix_gateway_kpis_tenant_id"), "kpis", ["tenant_id"], unique=False, schema="gateway")
    op.create_table(
        "response_facts",
        sa.Column("response_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=False),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("csat", sa.Float(), nullable=True),
        sa.Column("ces", sa.Float(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_response_facts")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_response_facts_customer_key"),
        "response_facts",
        ["customer_key"],
        unique=False,
        schema="gateway",
    )
    op.create_index(op.f("ix_gateway_response_facts_day"), "response_facts", ["day"], unique=False, schema="gateway")
    op.create_index(
        op.f("ix_gateway_response_facts_tenant_id"), "response_facts", ["tenant_id"], unique=False, schema="gateway"
    )
    op.create_table(
        "rollup_aspects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("polarity", sa.String(length=16), nullable=False),
        sa.Column("mentions", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("touchpoint", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_aspects")),
        sa.UniqueConstraint(
            "tenant_id",
            "day",
            "org_unit_id",
            "touchpoint",
            "stage",
            "channel",
            "path",
            "polarity",
            name=op.f("uq_rollup_aspects_tenant_id_day_org_unit_id_touchpoint_stage_channel_path_polarity"),
        ),
        schema="gateway",
    )
    op.create_table(
        "rollup_daily",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.Column("nps_count", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("passives", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("csat_sum", sa.Float(), nullable=False),
        sa.Column("csat_count", sa.Integer(), nullable=False),
        sa.Column("ces_sum", sa.Float(), nullable=False),
        sa.Column("ces_count", sa.Integer(), nullable=False),
        sa.Column("feedback", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("pain", sa.Integer(), nullable=False),
        sa.Column("itch", sa.Integer(), nullable=False),
        sa.Column("delight", sa.Integer(), nullable=False),
        sa.Column("complaints", sa.Integer(), nullable=False),
        sa.Column("unmatched", sa.Integer(), nullable=False),
        sa.Column("tickets_created", sa.Integer(), nullable=False),
        sa.Column("tickets_resolved", sa.Integer(), nullable=False),
        sa.Column("tickets_resolved_in_sla", sa.Integer(), nullable=False),
        sa.Column("tickets_escalated", sa.Integer(), nullable=False),
        sa.Column("tasks_created", sa.Integer(), nullable=False),
        sa.Column("tasks_completed", sa.Integer(), nullable=False),
        sa.Column("tasks_accepted", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("touchpoint", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_daily")),
        sa.UniqueConstraint(
            "tenant_id",
            "day",
            "org_unit_id",
            "touchpoint",
            "stage",
            "channel",
            name=op.f("uq_rollup_daily_tenant_id_day_org_unit_id_touchpoint_stage_channel"),
        ),
        schema="gateway",
    )
    op.create_table(
        "rollup_terms",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("term", sa.String(length=200), nullable=False),
        sa.Column("mentions", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("touchpoint", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollup_terms")),
        sa.UniqueConstraint(
            "tenant_id",
            "day",
            "org_unit_id",
            "touchpoint",
            "stage",
            "channel",
            "kind",
            "term",
            name=op.f("uq_rollup_terms_tenant_id_day_org_unit_id_touchpoint_stage_channel_kind_term"),
        ),
        schema="gateway",
    )
    op.create_table(
        "task_states",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("metric_before", sa.Float(), nullable=True),
        sa.Column("metric_after", sa.Float(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_states")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_task_states_tenant_id"), "task_states", ["tenant_id"], unique=False, schema="gateway"
    )
    op.create_table(
        "ticket_states",
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=8), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counted_resolved", sa.Boolean(), nullable=False),
        sa.Column("touchpoint", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_states")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_ticket_states_tenant_id"), "ticket_states", ["tenant_id"], unique=False, schema="gateway"
    )
    op.drop_constraint(op.f("fk_api_tokens_org_unit_id_org_units"), "api_tokens", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_api_tokens_org_unit_id_org_units"),
        "api_tokens",
        "org_units",
        ["org_unit_id"],
        ["id"],
        source_schema="gateway",
        referent_schema="gateway",
        ondelete="CASCADE",
    )
    op.drop_constraint(op.f("fk_memberships_user_id_users"), "memberships", type_="foreignkey")
    op.drop_constraint(op.f("fk_memberships_org_unit_id_org_units"), "memberships", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_memberships_org_unit_id_org_units"),
        "memberships",
        "org_units",
        ["org_unit_id"],
        ["id"],
        source_schema="gateway",
        referent_schema="gateway",
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_memberships_user_id_users"),
        "memberships",
        "users",
        ["user_id"],
        ["id"],
        source_schema="gateway",
        referent_schema="gateway",
        ondelete="CASCADE",
    )
    op.drop_constraint(op.f("fk_org_units_parent_id_org_units"), "org_units", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_org_units_parent_id_org_units"),
        "org_units",
        "org_units",
        ["parent_id"],
        ["id"],
        source_schema="gateway",
        referent_schema="gateway",
        ondelete="RESTRICT",
    )
    op.drop_constraint(op.f("fk_refresh_tokens_membership_id_memberships"), "refresh_tokens", type_="foreignkey")
    op.drop_constraint(op.f("fk_refresh_tokens_user_id_users"), "refresh_tokens", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_refresh_tokens_user_id_users"),
        "refresh_tokens",
        "users",
        ["user_id"],
        ["id"],
        source_schema="gateway",
        referent_schema="gateway",
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_refresh_tokens_membership_id_memberships"),
        "refresh_tokens",
        "memberships",
        ["membership_id"],
        ["id"],
        source_schema="gateway",
        referent_schema="gateway",
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_refresh_tokens_membership_id_memberships"), "refresh_tokens", schema="gateway", type_="foreignkey"
    )
    op.drop_constraint(op.f("fk_refresh_tokens_user_id_users"), "refresh_tokens", schema="gateway", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_refresh_tokens_user_id_users"), "refresh_tokens", "users", ["user_id"], ["id"], ondelete="CASCADE"
    )
    op.create_foreign_key(
        op.f("fk_refresh_tokens_membership_id_memberships"),
        "refresh_tokens",
        "memberships",
        ["membership_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_constraint(op.f("fk_org_units_parent_id_org_units"), "org_units", schema="gateway", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_org_units_parent_id_org_units"), "org_units", "org_units", ["parent_id"], ["id"], ondelete="RESTRICT"
    )
    op.drop_constraint(op.f("fk_memberships_user_id_users"), "memberships", schema="gateway", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_memberships_org_unit_id_org_units"), "memberships", schema="gateway", type_="foreignkey"
    )
    op.create_foreign_key(
        op.f("fk_memberships_org_unit_id_org_units"),
        "memberships",
        "org_units",
        ["org_unit_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_memberships_user_id_users"), "memberships", "users", ["user_id"], ["id"], ondelete="CASCADE"
    )
    op.drop_constraint(op.f("fk_api_tokens_org_unit_id_org_units"), "api_tokens", schema="gateway", type_="foreignkey")
    op.create_foreign_key(
        op.f("fk_api_tokens_org_unit_id_org_units"),
        "api_tokens",
        "org_units",
        ["org_unit_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_index(op.f("ix_gateway_ticket_states_tenant_id"), table_name="ticket_states", schema="gateway")
    op.drop_table("ticket_states", schema="gateway")
    op.drop_index(op.f("ix_gateway_task_states_tenant_id"), table_name="task_states", schema="gateway")
    op.drop_table("task_states", schema="gateway")
    op.drop_table("rollup_terms", schema="gateway")
    op.drop_table("rollup_daily", schema="gateway")
    op.drop_table("rollup_aspects", schema="gateway")
    op.drop_index(op.f("ix_gateway_response_facts_tenant_id"), table_name="response_facts", schema="gateway")
    op.drop_index(op.f("ix_gateway_response_facts_day"), table_name="response_facts", schema="gateway")
    op.drop_index(op.f("ix_gateway_response_facts_customer_key"), table_name="response_facts", schema="gateway")
    op.drop_table("response_facts", schema="gateway")
    op.drop_index(op.f("ix_gateway_kpis_tenant_id"), table_name="kpis", schema="gateway")
    op.drop_table("kpis", schema="gateway")
    op.drop_index(op.f("ix_gateway_customer_attributes_tenant_id"), table_name="customer_attributes", schema="gateway")
    op.drop_table("customer_attributes", schema="gateway")
