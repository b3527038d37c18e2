"""Ingest core: validate -> redact -> dedup/upsert by natural key -> outbox events, all in the caller's transaction
(an asyncpg connection on the partner API's hot path, a SQLAlchemy session for file imports and event consumers);
plus the read queries of the feedback API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.db import new_id, utcnow
from cx_common.pagination import cursor_uuid, encode_cursor
from cx_ingest.feedback import received, upsert
from cx_ingest.feedback.idempotency import STORE_KEY, KeyRecord
from cx_ingest.feedback.models import FeedbackItem, ImportBatch, ImportError_
from cx_ingest.feedback.records import Source, build_row
from cx_ingest.feedback.schemas import RESULTS_JSON, FeedbackIn, RecordResult
from cx_ingest.outbox_bulk import NOTIFY_IF_STAGED, STAGE_ONE_GROUP, Encoded, add_events, one_group_params
from cx_ingest.pg import Db, Sql, refused_value
from cx_ingest.privacy.service import TenantPrivacy, load_privacy

SOURCE = "ingest"
RECEIVED = "feedback.received"
_RECEIVED = events_pb2.FeedbackReceived.DESCRIPTOR.full_name
CHUNK = 500  # rows per upsert statement


async def store_feedback(
    db: Db,
    source: Source,
    valid: Sequence[tuple[int, FeedbackIn]],
    *,
    subject_prefix: str,
    privacy: TenantPrivacy | None = None,
    one_by_one: bool = False,
) -> dict[int, RecordResult]:
    """Upsert by (tenant, source, external_id): new -> created, changed content -> updated (re-analysed),
    identical content -> duplicate. Emits feedback.received for created and updated items. `privacy`: the tenant's
    PII settings when the caller has them already (read here otherwise). `one_by_one`: `upsert_one_by_one`."""
    upsert_rows = upsert_one_by_one if one_by_one else upsert_feedback
    results, payloads = await upsert_rows(db, source, valid, privacy=privacy)
    events = [(source.tenant_id, RECEIVED, payload) for payload in payloads]
    await add_events(db, events, source=SOURCE, subject_prefix=subject_prefix)
    return results


async def upsert_feedback(
    db: Db, source: Source, valid: Sequence[tuple[int, FeedbackIn]], *, privacy: TenantPrivacy | None = None
) -> tuple[dict[int, RecordResult], list[Encoded]]:
    """`store_feedback` without its events: (results, the `feedback.received` payloads of the tenant to stage)."""
    results: dict[int, RecordResult] = {}
    if not valid:
        return results, []
    if privacy is None:
        privacy = await load_privacy(db, source.tenant_id)
    now = utcnow()
    first_index: dict[str, int] = {}
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for index, item in valid:
        if item.external_id in first_index:
            results[index] = _repeat(index, item.external_id, first_index[item.external_id])
            continue
        first_index[item.external_id] = index
        rows.append((index, item.external_id, build_row(source, item, privacy, now)))

    changed: dict[str, tuple[uuid.UUID, bool]] = {}
    existing: dict[str, uuid.UUID] = {}
    for start in range(0, len(rows), CHUNK):
        written, unchanged = await upsert.upsert(
            db,
            tenant_id=source.tenant_id,
            source_key=source.source_key,
            partner_id=source.partner_id,
            rows=[row for _, _, row in rows[start : start + CHUNK]],
        )
        changed.update(written)
        existing.update(unchanged)
    if missing := [ext for _, ext, _ in rows if ext not in changed and ext not in existing]:
        # Neither written nor in the upsert's snapshot: a concurrent request stored the same record after that
        # snapshot was taken (the conflict found its row). Look again.
        existing.update(
            await upsert.existing_ids(
                db, tenant_id=source.tenant_id, source_key=source.source_key, external_ids=missing
            )
        )
    events: list[Encoded] = []
    partner_id = received.partner_field(str(source.partner_id) if source.partner_id else "")
    for index, ext, row in rows:
        if ext in changed:
            row_id, inserted = changed[ext]
            results[index] = RecordResult(
                index=index, external_id=ext, status="accepted", id=row_id, action="created" if inserted else "updated"
            )
            payload = received.feedback_received(
                row,
                row_id,
                partner_id,
                is_conversation=bool(row["turn_texts"]),
                text_length=len(row["text"]) + sum(len(t) for t in row["turn_texts"]),
            )
            events.append(Encoded(_RECEIVED, payload))
        else:
            results[index] = RecordResult(
                index=index,
                external_id=ext,
                status="duplicate",
                id=existing.get(ext),
                reason="identical record already received",
            )
    for result in results.values():  # in-batch repeats point at the item their first occurrence became
        if result.status == "duplicate" and result.id is None and result.external_id in first_index:
            result.id = results[first_index[result.external_id]].id
    return results, events


async def upsert_one_by_one(
    db: Db, source: Source, valid: Sequence[tuple[int, FeedbackIn]], *, privacy: TenantPrivacy | None = None
) -> tuple[dict[int, RecordResult], list[Encoded]]:
    """`upsert_feedback` record by record, each in its own savepoint: a record Postgres refuses is rejected with
    its reason and the others are stored. The slow path, for a batch whose one statement was refused."""
    if privacy is None and valid:
        privacy = await load_privacy(db, source.tenant_id)
    results: dict[int, RecordResult] = {}
    events: list[Encoded] = []
    first_index: dict[str, int] = {}
    for index, item in valid:
        if (first := first_index.get(item.external_id)) is not None:
            results[index] = _repeat(index, item.external_id, first, results[first].id)
            continue
        first_index[item.external_id] = index
        try:
            async with db.savepoint():
                stored, received = await upsert_feedback(db, source, [(index, item)], privacy=privacy)
        except Exception as exc:
            if not refused_value(exc):
                raise
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200] or exc.__class__.__name__
            results[index] = RecordResult(
                index=index,
                external_id=item.external_id,
                status="rejected",
                reason=f"record: could not be stored ({reason})",
            )
            continue
        results.update(stored)
        events.extend(received)
    return results, events


def _repeat(index: int, external_id: str, first: int, first_id: uuid.UUID | None = None) -> RecordResult:
    return RecordResult(
        index=index,
        external_id=external_id,
        status="duplicate",
        id=first_id,
        reason=f"external_id repeats record {first} of this batch",
    )


_IMPORT_ROW = (
    "INSERT INTO imports (id, tenant_id, partner_id, kind, status, total, accepted, duplicate, rejected, results) "
    "VALUES (CAST(:id AS uuid), CAST(:tenant_id AS uuid), CAST(:partner_id AS uuid), CAST(:kind AS text), 'completed', "
    "CAST(:total AS int), CAST(:accepted AS int), CAST(:duplicate AS int), CAST(:rejected AS int), "
    "CAST(:results AS jsonb))"
)
_RECORD_IMPORT = Sql(_IMPORT_ROW)
# The last statement of a partner feedback batch: the outbox rows (and the relay's notification), the imports row
# and the Idempotency-Key with the answer, in one round trip instead of three. Data-modifying CTEs all run (and see
# the same snapshot); `kept` is empty when a concurrent request stored the key first (the caller rolls back).
_FINISH_BATCH = Sql(
    f"WITH {STAGE_ONE_GROUP}, imported AS ({_IMPORT_ROW} RETURNING 1), {STORE_KEY} "  # noqa: S608 - constant
    "SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM imported), "
    f"(SELECT count(*) FROM ({NOTIFY_IF_STAGED}) AS notified)"
)


def _import_params(
    tenant_id: uuid.UUID, partner_id: uuid.UUID | None, kind: str, results: list[RecordResult]
) -> tuple[dict[str, Any], str]:
    """(parameters of `_IMPORT_ROW`, the JSON answer built from the same JSON text of the results)."""
    counts = {"total": len(results), "accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    results_json = RESULTS_JSON.dump_json(results, exclude_none=True).decode()
    import_id = new_id()
    head = json.dumps(
        {"import_id": str(import_id), "kind": kind, "status": "completed", "counts": counts},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    params = {"id": import_id, "tenant_id": tenant_id, "partner_id": partner_id, "kind": kind, **counts}
    params["results"] = results_json
    return params, f'{head[:-1]},"results":{results_json}}}'


async def record_import(
    db: Db,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    kind: str,
    results: list[RecordResult],
) -> str:
    """Store a completed batch with its per-record results; returns the JSON answer (`BatchResult`, no nulls),
    built from the same JSON text that is stored, so `GET /v1/imports/{id}` shows exactly what was answered."""
    params, answer = _import_params(tenant_id, partner_id, kind, results)
    await db.execute(_RECORD_IMPORT, **params)
    return answer


async def finish_batch(
    db: Db,
    key: KeyRecord,
    kind: str,
    results: list[RecordResult],
    received: Sequence[Encoded],
    *,
    subject_prefix: str,
) -> tuple[str, bool]:
    """`add_events` (the tenant's `feedback.received` payloads) + `record_import` + storing the Idempotency-Key
    with the answer, as one statement. Returns (JSON answer, whether the key was stored: False when a concurrent
    request with the same key stored it first)."""
    params, answer = _import_params(key.tenant_id, key.partner_id, kind, results)
    params.update(key.params(answer))
    params.update(one_group_params(key.tenant_id, RECEIVED, received, source=SOURCE, subject_prefix=subject_prefix))
    kept, _, _ = (await db.fetch(_FINISH_BATCH, **params))[0]
    return answer, key.key is None or kept > 0


async def get_import(session: AsyncSession, tenant_id: uuid.UUID, import_id: uuid.UUID) -> ImportBatch | None:
    query = select(ImportBatch).where(ImportBatch.tenant_id == tenant_id, ImportBatch.id == import_id)
    return (await session.execute(query)).scalar_one_or_none()


async def get_feedback(
    session: AsyncSession, tenant_id: uuid.UUID, feedback_id: uuid.UUID, *, units: Select[Any] | None = None
) -> FeedbackItem | None:
    query = select(FeedbackItem).where(FeedbackItem.tenant_id == tenant_id, FeedbackItem.id == feedback_id)
    if units is not None:
        query = query.where(FeedbackItem.org_unit_id.in_(units))
    return (await session.execute(query)).scalar_one_or_none()


async def list_feedback(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    channel: str | None = None,
    analysis_state: str | None = None,
    partner_id: uuid.UUID | None = None,
    units: Select[Any] | None = None,
) -> tuple[list[FeedbackItem], str | None]:
    query = select(FeedbackItem).where(FeedbackItem.tenant_id == tenant_id)
    if channel:
        query = query.where(FeedbackItem.channel == channel)
    if analysis_state:
        query = query.where(FeedbackItem.analysis_state == analysis_state)
    if partner_id:
        query = query.where(FeedbackItem.partner_id == partner_id)
    if units is not None:
        query = query.where(FeedbackItem.org_unit_id.in_(units))
    if (after := cursor_uuid(cursor)) is not None:
        query = query.where(FeedbackItem.id > after)
    rows = list((await session.execute(query.order_by(FeedbackItem.id).limit(limit + 1))).scalars())
    next_cursor = encode_cursor({"id": str(rows[limit - 1].id)}) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def import_error_page(
    session: AsyncSession, tenant_id: uuid.UUID, import_id: uuid.UUID, *, after: int, limit: int
) -> list[ImportError_]:
    query = (
        select(ImportError_)
        .where(
            ImportError_.tenant_id == tenant_id, ImportError_.import_id == import_id, ImportError_.row_number > after
        )
        .order_by(ImportError_.row_number)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
