"""initial: rules, signals, alerts, tickets, SLA, notifications, compliance, audit trail + event tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24 22:51:51.501930
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from cx_common.migrations import create_event_tables, drop_event_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_event_tables()
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_alert_rules_tenant_id"), "alert_rules", ["tenant_id"], unique=False, schema="alerts"
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_event_id", sa.Uuid(), nullable=False),
        sa.Column("source_type", sa.String(length=64), nullable=False),
        sa.Column("response_id", sa.String(length=64), nullable=False),
        sa.Column("feedback_id", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("org_path", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        schema="alerts",
    )
    op.create_index(op.f("ix_alerts_alerts_tenant_id"), "alerts", ["tenant_id"], unique=False, schema="alerts")
    op.create_index(op.f("ix_alerts_alerts_ticket_id"), "alerts", ["ticket_id"], unique=False, schema="alerts")
    op.create_index("ix_alerts_rule_event", "alerts", ["rule_id", "source_event_id"], unique=True, schema="alerts")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=200), nullable=False),
        sa.Column("entity_type", sa.String(length=40), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        schema="alerts",
    )
    op.create_index(op.f("ix_alerts_audit_log_tenant_id"), "audit_log", ["tenant_id"], unique=False, schema="alerts")
    op.create_index(
        "ix_audit_log_entity", "audit_log", ["tenant_id", "entity_type", "entity_id"], unique=False, schema="alerts"
    )
    op.create_table(
        "business_calendars",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("working_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("holidays", postgresql.ARRAY(sa.Date()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_business_calendars")),
        sa.UniqueConstraint("tenant_id", "org_unit_id", name=op.f("uq_business_calendars_tenant_id_org_unit_id")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_business_calendars_tenant_id"),
        "business_calendars",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )
    op.create_table(
        "compliance_profiles",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_profiles")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_compliance_profiles_tenant_id"),
        "compliance_profiles",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )
    op.create_table(
        "compliance_results",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("profile_id", sa.Uuid(), nullable=False),
        sa.Column("source_event_id", sa.Uuid(), nullable=False),
        sa.Column("feedback_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("violations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_results")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_compliance_results_tenant_id"),
        "compliance_results",
        ["tenant_id"],
        unique=False,
        schema="alerts",
    )
    op.create_index(
        "ix_compliance_results_agent",
        "compliance_results",
        ["tenant_id", "agent_id", "occurred_at"],
        unique=False,
        schema="alerts",
    )
    op.create_index(
        "ix_compliance_results_once",
        "compliance_results",
        ["profile_id", "source_event_id"],
        unique=True,
        schema="alerts",
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("alert_id", sa.Uuid(), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_notifications_tenant_id"), "notifications", ["tenant_id"], unique=False, schema="alerts"
    )
    op.create_index(
        "ix_notifications_user", "notifications", ["tenant_id", "user_id", "id"], unique=False, schema="alerts"
    )
    op.create_table(
        "org_units",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("ancestor_ids", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("manager_user_id", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_org_units")),
        schema="alerts",
    )
    op.create_table(
        "org_users",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_org_users")),
        schema="alerts",
    )
    op.create_table(
        "recent_signals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("org_path", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=False),
        sa.Column("aspect_keys", postgresql.ARRAY(sa.String(length=400)), nullable=False),
        sa.Column("negative_aspect_keys", postgresql.ARRAY(sa.String(length=400)), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recent_signals")),
        sa.UniqueConstraint("event_id", name=op.f("uq_recent_signals_event_id")),
        schema="alerts",
    )
    op.create_index(
        "ix_recent_signals_aspects",
        "recent_signals",
        ["aspect_keys"],
        unique=False,
        schema="alerts",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_recent_signals_tenant_time", "recent_signals", ["tenant_id", "occurred_at"], unique=False, schema="alerts"
    )
    op.create_table(
        "sla_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column("escalation_minutes", sa.Integer(), nullable=False),
        sa.Column("business_hours", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policies")),
        sa.UniqueConstraint("tenant_id", "priority", name=op.f("uq_sla_policies_tenant_id_priority")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_sla_policies_tenant_id"), "sla_policies", ["tenant_id"], unique=False, schema="alerts"
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("org_path", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("assigned_org_unit_id", sa.String(length=64), nullable=False),
        sa.Column("owner_user_id", sa.String(length=64), nullable=True),
        sa.Column("watchers", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=False),
        sa.Column("touchpoint_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.Uuid(), nullable=True),
        sa.Column("alert_id", sa.Uuid(), nullable=True),
        sa.Column("source_event_id", sa.Uuid(), nullable=True),
        sa.Column("source_type", sa.String(length=64), nullable=False),
        sa.Column("source_response_id", sa.String(length=64), nullable=False),
        sa.Column("source_feedback_id", sa.String(length=64), nullable=False),
        sa.Column("source_payload", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_response_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_response_breached", sa.Boolean(), nullable=False),
        sa.Column("resolution_breached", sa.Boolean(), nullable=False),
        sa.Column("resolution_code", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        schema="alerts",
    )
    op.create_index(op.f("ix_alerts_tickets_tenant_id"), "tickets", ["tenant_id"], unique=False, schema="alerts")
    op.create_index(
        "ix_tickets_customer", "tickets", ["tenant_id", "customer_key", "opened_at"], unique=False, schema="alerts"
    )
    op.create_index(
        "ix_tickets_org_path", "tickets", ["org_path"], unique=False, schema="alerts", postgresql_using="gin"
    )
    op.create_table(
        "alert_rule_versions",
        sa.Column("rule_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alerts.alert_rules.id"],
            name=op.f("fk_alert_rule_versions_rule_id_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", "version", name=op.f("pk_alert_rule_versions")),
        schema="alerts",
    )
    op.create_table(
        "customer_contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("contacted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("follow_up_survey", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["alerts.tickets.id"],
            name=op.f("fk_customer_contacts_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_contacts")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_customer_contacts_tenant_id"), "customer_contacts", ["tenant_id"], unique=False, schema="alerts"
    )
    op.create_index(
        op.f("ix_alerts_customer_contacts_ticket_id"), "customer_contacts", ["ticket_id"], unique=False, schema="alerts"
    )
    op.create_table(
        "sla_timers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["alerts.tickets.id"], name=op.f("fk_sla_timers_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_timers")),
        schema="alerts",
    )
    op.create_index(op.f("ix_alerts_sla_timers_tenant_id"), "sla_timers", ["tenant_id"], unique=False, schema="alerts")
    op.create_index(op.f("ix_alerts_sla_timers_ticket_id"), "sla_timers", ["ticket_id"], unique=False, schema="alerts")
    op.create_index(
        "ix_sla_timers_due",
        "sla_timers",
        ["due_at"],
        unique=False,
        schema="alerts",
        postgresql_where="fired_at IS NULL AND cancelled_at IS NULL",
    )
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["alerts.tickets.id"], name=op.f("fk_ticket_comments_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_comments")),
        schema="alerts",
    )
    op.create_index(
        op.f("ix_alerts_ticket_comments_tenant_id"), "ticket_comments", ["tenant_id"], unique=False, schema="alerts"
    )
    op.create_index(
        op.f("ix_alerts_ticket_comments_ticket_id"), "ticket_comments", ["ticket_id"], unique=False, schema="alerts"
    )
    _protect_audit_log()


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    op.drop_index(op.f("ix_alerts_ticket_comments_ticket_id"), table_name="ticket_comments", schema="alerts")
    op.drop_index(op.f("ix_alerts_ticket_comments_tenant_id"), table_name="ticket_comments", schema="alerts")
    op.drop_table("ticket_comments", schema="alerts")
    op.drop_index(
        "ix_sla_timers_due",
        table_name="sla_timers",
        schema="alerts",
        postgresql_where="fired_at IS NULL AND cancelled_at IS NULL",
    )
    op.drop_index(op.f("ix_alerts_sla_timers_ticket_id"), table_name="sla_timers", schema="alerts")
    op.drop_index(op.f("ix_alerts_sla_timers_tenant_id"), table_name="sla_timers", schema="alerts")
    op.drop_table("sla_timers", schema="alerts")
    op.drop_index(op.f("ix_alerts_customer_contacts_ticket_id"), table_name="customer_contacts", schema="alerts")
    op.drop_index(op.f("ix_alerts_customer_contacts_tenant_id"), table_name="customer_contacts", schema="alerts")
    op.drop_table("customer_contacts", schema="alerts")
    op.drop_table("alert_rule_versions", schema="alerts")
    op.drop_index("ix_tickets_org_path", table_name="tickets", schema="alerts", postgresql_using="gin")
    op.drop_index("ix_tickets_customer", table_name="tickets", schema="alerts")
    op.drop_index(op.f("ix_alerts_tickets_tenant_id"), table_name="tickets", schema="alerts")
    op.drop_table("tickets", schema="alerts")
    op.drop_index(op.f("ix_alerts_sla_policies_tenant_id"), table_name="sla_policies", schema="alerts")
    op.drop_table("sla_policies", schema="alerts")
    op.drop_index("ix_recent_signals_tenant_time", table_name="recent_signals", schema="alerts")
    op.drop_index("ix_recent_signals_aspects", table_name="recent_signals", schema="alerts", postgresql_using="gin")
    op.drop_table("recent_signals", schema="alerts")
    op.drop_table("org_users", schema="alerts")
    op.drop_table("org_units", schema="alerts")
    op.drop_index("ix_notifications_user", table_name="notifications", schema="alerts")
    op.drop_index(op.f("ix_alerts_notifications_tenant_id"), table_name="notifications", schema="alerts")
    op.drop_table("notifications", schema="alerts")
    op.drop_index("ix_compliance_results_once", table_name="compliance_results", schema="alerts")
    op.drop_index("ix_compliance_results_agent", table_name="compliance_results", schema="alerts")
    op.drop_index(op.f("ix_alerts_compliance_results_tenant_id"), table_name="compliance_results", schema="alerts")
    op.drop_table("compliance_results", schema="alerts")
    op.drop_index(op.f("ix_alerts_compliance_profiles_tenant_id"), table_name="compliance_profiles", schema="alerts")
    op.drop_table("compliance_profiles", schema="alerts")
    op.drop_index(op.f("ix_alerts_business_calendars_tenant_id"), table_name="business_calendars", schema="alerts")
    op.drop_table("business_calendars", schema="alerts")
    op.drop_index("ix_audit_log_entity", table_name="audit_log", schema="alerts")
    op.drop_index(op.f("ix_alerts_audit_log_tenant_id"), table_name="audit_log", schema="alerts")
    op.drop_table("audit_log", schema="alerts")
    op.drop_index("ix_alerts_rule_event", table_name="alerts", schema="alerts")
    op.drop_index(op.f("ix_alerts_alerts_ticket_id"), table_name="alerts", schema="alerts")
    op.drop_index(op.f("ix_alerts_alerts_tenant_id"), table_name="alerts", schema="alerts")
    op.drop_table("alerts", schema="alerts")
    op.drop_index(op.f("ix_alerts_alert_rules_tenant_id"), table_name="alert_rules", schema="alerts")
    op.drop_table("alert_rules", schema="alerts")
    drop_event_tables()


def _protect_audit_log() -> None:
    """The audit trail is append-only: the database itself refuses UPDATE, DELETE and TRUNCATE."""
    op.execute(
        """
        CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
    )
