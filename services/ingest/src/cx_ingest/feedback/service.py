"""Ingest core: validate -> redact -> dedup/upsert by natural key -> outbox events, all in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError
from sqlalchemy import Select, Table, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.db import new_id, utcnow
from cx_common.pagination import decode_cursor, encode_cursor
from cx_ingest.feedback.models import FeedbackItem, ImportBatch, ImportError_, ODataRecord
from cx_ingest.feedback.schemas import FeedbackIn, FieldError, ODataIn, RecordResult
from cx_ingest.outbox_bulk import add_events
from cx_ingest.partners.mapping import FieldMapping, apply_mapping
from cx_ingest.privacy.service import TenantPrivacy, load

SOURCE = "ingest"
CHUNK = 500  # rows per INSERT (asyncpg allows 32767 bind parameters per statement)
ODATA_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Source:
    tenant_id: uuid.UUID
    source_key: str  # partner:<id> | survey | import:<id>
    partner_id: uuid.UUID | None
    default_channel: str
    default_language: str = ""


def canonical_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def field_errors(exc: ValidationError) -> list[FieldError]:
    return [
        FieldError(field=".".join(str(p) for p in e["loc"]) or "record", message=e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    ]


def validate_records(
    raw_items: Sequence[Any], mapping: FieldMapping | None, default_channel: str
) -> tuple[list[tuple[int, FeedbackIn]], dict[int, RecordResult]]:
    valid: list[tuple[int, FeedbackIn]] = []
    rejected: dict[int, RecordResult] = {}
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            rejected[index] = RecordResult(index=index, status="rejected", reason="record: must be an object")
            continue
        record = apply_mapping(mapping, raw) if mapping is not None else dict(raw)
        record.setdefault("channel", default_channel)
        try:
            valid.append((index, FeedbackIn.model_validate(record)))
        except ValidationError as exc:
            errors = field_errors(exc)
            ext = record.get("external_id")
            rejected[index] = RecordResult(
                index=index,
                external_id=str(ext) if isinstance(ext, str | int) else None,
                status="rejected",
                reason=f"{errors[0].field}: {errors[0].message}",
                errors=errors,
            )
    return valid, rejected


def _ts(value: dt.datetime | None) -> Timestamp:
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(value)
    return ts


def feedback_context(row: dict[str, Any] | FeedbackItem) -> events_pb2.FeedbackContext:
    get = row.get if isinstance(row, dict) else (lambda k, d=None: getattr(row, k, d))
    partner_id = get("partner_id")
    return events_pb2.FeedbackContext(
        feedback_id=str(get("id")),
        channel=get("channel") or "",
        touchpoint_id=get("touchpoint_id") or "",
        journey_stage=get("journey_stage") or "",
        org_unit_id=get("org_unit_id") or "",
        customer_key=get("customer_key") or "",
        product_sku=get("product_sku") or "",
        language=get("language") or "",
        occurred_at=_ts(get("occurred_at")),
        partner_id=str(partner_id) if partner_id else "",
        external_id=get("external_id") or "",
        source_response_id=get("source_response_id") or "",
        agent_id=get("agent_id") or "",
    )


def _source_response_id(source: Source, item: FeedbackIn) -> str:
    return str(item.attributes.get("source_response_id", "")) if source.source_key == "survey" else ""


def _attr_strings(attributes: dict[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in attributes.items()}


def _row(source: Source, item: FeedbackIn, privacy: TenantPrivacy, now: dt.datetime) -> dict[str, Any]:
    content = item.model_dump(mode="json", exclude_none=True)
    redactions: dict[str, int] = {}

    def redact(text: str) -> str:
        result = privacy.redactor.redact(text)
        for name, n in result.counts.items():
            redactions[name] = redactions.get(name, 0) + n
        return result.text

    turns = raw_turns = None
    if item.turns:
        ordered = sorted(enumerate(item.turns), key=lambda p: (p[1].seq if p[1].seq is not None else p[0], p[0]))
        raw_turns = [{**t.model_dump(mode="json", exclude_none=True), "seq": seq} for seq, (_, t) in enumerate(ordered)]
        turns = [{**t, "text": redact(t["text"])} for t in raw_turns]
    text = redact(item.text) if item.text else ""
    agent_id = item.agent_id or next((t.agent_id for t in item.turns or [] if t.agent_id), None) or ""
    return {
        "id": new_id(),
        "tenant_id": source.tenant_id,
        "source_key": source.source_key,
        "partner_id": source.partner_id,
        "external_id": item.external_id,
        "channel": item.channel or source.default_channel,
        "touchpoint_id": item.touchpoint_id or "",
        "journey_stage": item.journey_stage or "",
        "org_unit_id": item.org_unit_id or "",
        "customer_key": item.customer_key or "",
        "product_sku": item.product_sku or "",
        "agent_id": agent_id,
        "language": item.language or source.default_language or "",
        "occurred_at": item.occurred_at or now,
        "title": redact(item.title) if item.title else "",
        "text": text,
        "turns": turns,
        "raw_text": item.text if privacy.keep_raw and item.text else None,
        "raw_turns": raw_turns if privacy.keep_raw else None,
        "redactions": redactions,
        "scores": item.scores,
        "attributes": item.attributes,
        "source_response_id": str(item.attributes.get("source_response_id", ""))
        if source.source_key == "survey"
        else "",
        "content_hash": canonical_hash(content),
        "analysis_state": "pending",
        "attempts": 0,
        "revision": 1,
        "analysis_count": 0,
    }


_UPDATED_COLUMNS = (
    "channel",
    "touchpoint_id",
    "journey_stage",
    "org_unit_id",
    "customer_key",
    "product_sku",
    "agent_id",
    "language",
    "occurred_at",
    "title",
    "text",
    "turns",
    "raw_text",
    "raw_turns",
    "redactions",
    "scores",
    "attributes",
    "content_hash",
)


async def store_feedback(
    session: AsyncSession, source: Source, valid: Sequence[tuple[int, FeedbackIn]], *, subject_prefix: str
) -> dict[int, RecordResult]:
    """Upsert by (tenant, source, external_id): new -> created, changed content -> updated (re-analysed),
    identical content -> duplicate. Emits feedback.received for created and updated items."""
    results: dict[int, RecordResult] = {}
    if not valid:
        return results
    privacy = await load(session, source.tenant_id)
    now = utcnow()
    first_index: dict[str, int] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, item in valid:
        if item.external_id in first_index:
            results[index] = RecordResult(
                index=index,
                external_id=item.external_id,
                status="duplicate",
                reason=f"external_id repeats record {first_index[item.external_id]} of this batch",
            )
            continue
        first_index[item.external_id] = index
        rows.append((index, _row(source, item, privacy, now)))

    table = cast(Table, FeedbackItem.__table__)
    changed: dict[str, tuple[uuid.UUID, bool]] = {}
    events: list[tuple[uuid.UUID, str, Any]] = []
    by_external = {row["external_id"]: row for _, row in rows}
    for start in range(0, len(rows), CHUNK):
        chunk = [row for _, row in rows[start : start + CHUNK]]
        stmt = pg_insert(table).values(chunk)
        excluded = stmt.excluded
        set_: dict[str, Any] = {name: excluded[name] for name in _UPDATED_COLUMNS}
        set_.update(
            revision=table.c.revision + 1,
            analysis_state="pending",
            attempts=0,
            next_attempt_at=func.now(),
            lease_until=None,
            claim_token=None,
            last_error=None,
            updated_at=func.now(),
        )
        upsert = stmt.on_conflict_do_update(
            constraint="uq_feedback_items_natural_key", set_=set_, where=table.c.content_hash != excluded.content_hash
        ).returning(table.c.id, table.c.external_id, literal_column("(xmax = 0)").label("inserted"))
        for row_id, external_id, inserted in (await session.execute(upsert)).all():
            changed[external_id] = (row_id, bool(inserted))
    missing = [ext for ext in by_external if ext not in changed]
    existing: dict[str, uuid.UUID] = {}
    if missing:
        query = select(table.c.external_id, table.c.id).where(
            table.c.tenant_id == source.tenant_id,
            table.c.source_key == source.source_key,
            table.c.external_id.in_(missing),
        )
        existing = {ext: row_id for ext, row_id in (await session.execute(query)).all()}
    for index, row in rows:
        ext = row["external_id"]
        if ext in changed:
            row_id, inserted = changed[ext]
            results[index] = RecordResult(
                index=index, external_id=ext, status="accepted", id=row_id, action="created" if inserted else "updated"
            )
            payload = events_pb2.FeedbackReceived(
                context=feedback_context({**row, "id": row_id}),
                is_conversation=bool(row["turns"]),
                text_length=len(row["text"]) + sum(len(t["text"]) for t in row["turns"] or []),
            )
            events.append((source.tenant_id, "feedback.received", payload))
        else:
            results[index] = RecordResult(
                index=index,
                external_id=ext,
                status="duplicate",
                id=existing.get(ext),
                reason="identical record already received",
            )
    await add_events(session, events, source=SOURCE, subject_prefix=subject_prefix)
    for result in results.values():  # in-batch repeats point at the item their first occurrence became
        if result.status == "duplicate" and result.id is None and result.external_id in first_index:
            result.id = results[first_index[result.external_id]].id
    return results


def validate_odata(raw_items: Sequence[Any]) -> tuple[list[tuple[int, ODataIn]], dict[int, RecordResult]]:
    valid: list[tuple[int, ODataIn]] = []
    rejected: dict[int, RecordResult] = {}
    for index, raw in enumerate(raw_items):
        try:
            valid.append((index, ODataIn.model_validate(raw)))
        except ValidationError as exc:
            errors = field_errors(exc)
            ext = raw.get("record_key") if isinstance(raw, dict) else None
            rejected[index] = RecordResult(
                index=index,
                external_id=str(ext) if isinstance(ext, str | int) else None,
                status="rejected",
                reason=f"{errors[0].field}: {errors[0].message}",
                errors=errors,
            )
    return valid, rejected


async def store_odata(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    kind: str,
    valid: Sequence[tuple[int, ODataIn]],
    *,
    subject_prefix: str,
) -> dict[int, RecordResult]:
    results: dict[int, RecordResult] = {}
    table = cast(Table, ODataRecord.__table__)
    seen: dict[str, int] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, item in valid:
        if item.record_key in seen:
            results[index] = RecordResult(
                index=index,
                external_id=item.record_key,
                status="duplicate",
                reason=f"record_key repeats record {seen[item.record_key]} of this batch",
            )
            continue
        seen[item.record_key] = index
        rows.append(
            (
                index,
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "kind": kind,
                    "record_key": item.record_key,
                    "partner_id": partner_id,
                    "customer_key": item.customer_key or "",
                    "org_unit_id": item.org_unit_id or "",
                    "occurred_at": item.occurred_at,
                    "attributes": item.attributes,
                    "content_hash": canonical_hash(item.model_dump(mode="json")),
                    "revision": 1,
                },
            )
        )
    changed: dict[str, tuple[uuid.UUID, bool]] = {}
    for start in range(0, len(rows), CHUNK):
        stmt = pg_insert(table).values([row for _, row in rows[start : start + CHUNK]])
        excluded = stmt.excluded
        upsert = stmt.on_conflict_do_update(
            constraint="uq_odata_records_natural_key",
            set_={
                "customer_key": excluded.customer_key,
                "org_unit_id": excluded.org_unit_id,
                "occurred_at": excluded.occurred_at,
                "attributes": excluded.attributes,
                "content_hash": excluded.content_hash,
                "partner_id": excluded.partner_id,
                "revision": table.c.revision + 1,
                "updated_at": func.now(),
            },
            where=table.c.content_hash != excluded.content_hash,
        ).returning(table.c.id, table.c.record_key, literal_column("(xmax = 0)").label("inserted"))
        for row_id, key, inserted in (await session.execute(upsert)).all():
            changed[key] = (row_id, bool(inserted))
    events: list[tuple[uuid.UUID, str, Any]] = []
    for index, row in rows:
        key = row["record_key"]
        if key not in changed:
            results[index] = RecordResult(
                index=index, external_id=key, status="duplicate", reason="identical record already received"
            )
            continue
        row_id, inserted = changed[key]
        results[index] = RecordResult(
            index=index, external_id=key, status="accepted", id=row_id, action="created" if inserted else "updated"
        )
        payload = events_pb2.ODataUpserted(
            kind=kind,
            record_key=key,
            customer_key=row["customer_key"],
            attributes={
                k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in row["attributes"].items()
            },
            occurred_at=_ts(row["occurred_at"]),
            org_unit_id=row["org_unit_id"],
        )
        events.append((tenant_id, "odata.upserted", payload))
    await add_events(session, events, source=SOURCE, subject_prefix=subject_prefix)
    return results


async def record_import(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    kind: str,
    results: list[RecordResult],
) -> ImportBatch:
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    batch = ImportBatch(
        tenant_id=tenant_id,
        partner_id=partner_id,
        kind=kind,
        status="completed",
        total=len(results),
        results=[r.model_dump(mode="json", exclude_none=True) for r in results],
        **counts,
    )
    session.add(batch)
    await session.flush()
    return batch


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
    if (after := decode_cursor(cursor)) is not None:
        query = query.where(FeedbackItem.id > uuid.UUID(str(after.get("id"))))
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
