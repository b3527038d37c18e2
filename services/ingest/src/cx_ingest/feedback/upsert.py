"""The natural-key upsert of feedback items as one constant statement: the rows travel as one array per column and
are expanded server-side with `unnest`, so the SQL text never changes (asyncpg prepares it once per connection and
SQLAlchemy compiles it once per process) whatever the batch size, and a batch of any size is one round trip.

(A multi-row `INSERT … VALUES` built per request costs a fresh SQLAlchemy compile of rows × columns bind parameters
each time — about 10 ms of CPU for 100 rows — and a new prepared statement per distinct row count.)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from cx_ingest.pg import Db, Sql

# Arrays the statement receives, one element per row: (name, Postgres element type).
ARRAYS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"),
    ("doc", "text"),  # the record as validated (`FeedbackIn` JSON, also what `content_hash` hashes)
    ("title", "text"),  # redacted
    ("text", "text"),  # redacted
    ("turns", "text"),  # JSON, redacted
    ("raw_text", "text"),
    ("raw_turns", "text"),  # JSON
    ("redactions", "text"),  # JSON
    ("agent_id", "text"),
    ("content_hash", "text"),
)
# Column <- SQL over the unnest row `u` and its record `d` (jsonb); defaults as in `records.build_row`.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "u.id"),
    ("external_id", "d->>'external_id'"),
    ("channel", "coalesce(d->>'channel', CAST(:default_channel AS text))"),
    ("touchpoint_id", "coalesce(d->>'touchpoint_id', '')"),
    ("journey_stage", "coalesce(d->>'journey_stage', '')"),
    ("org_unit_id", "coalesce(d->>'org_unit_id', '')"),
    ("customer_key", "coalesce(d->>'customer_key', '')"),
    ("product_sku", "coalesce(d->>'product_sku', '')"),
    ("agent_id", "u.agent_id"),
    ("language", "coalesce(d->>'language', CAST(:default_language AS text))"),
    ("occurred_at", "coalesce(CAST(d->>'occurred_at' AS timestamptz), CAST(:now AS timestamptz))"),
    ("title", "u.title"),
    ("text", "u.text"),
    ("turns", "CAST(u.turns AS jsonb)"),
    ("raw_text", "u.raw_text"),
    ("raw_turns", "CAST(u.raw_turns AS jsonb)"),
    ("redactions", "CAST(u.redactions AS jsonb)"),
    ("scores", "d->'scores'"),
    ("attributes", "d->'attributes'"),
    (
        "source_response_id",
        "CASE WHEN CAST(:source_key AS text) = 'survey' THEN coalesce(d->'attributes'->>'source_response_id', '') "
        "ELSE '' END",
    ),
    ("content_hash", "u.content_hash"),
)
UPDATED_COLUMNS = tuple(name for name, _ in COLUMNS if name not in ("id", "external_id", "source_response_id"))

UPSERT = Sql(
    "INSERT INTO feedback_items AS f (tenant_id, source_key, partner_id, "  # noqa: S608 - built from constants
    + ", ".join(name for name, _ in COLUMNS)
    + ", revision, analysis_state, attempts, analysis_count) "
    "SELECT CAST(:tenant_id AS uuid), CAST(:source_key AS text), CAST(:partner_id AS uuid), "
    + ", ".join(expr for _, expr in COLUMNS)
    + ", 1, 'pending', 0, 0 FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in ARRAYS)
    + ") AS u("
    + ", ".join(name for name, _ in ARRAYS)
    + ") CROSS JOIN LATERAL (SELECT CAST(u.doc AS jsonb) AS d) AS r"
    " ON CONFLICT ON CONSTRAINT uq_feedback_items_natural_key DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in UPDATED_COLUMNS)
    + ", revision = f.revision + 1, analysis_state = 'pending', attempts = 0, next_attempt_at = now(), "
    "lease_until = NULL, claim_token = NULL, last_error = NULL, updated_at = now() "
    "WHERE f.content_hash <> EXCLUDED.content_hash "
    "RETURNING f.id, f.external_id, (f.xmax = 0) AS inserted"
)
_EXISTING = Sql(
    "SELECT external_id, id FROM feedback_items "
    "WHERE tenant_id = CAST(:tenant_id AS uuid) AND source_key = CAST(:source_key AS text) "
    "AND external_id = ANY(CAST(:external_ids AS text[]))"
)


async def upsert(
    db: Db,
    *,
    tenant_id: uuid.UUID,
    source_key: str,
    partner_id: uuid.UUID | None,
    default_channel: str,
    default_language: str,
    now: dt.datetime,
    rows: Sequence[dict[str, Any]],
) -> dict[str, tuple[uuid.UUID, bool]]:
    """Insert new rows, update rows whose content hash changed; `{external_id: (id, created)}` of those written.
    `rows` carry the `ARRAYS` fields (JSON as text). Identical rows are left alone (and absent from the answer)."""
    params: dict[str, Any] = {
        "tenant_id": tenant_id,
        "source_key": source_key,
        "partner_id": partner_id,
        "default_channel": default_channel,
        "default_language": default_language,
        "now": now,
    }
    for name, _ in ARRAYS:
        params[name] = [row[name] for row in rows]
    result = await db.fetch(UPSERT, **params)
    return {external_id: (row_id, bool(inserted)) for row_id, external_id, inserted in result}


async def existing_ids(
    db: Db, *, tenant_id: uuid.UUID, source_key: str, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    if not external_ids:
        return {}
    rows = await db.fetch(_EXISTING, tenant_id=tenant_id, source_key=source_key, external_ids=list(external_ids))
    return {ext: row_id for ext, row_id in rows}
