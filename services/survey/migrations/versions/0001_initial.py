"""initial: surveys, versions, journeys, touchpoints, responses, invitations, org projection + event tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24
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

TABLES = (
    "incentive_codes",
    "outgoing_mail",
    "scheduled_messages",
    "distributions",
    "partial_responses",
    "invitations",
    "responses",
    "survey_versions",
    "touchpoints",
    "surveys",
    "org_units",
    "journey_stages",
)


def upgrade() -> None:
    create_event_tables()
    op.create_table(
        "journey_stages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_stages")),
        sa.UniqueConstraint("tenant_id", "key", name=op.f("uq_journey_stages_tenant_id_key")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_journey_stages_tenant_id"), "journey_stages", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "org_units",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ancestor_ids", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_org_units")),
        schema="survey",
    )
    op.create_table(
        "outgoing_mail",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_mail")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outgoing_mail_message_id")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_outgoing_mail_tenant_id"), "outgoing_mail", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "surveys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("default_language", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=True),
        sa.Column("touchpoint_id", sa.Uuid(), nullable=True),
        sa.Column("quota", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        schema="survey",
    )
    op.create_index(op.f("ix_survey_surveys_tenant_id"), "surveys", ["tenant_id"], unique=False, schema="survey")
    op.create_table(
        "touchpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("stage_key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touchpoints")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_touchpoints_tenant_id"), "touchpoints", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "distributions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("webhook_url", sa.String(length=2000), nullable=True),
        sa.Column("touchpoint_id", sa.Uuid(), nullable=True),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("reminder_after_seconds", sa.Integer(), nullable=True),
        sa.Column("max_reminders", sa.Integer(), nullable=False),
        sa.Column("frequency_days", sa.Integer(), nullable=True),
        sa.Column("link_valid_hours", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.surveys.id"], name=op.f("fk_distributions_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_distributions")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_distributions_survey_id"), "distributions", ["survey_id"], unique=False, schema="survey"
    )
    op.create_index(
        op.f("ix_survey_distributions_tenant_id"), "distributions", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "incentive_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("response_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.surveys.id"], name=op.f("fk_incentive_codes_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incentive_codes")),
        sa.UniqueConstraint("response_id", name=op.f("uq_incentive_codes_response_id")),
        sa.UniqueConstraint("survey_id", "code", name=op.f("uq_incentive_codes_survey_id_code")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_incentive_codes_survey_id"), "incentive_codes", ["survey_id"], unique=False, schema="survey"
    )
    op.create_index(
        op.f("ix_survey_incentive_codes_tenant_id"), "incentive_codes", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "invitations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=True),
        sa.Column("touchpoint_id", sa.Uuid(), nullable=True),
        sa.Column("hidden", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_id", sa.Uuid(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.surveys.id"], name=op.f("fk_invitations_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_invitations_survey_id"), "invitations", ["survey_id"], unique=False, schema="survey"
    )
    op.create_index(
        op.f("ix_survey_invitations_tenant_id"), "invitations", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "partial_responses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("answers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["survey.surveys.id"],
            name=op.f("fk_partial_responses_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partial_responses")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_partial_responses_tenant_id"), "partial_responses", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "survey_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_by", sa.String(length=200), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.surveys.id"], name=op.f("fk_survey_versions_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_versions")),
        sa.UniqueConstraint("survey_id", "version", name=op.f("uq_survey_versions_survey_id_version")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_survey_versions_tenant_id"), "survey_versions", ["tenant_id"], unique=False, schema="survey"
    )
    op.create_table(
        "responses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("survey_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("submission_key", sa.String(length=128), nullable=False),
        sa.Column("invitation_id", sa.Uuid(), nullable=True),
        sa.Column("touchpoint_id", sa.Uuid(), nullable=True),
        sa.Column("journey_stage", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("org_unit_id", sa.String(length=64), nullable=True),
        sa.Column("org_path", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("answers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("hidden", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("nps", sa.Integer(), nullable=True),
        sa.Column("nps_category", sa.String(length=16), nullable=True),
        sa.Column("csat", sa.Float(), nullable=True),
        sa.Column("ces", sa.Float(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"], ["survey.surveys.id"], name=op.f("fk_responses_survey_id_surveys"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["survey.survey_versions.id"], name=op.f("fk_responses_version_id_survey_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
        sa.UniqueConstraint("survey_id", "submission_key", name=op.f("uq_responses_survey_id_submission_key")),
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_responses_customer_key"), "responses", ["customer_key"], unique=False, schema="survey"
    )
    op.create_index(
        op.f("ix_survey_responses_org_unit_id"), "responses", ["org_unit_id"], unique=False, schema="survey"
    )
    op.create_index(op.f("ix_survey_responses_survey_id"), "responses", ["survey_id"], unique=False, schema="survey")
    op.create_index(op.f("ix_survey_responses_tenant_id"), "responses", ["tenant_id"], unique=False, schema="survey")
    op.create_table(
        "scheduled_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("distribution_id", sa.Uuid(), nullable=False),
        sa.Column("invitation_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("customer_key", sa.String(length=200), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("link", sa.Text(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["distribution_id"],
            ["survey.distributions.id"],
            name=op.f("fk_scheduled_messages_distribution_id_distributions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["survey.invitations.id"],
            name=op.f("fk_scheduled_messages_invitation_id_invitations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_messages")),
        sa.UniqueConstraint("invitation_id", "kind", "seq", name=op.f("uq_scheduled_messages_invitation_id_kind_seq")),
        schema="survey",
    )
    op.create_index(
        "ix_scheduled_messages_due",
        "scheduled_messages",
        ["due_at"],
        unique=False,
        schema="survey",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        op.f("ix_survey_scheduled_messages_customer_key"),
        "scheduled_messages",
        ["customer_key"],
        unique=False,
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_scheduled_messages_distribution_id"),
        "scheduled_messages",
        ["distribution_id"],
        unique=False,
        schema="survey",
    )
    op.create_index(
        op.f("ix_survey_scheduled_messages_tenant_id"),
        "scheduled_messages",
        ["tenant_id"],
        unique=False,
        schema="survey",
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table, schema="survey")
    drop_event_tables()
