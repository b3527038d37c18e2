"""The natural-key upsert of feedback items as one constant statement: the rows travel as one array per column and
are expanded server-side with `unnest`, so the SQL text never changes (asyncpg prepares it once per connection and
SQLAlchemy compiles it once per process) whatever the batch size, and a batch of any size is one round trip.

(A multi-row `INSERT … VALUES` built per request costs a fresh SQLAlchemy compile of rows × columns bind parameters
each time — about 10 ms of CPU for 100 rows — and a new prepared statement per distinct row count.)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from cx_ingest.pg import Db, Sql

# (column, Postgres type of its parameter, SQL that reads it from the unnest row `u`). Text columns travel as one
# string each (`joined`): asyncpg checks every element of an array parameter for nesting (two `isinstance` calls
# against abstract base classes, in Python) and encodes it on its own; for 100 rows x 19 text columns that was a
# fifth of the process's CPU per request. Postgres splits them again with `string_to_array`.
ROW_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("id", "joined uuid", "u.id"),  # ids as text: parsed by Postgres, not one Python object each
    ("external_id", "joined", "u.external_id"),
    ("channel", "joined", "u.channel"),
    ("touchpoint_id", "joined", "u.touchpoint_id"),
    ("journey_stage", "joined", "u.journey_stage"),
    ("org_unit_id", "joined", "u.org_unit_id"),
    ("customer_key", "joined", "u.customer_key"),
    ("product_sku", "joined", "u.product_sku"),
    ("agent_id", "joined", "u.agent_id"),
    ("language", "joined", "u.language"),
    ("occurred_at", "timestamptz[]", "u.occurred_at"),
    ("title", "joined", "u.title"),
    ("text", "joined", "u.text"),
    ("turns", "joined", "CAST(NULLIF(u.turns, '') AS jsonb)"),  # NULL travels as '' (never a JSON text)
    ("raw_text", "joined", "NULLIF(u.raw_text, '')"),  # NULL travels as '' (an empty text is not kept)
    ("raw_turns", "joined", "CAST(NULLIF(u.raw_turns, '') AS jsonb)"),
    ("redactions", "joined", "CAST(u.redactions AS jsonb)"),
    ("scores", "joined", "CAST(u.scores AS jsonb)"),
    ("attributes", "joined", "CAST(u.attributes AS jsonb)"),
    ("source_response_id", "joined", "u.source_response_id"),
    ("content_hash", "joined", "u.content_hash"),
)
NULL_AS_EMPTY = frozenset(("turns", "raw_text", "raw_turns"))
UPDATED_COLUMNS = tuple(name for name, _, _ in ROW_COLUMNS if name not in ("id", "external_id", "source_response_id"))
# Characters tried in turn as the separator of the joined columns (the first that no value of the call contains).
SEPARATORS = "\x1f\x1e\x1d\x1c\ufffe\uffff" + "".join(chr(c) for c in range(0xE000, 0xF900))


def _param(name: str, kind: str, *, joined: bool = True) -> str:
    if kind.startswith("joined"):
        if not joined:  # plain arrays: for the batch whose values use every separator candidate
            return f"CAST(:{name} AS {kind.split()[1] if ' ' in kind else 'text'}[])"
        # "<sep>v1<sep>v2…" -> {v1, v2, …} (the leading separator keeps a lone "" a value)
        split = f"(string_to_array(CAST(:{name} AS text), CAST(:sep AS text)))[2:]"
        return split if kind == "joined" else f"CAST({split} AS {kind.split()[1]}[])"
    return f"CAST(:{name} AS {kind})"


# Plain columns travel as plain values: letting Postgres pull them out of one JSON document per row instead costs
# it about 3x the CPU of the whole insert (measured), more than the Python it saves. The statement also answers
# the ids of the rows that were left alone (same content): they are looked up in the snapshot the statement
# started from, which the insert does not change, so a row is either written (`inserted` true/false) or unchanged
# (`inserted` NULL), in one round trip. The lookup is one probe of the natural-key index per left-alone row (a
# lateral join on the whole key): matching `external_id = ANY(…)` instead let the planner, with statistics from
# when the table was small, scan every row of the tenant.
def _upsert_sql(*, joined: bool) -> str:
    return (
        "WITH u AS (SELECT * FROM unnest("  # noqa: S608 - built from constants
        + ", ".join(_param(name, kind, joined=joined) for name, kind, _ in ROW_COLUMNS)
        + ") AS u("
        + _UPSERT_REST
    )


_UPSERT_REST = (
    ", ".join(name for name, _, _ in ROW_COLUMNS)  # noqa: S608 - built from constants
    + ")), w AS (INSERT INTO feedback_items AS f (tenant_id, source_key, partner_id, "
    + ", ".join(name for name, _, _ in ROW_COLUMNS)
    + ", revision, analysis_state, attempts, analysis_count) "
    "SELECT CAST(:tenant_id AS uuid), CAST(:source_key AS text), CAST(:partner_id AS uuid), "
    + ", ".join(expr for _, _, expr in ROW_COLUMNS)
    + ", 1, 'pending', 0, 0 FROM u ON CONFLICT ON CONSTRAINT uq_feedback_items_natural_key DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in UPDATED_COLUMNS)
    + ", revision = f.revision + 1, analysis_state = 'pending', attempts = 0, next_attempt_at = now(), "
    "lease_until = NULL, claim_token = NULL, last_error = NULL, updated_at = now() "
    "WHERE f.content_hash <> EXCLUDED.content_hash "
    "RETURNING f.id, f.external_id, (f.xmax = 0) AS inserted) "
    "SELECT id, external_id, inserted FROM w UNION ALL "
    "SELECT f.id, f.external_id, NULL FROM (SELECT external_id FROM u EXCEPT ALL SELECT external_id FROM w) AS d "
    "CROSS JOIN LATERAL (SELECT id, external_id FROM feedback_items "
    "WHERE tenant_id = CAST(:tenant_id AS uuid) AND source_key = CAST(:source_key AS text) "
    "AND external_id = d.external_id LIMIT 1) AS f"  # LIMIT: a probe per row, never flattened into a scan
)
UPSERT = Sql(_upsert_sql(joined=True))
UPSERT_ARRAYS = Sql(_upsert_sql(joined=False))
_EXISTING = Sql(
    "SELECT external_id, id FROM feedback_items "
    "WHERE tenant_id = CAST(:tenant_id AS uuid) AND source_key = CAST(:source_key AS text) "
    "AND external_id = ANY(CAST(:external_ids AS text[]))"
)


def _joined(columns: dict[str, list[str]]) -> tuple[str, dict[str, str]] | None:
    """(separator, {column: "<sep>v1<sep>v2…"}) with a separator that none of the values contains; None when the
    values use every candidate."""
    for sep in SEPARATORS:
        joined = {name: sep + sep.join(values) for name, values in columns.items()}
        if all(text.count(sep) == len(columns[name]) for name, text in joined.items()):
            return sep, joined
    return None


async def upsert(
    db: Db,
    *,
    tenant_id: uuid.UUID,
    source_key: str,
    partner_id: uuid.UUID | None,
    rows: Sequence[dict[str, Any]],
) -> tuple[dict[str, tuple[uuid.UUID, bool]], dict[str, uuid.UUID]]:
    """Insert new rows, update rows whose content hash changed, leave identical ones alone. Returns
    (`{external_id: (id, created)}` of the rows written, `{external_id: id}` of those left alone). `rows` carry the
    `ROW_COLUMNS` (JSON as text) and distinct external ids."""
    params: dict[str, Any] = {"tenant_id": tenant_id, "source_key": source_key, "partner_id": partner_id}
    texts: dict[str, list[str]] = {}
    for name, kind, _ in ROW_COLUMNS:
        if not kind.startswith("joined"):
            params[name] = [row[name] for row in rows]
        elif name in NULL_AS_EMPTY:
            texts[name] = [row[name] or "" for row in rows]
        else:
            texts[name] = [row[name] for row in rows]
    statement = UPSERT
    if (found := _joined(texts)) is not None:
        params["sep"], joined = found
        params.update(joined)
    else:  # the values use every separator candidate (deliberately, one hopes): one array per column
        statement = UPSERT_ARRAYS
        params.update(texts)
        params["id"] = [uuid.UUID(value) for value in texts["id"]]
    written: dict[str, tuple[uuid.UUID, bool]] = {}
    unchanged: dict[str, uuid.UUID] = {}
    for row_id, external_id, inserted in await db.fetch(statement, **params):
        if inserted is None:
            unchanged[external_id] = row_id
        else:
            written[external_id] = (row_id, bool(inserted))
    return written, unchanged


async def existing_ids(
    db: Db, *, tenant_id: uuid.UUID, source_key: str, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    if not external_ids:
        return {}
    rows = await db.fetch(_EXISTING, tenant_id=tenant_id, source_key=source_key, external_ids=list(external_ids))
    return {ext: row_id for ext, row_id in rows}
