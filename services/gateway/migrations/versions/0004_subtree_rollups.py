"""subtree rollups: per org unit × day totals of everything at or below the unit (daily counters, aspects with
polarities as columns, terms), backfilled from the per-unit rollups

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:00:00
"""

# ruff: noqa: S608 - the SQL below is built from constants only

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAILY = (
    "responses", "nps_count", "promoters", "passives", "detractors", "csat_sum", "csat_count", "ces_sum", "ces_count",
    "feedback", "negative", "neutral", "positive", "pain", "itch", "delight", "complaints", "unmatched",
    "tickets_created", "tickets_resolved", "tickets_resolved_in_sla", "tickets_escalated", "tasks_created",
    "tasks_completed", "tasks_accepted",
)  # fmt: skip
UNKNOWN = "'00000000-0000-0000-0000-000000000000'::uuid"
# every unit with each unit on its path (itself included); UNKNOWN_ORG stands for itself in every tenant
SCOPES = f"""WITH scopes AS (
    SELECT u.tenant_id, u.id AS unit_id, a.scope::uuid AS scope_id
    FROM gateway.org_units u, unnest(string_to_array(btrim(u.path, '/'), '/')) AS a(scope)
    UNION ALL SELECT t.id, {UNKNOWN}, {UNKNOWN} FROM gateway.tenants t
)"""


def _dims() -> list[sa.Column[object]]:
    return [
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("scope_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "rollup_subtree_daily",
        *_dims(),
        *(sa.Column(c, sa.Float() if c.endswith("_sum") else sa.Integer(), nullable=False) for c in DAILY),
        sa.PrimaryKeyConstraint("tenant_id", "scope_id", "day", name=op.f("pk_rollup_subtree_daily")),
        schema="gateway",
    )
    op.create_table(
        "rollup_subtree_aspects",
        *_dims(),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("mentions", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "scope_id", "level", "day", "path", name=op.f("pk_rollup_subtree_aspects")
        ),
        schema="gateway",
    )
    op.create_table(
        "rollup_subtree_terms",
        *_dims(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("term", sa.String(length=200), nullable=False),
        sa.Column("mentions", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "scope_id", "kind", "day", "term", name=op.f("pk_rollup_subtree_terms")),
        schema="gateway",
    )
    sums = ", ".join(f"sum(r.{c})" for c in DAILY)
    op.execute(
        f"""{SCOPES}
        INSERT INTO gateway.rollup_subtree_daily (tenant_id, scope_id, day, {", ".join(DAILY)})
        SELECT r.tenant_id, s.scope_id, r.day, {sums}
        FROM gateway.rollup_daily r JOIN scopes s ON s.tenant_id = r.tenant_id AND s.unit_id = r.org_unit_id
        GROUP BY r.tenant_id, s.scope_id, r.day"""
    )
    polarities = ", ".join(
        f"coalesce(sum(r.mentions) FILTER (WHERE r.polarity = '{p}'), 0)" for p in ("negative", "neutral", "positive")
    )
    op.execute(
        f"""{SCOPES}
        INSERT INTO gateway.rollup_subtree_aspects
            (tenant_id, scope_id, level, day, path, mentions, negative, neutral, positive)
        SELECT r.tenant_id, s.scope_id, r.level, r.day, r.path, sum(r.mentions), {polarities}
        FROM gateway.rollup_aspects r JOIN scopes s ON s.tenant_id = r.tenant_id AND s.unit_id = r.org_unit_id
        GROUP BY r.tenant_id, s.scope_id, r.level, r.day, r.path"""
    )
    op.execute(
        f"""{SCOPES}
        INSERT INTO gateway.rollup_subtree_terms (tenant_id, scope_id, kind, day, term, mentions, negative)
        SELECT r.tenant_id, s.scope_id, r.kind, r.day, r.term, sum(r.mentions), sum(r.negative)
        FROM gateway.rollup_terms r JOIN scopes s ON s.tenant_id = r.tenant_id AND s.unit_id = r.org_unit_id
        GROUP BY r.tenant_id, s.scope_id, r.kind, r.day, r.term"""
    )


def downgrade() -> None:
    op.drop_table("rollup_subtree_terms", schema="gateway")
    op.drop_table("rollup_subtree_aspects", schema="gateway")
    op.drop_table("rollup_subtree_daily", schema="gateway")
