"""initial: identity (tenants, users, memberships, tokens, signing keys), org tree, event tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24 22:50:37.661261
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from cx_common.migrations import create_event_tables, drop_event_tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_event_tables()
    op.create_table(
        "org_units",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("manager_user_id", sa.Uuid(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["gateway.org_units.id"], name=op.f("fk_org_units_parent_id_org_units"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_org_units")),
        sa.UniqueConstraint("tenant_id", "code", name=op.f("uq_org_units_tenant_id_code")),
        schema="gateway",
    )
    op.create_index(op.f("ix_gateway_org_units_parent_id"), "org_units", ["parent_id"], unique=False, schema="gateway")
    op.create_index(
        "ix_gateway_org_units_path",
        "org_units",
        ["tenant_id", "path"],
        unique=False,
        schema="gateway",
        postgresql_ops={"path": "text_pattern_ops"},
    )
    op.create_index(op.f("ix_gateway_org_units_tenant_id"), "org_units", ["tenant_id"], unique=False, schema="gateway")
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_key_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
        schema="gateway",
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("default_language", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
        schema="gateway",
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("tenant_id", "email", name=op.f("uq_users_tenant_id_email")),
        schema="gateway",
    )
    op.create_index(op.f("ix_gateway_users_tenant_id"), "users", ["tenant_id"], unique=False, schema="gateway")
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_unit_id"],
            ["gateway.org_units.id"],
            name=op.f("fk_api_tokens_org_unit_id_org_units"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_tokens_prefix")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_api_tokens_tenant_id"), "api_tokens", ["tenant_id"], unique=False, schema="gateway"
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("org_unit_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_unit_id"],
            ["gateway.org_units.id"],
            name=op.f("fk_memberships_org_unit_id_org_units"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["gateway.users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint("user_id", "org_unit_id", name=op.f("uq_memberships_user_id_org_unit_id")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_memberships_org_unit_id"), "memberships", ["org_unit_id"], unique=False, schema="gateway"
    )
    op.create_index(
        op.f("ix_gateway_memberships_tenant_id"), "memberships", ["tenant_id"], unique=False, schema="gateway"
    )
    op.create_index(op.f("ix_gateway_memberships_user_id"), "memberships", ["user_id"], unique=False, schema="gateway")
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("membership_id", sa.Uuid(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["membership_id"],
            ["gateway.memberships.id"],
            name=op.f("fk_refresh_tokens_membership_id_memberships"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["gateway.users.id"], name=op.f("fk_refresh_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
        schema="gateway",
    )
    op.create_index(
        op.f("ix_gateway_refresh_tokens_family_id"), "refresh_tokens", ["family_id"], unique=False, schema="gateway"
    )
    op.create_index(
        op.f("ix_gateway_refresh_tokens_tenant_id"), "refresh_tokens", ["tenant_id"], unique=False, schema="gateway"
    )
    op.create_index(
        op.f("ix_gateway_refresh_tokens_user_id"), "refresh_tokens", ["user_id"], unique=False, schema="gateway"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_refresh_tokens_user_id"), table_name="refresh_tokens", schema="gateway")
    op.drop_index(op.f("ix_gateway_refresh_tokens_tenant_id"), table_name="refresh_tokens", schema="gateway")
    op.drop_index(op.f("ix_gateway_refresh_tokens_family_id"), table_name="refresh_tokens", schema="gateway")
    op.drop_table("refresh_tokens", schema="gateway")
    op.drop_index(op.f("ix_gateway_memberships_user_id"), table_name="memberships", schema="gateway")
    op.drop_index(op.f("ix_gateway_memberships_tenant_id"), table_name="memberships", schema="gateway")
    op.drop_index(op.f("ix_gateway_memberships_org_unit_id"), table_name="memberships", schema="gateway")
    op.drop_table("memberships", schema="gateway")
    op.drop_index(op.f("ix_gateway_api_tokens_tenant_id"), table_name="api_tokens", schema="gateway")
    op.drop_table("api_tokens", schema="gateway")
    op.drop_index(op.f("ix_gateway_users_tenant_id"), table_name="users", schema="gateway")
    op.drop_table("users", schema="gateway")
    op.drop_table("tenants", schema="gateway")
    op.drop_table("signing_keys", schema="gateway")
    op.drop_index(op.f("ix_gateway_org_units_tenant_id"), table_name="org_units", schema="gateway")
    op.drop_index(
        "ix_gateway_org_units_path",
        table_name="org_units",
        schema="gateway",
        postgresql_ops={"path": "text_pattern_ops"},
    )
    op.drop_index(op.f("ix_gateway_org_units_parent_id"), table_name="org_units", schema="gateway")
    op.drop_table("org_units", schema="gateway")
    drop_event_tables()
