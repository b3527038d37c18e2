"""O-data (orders, customers, CRM attributes): validated per record, upserted by (tenant, kind, record_key) in one
constant statement per chunk (arrays + `unnest`, like feedback items), `odata.upserted` per created/updated record."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from cx.events.v1 import events_pb2
from cx_common.db import new_id
from cx_ingest.feedback.records import field_rejected, rejected, timestamp, unstorable_text
from cx_ingest.feedback.schemas import ODataIn, RecordResult
from cx_ingest.outbox_bulk import add_events
from cx_ingest.pg import Db, Sql

ODATA_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
CHUNK = 1000

_UPSERT = Sql(
    "INSERT INTO odata_records AS o (id, tenant_id, kind, record_key, partner_id, customer_key, org_unit_id, "
    "occurred_at, attributes, content_hash, revision) "
    "SELECT u.id, CAST(:tenant_id AS uuid), CAST(:kind AS text), u.record_key, CAST(:partner_id AS uuid), "
    "u.customer_key, u.org_unit_id, u.occurred_at, CAST(u.attributes AS jsonb), u.content_hash, 1 "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:record_keys AS text[]), CAST(:customer_keys AS text[]), "
    "CAST(:org_unit_ids AS text[]), CAST(:occurred_ats AS timestamptz[]), CAST(:attributes AS text[]), "
    "CAST(:content_hashes AS text[])) "
    "AS u(id, record_key, customer_key, org_unit_id, occurred_at, attributes, content_hash) "
    "ON CONFLICT ON CONSTRAINT uq_odata_records_natural_key DO UPDATE SET customer_key = EXCLUDED.customer_key, "
    "org_unit_id = EXCLUDED.org_unit_id, occurred_at = EXCLUDED.occurred_at, attributes = EXCLUDED.attributes, "
    "content_hash = EXCLUDED.content_hash, partner_id = EXCLUDED.partner_id, revision = o.revision + 1, "
    "updated_at = now() WHERE o.content_hash <> EXCLUDED.content_hash "
    "RETURNING o.id, o.record_key, (o.xmax = 0) AS inserted"
)

# The ids of records the upsert left as they were (identical content: no row comes back from it).
_EXISTING = Sql(
    "SELECT id, record_key FROM odata_records WHERE tenant_id = CAST(:tenant_id AS uuid) "
    "AND kind = CAST(:kind AS text) AND record_key = ANY(CAST(:record_keys AS text[]))"
)


def validate_odata(
    raw_items: Sequence[Any], *, check_text: bool = False
) -> tuple[list[tuple[int, ODataIn]], dict[int, RecordResult]]:
    """`check_text`: see `records.validate_records`."""
    valid: list[tuple[int, ODataIn]] = []
    refused: dict[int, RecordResult] = {}
    for index, raw in enumerate(raw_items):
        if check_text and isinstance(raw, dict) and (bad := unstorable_text(index, raw, "record_key")) is not None:
            refused[index] = bad
            continue
        try:
            item = ODataIn.model_validate(raw)
        except ValidationError as exc:
            refused[index] = rejected(index, exc, raw.get("record_key") if isinstance(raw, dict) else None)
            continue
        if (field := non_finite(item.attributes, ("attributes",))) is not None:
            # NaN / Infinity: JSON (and jsonb) has no such number
            refused[index] = field_rejected(index, item.record_key, field, "must be a finite number")
            continue
        valid.append((index, item))
    return valid, refused


def non_finite(value: Any, path: tuple[str, ...]) -> str | None:
    """The path of the first NaN or Infinity in a decoded JSON value (None: there is none)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ".".join(path)
    if isinstance(value, dict):
        for key, item in value.items():
            if (found := non_finite(item, (*path, str(key)))) is not None:
                return found
    elif isinstance(value, list):
        for position, item in enumerate(value):
            if (found := non_finite(item, (*path, str(position)))) is not None:
                return found
    return None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A naive time is UTC, as in the event (asyncpg would store it as this process's local time). Only the
    stored value: the content hash stays that of the record as sent, so records stored before still dedup."""
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


def _hash(item: ODataIn) -> str:
    fixed = item.model_dump_json(exclude={"attributes"})
    attributes = json.dumps(item.attributes, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{fixed}\n{attributes}".encode()).hexdigest()


async def store_odata(
    db: Db,
    tenant_id: uuid.UUID,
    partner_id: uuid.UUID | None,
    kind: str,
    valid: Sequence[tuple[int, ODataIn]],
    *,
    subject_prefix: str,
    source: str,
) -> dict[int, RecordResult]:
    results: dict[int, RecordResult] = {}
    seen: dict[str, int] = {}
    rows: list[tuple[int, ODataIn]] = []
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
        rows.append((index, item))
    changed: dict[str, tuple[uuid.UUID, bool]] = {}
    for start in range(0, len(rows), CHUNK):
        chunk = [item for _, item in rows[start : start + CHUNK]]
        written = await db.fetch(
            _UPSERT,
            tenant_id=tenant_id,
            kind=kind,
            partner_id=partner_id,
            ids=[new_id() for _ in chunk],
            record_keys=[i.record_key for i in chunk],
            customer_keys=[i.customer_key or "" for i in chunk],
            org_unit_ids=[i.org_unit_id or "" for i in chunk],
            occurred_ats=[_utc(i.occurred_at) for i in chunk],
            attributes=[json.dumps(i.attributes, ensure_ascii=False, allow_nan=False) for i in chunk],
            content_hashes=[_hash(i) for i in chunk],
        )
        changed.update({key: (row_id, bool(inserted)) for row_id, key, inserted in written})
    existing: dict[str, uuid.UUID] = {}
    if unchanged := [item.record_key for _, item in rows if item.record_key not in changed]:
        for start in range(0, len(unchanged), CHUNK):
            found = await db.fetch(
                _EXISTING, tenant_id=tenant_id, kind=kind, record_keys=unchanged[start : start + CHUNK]
            )
            existing.update({key: row_id for row_id, key in found})
    events: list[tuple[uuid.UUID, str, Any]] = []
    for index, item in rows:
        key = item.record_key
        if key not in changed:
            results[index] = RecordResult(
                index=index,
                external_id=key,
                status="duplicate",
                id=existing.get(key),
                reason="identical record already received",
            )
            continue
        row_id, inserted = changed[key]
        results[index] = RecordResult(
            index=index, external_id=key, status="accepted", id=row_id, action="created" if inserted else "updated"
        )
        payload = events_pb2.ODataUpserted(
            kind=kind,
            record_key=key,
            customer_key=item.customer_key or "",
            attributes={
                k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in item.attributes.items()
            },
            occurred_at=timestamp(_utc(item.occurred_at)),
            org_unit_id=item.org_unit_id or "",
        )
        events.append((tenant_id, "odata.upserted", payload))
    for result in results.values():  # in-batch repeats point at the record their first occurrence became
        if result.status == "duplicate" and result.id is None and result.external_id in seen:
            result.id = results[seen[result.external_id]].id
    await add_events(db, events, source=source, subject_prefix=subject_prefix)
    return results
