"""The peers of the ingest benchmark, served by uvicorn like our service (`--factory`).

Every peer does the same job for `POST /feedback:batch` as ours, into the very same tables (the ingest schema, as
the ingest role, configured by `BENCH_INGEST_DATABASE_URL`), in one transaction per request:
- authenticates the partner's API key (prefix lookup in `api_keys` + `partners`, SHA-256 compared in constant time);
- `Idempotency-Key`: the key row is claimed first; the same key with the same body answers the stored response
  byte for byte and writes nothing, another body gets 422;
- validates every record with a pydantic model (FastAPI body), hashes it (SHA-256 of its pydantic JSON) and dedups
  on the natural key (tenant, partner source, external_id) with update semantics: new -> created, changed -> updated
  (re-queued for analysis), identical -> duplicate; the Idempotency-Key fingerprint is the SHA-256 of the raw body
  (both hashes are the primitives ours uses);
- writes a `feedback.received` outbox row (the protobuf envelope our relay publishes) per created/updated item;
- answers per-record results (index, external_id, status, id, action) and stores that answer with the key.

What ours does on top: PII redaction of every text, partner field mappings, per-record validation errors that do
not fail the batch, an `imports` row with the per-record results (`GET /v1/imports/{id}`), rate limiting, metrics
and request logging middleware.

- orm: FastAPI + async SQLAlchemy ORM as the tutorials write it: a session per request, `select` the existing rows,
  `add_all` new ORM objects, assign changed attributes, `add_all` the outbox objects, `commit`.
- executemany: FastAPI + an asyncpg pool: one `SELECT … = ANY($1)` for the existing rows, then `executemany` of the
  INSERTs, the UPDATEs and the outbox INSERTs.
- staged_copy: FastAPI + an asyncpg pool: `CREATE TEMP TABLE … ON COMMIT DROP`, `COPY` the batch into it, one
  `INSERT … SELECT … ON CONFLICT DO UPDATE … WHERE content differs RETURNING`, then `COPY` the outbox rows.
- staged_copy_reused: the same with the temp table created once per pooled connection (`ON COMMIT DELETE ROWS`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import Response
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import DateTime, Integer, LargeBinary, String, Text, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope
from cx_common.ids import uuid7

SUBJECT = "cx.feedback.received"
EVENT_TYPE = "feedback.received"
POOL = {"min_size": 10, "max_size": 20}


def _url(driver: str) -> str:
    url = os.environ["BENCH_INGEST_DATABASE_URL"]
    return url.replace("postgresql://", f"postgresql+{driver}://", 1) if driver else url


# -- shared: request model, hashing, rows, events -------------------------------------------------------------


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    channel: Literal["survey", "hotline", "chat", "email", "review", "social", "store", "crm", "other"] = "crm"
    text: str = Field(min_length=1, max_length=20_000)
    title: str | None = Field(default=None, max_length=500)
    touchpoint_id: str | None = Field(default=None, max_length=200)
    journey_stage: str | None = Field(default=None, max_length=200)
    org_unit_id: str | None = Field(default=None, max_length=200)
    customer_key: str | None = Field(default=None, max_length=200)
    product_sku: str | None = Field(default=None, max_length=200)
    agent_id: str | None = Field(default=None, max_length=200)
    language: Literal["zh-Hans", "zh-Hant", "en"] | None = None
    occurred_at: dt.datetime | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    attributes: dict[str, Any] = Field(default_factory=dict)


class BatchIn(BaseModel):
    items: list[RecordIn] = Field(min_length=1, max_length=1000)


class Caller(BaseModel):
    tenant_id: uuid.UUID
    partner_id: uuid.UUID


def content_hash(item: RecordIn) -> str:
    """The record's content as pydantic serialises it (the same primitive ours uses)."""
    return hashlib.sha256(item.model_dump_json().encode()).hexdigest()


def request_fingerprint(body: bytes) -> str:
    """SHA-256 of the raw body (the same primitive ours uses for Idempotency-Key)."""
    return hashlib.sha256(body).hexdigest()


def dedup_in_batch(items: Sequence[RecordIn]) -> tuple[list[tuple[int, RecordIn]], dict[int, dict[str, Any]]]:
    first: dict[str, int] = {}
    keep: list[tuple[int, RecordIn]] = []
    repeats: dict[int, dict[str, Any]] = {}
    for index, item in enumerate(items):
        if item.external_id in first:
            repeats[index] = {"index": index, "external_id": item.external_id, "status": "duplicate"}
            continue
        first[item.external_id] = index
        keep.append((index, item))
    return keep, repeats


COLUMNS = (
    "id", "tenant_id", "source_key", "partner_id", "external_id", "channel", "touchpoint_id", "journey_stage",
    "org_unit_id", "customer_key", "product_sku", "agent_id", "language", "occurred_at", "title", "text",
    "redactions", "scores", "attributes", "source_response_id", "content_hash", "revision", "analysis_state",
    "attempts", "analysis_count",
)  # fmt: skip
UPDATED = (
    "channel", "touchpoint_id", "journey_stage", "org_unit_id", "customer_key", "product_sku", "agent_id", "language",
    "occurred_at", "title", "text", "scores", "attributes", "content_hash",
)  # fmt: skip


def row_values(caller: Caller, item: RecordIn, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "tenant_id": caller.tenant_id,
        "source_key": f"partner:{caller.partner_id}",
        "partner_id": caller.partner_id,
        "external_id": item.external_id,
        "channel": item.channel,
        "touchpoint_id": item.touchpoint_id or "",
        "journey_stage": item.journey_stage or "",
        "org_unit_id": item.org_unit_id or "",
        "customer_key": item.customer_key or "",
        "product_sku": item.product_sku or "",
        "agent_id": item.agent_id or "",
        "language": item.language or "",
        "occurred_at": item.occurred_at or now,
        "title": item.title or "",
        "text": item.text,
        "redactions": {},
        "scores": item.scores,
        "attributes": item.attributes,
        "source_response_id": "",
        "content_hash": content_hash(item),
        "revision": 1,
        "analysis_state": "pending",
        "attempts": 0,
        "analysis_count": 0,
    }


def received_event(row: dict[str, Any], row_id: uuid.UUID) -> tuple[uuid.UUID, bytes, str]:
    """(event id, envelope bytes, trace id) of feedback.received for a stored row."""
    ts = Timestamp()
    ts.FromDatetime(row["occurred_at"])
    payload = events_pb2.FeedbackReceived(
        context=events_pb2.FeedbackContext(
            feedback_id=str(row_id),
            channel=row["channel"],
            touchpoint_id=row["touchpoint_id"],
            journey_stage=row["journey_stage"],
            org_unit_id=row["org_unit_id"],
            customer_key=row["customer_key"],
            product_sku=row["product_sku"],
            language=row["language"],
            occurred_at=ts,
            partner_id=str(row["partner_id"]),
            external_id=row["external_id"],
        ),
        text_length=len(row["text"]),
    )
    envelope = build_envelope(
        tenant_id=row["tenant_id"], event_type=EVENT_TYPE, payload=payload, source="ingest", trace_id=""
    )
    return uuid.UUID(envelope.event_id), envelope.SerializeToString(), envelope.trace_id


def answer(results: dict[int, dict[str, Any]], total: int) -> bytes:
    ordered = [results[i] for i in range(total)]
    counts = {"total": total, "accepted": 0, "duplicate": 0, "rejected": 0}
    for r in ordered:
        counts[r["status"]] += 1
    return json.dumps({"counts": counts, "results": ordered}, separators=(",", ":")).encode()


def key_prefix(key: str) -> str:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "cxk":
        raise HTTPException(401, "invalid API key")
    return parts[1]


def check_key(key: str, key_hash: str, revoked: Any, expires: Any, status: str) -> None:
    if not hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), key_hash):
        raise HTTPException(401, "invalid API key")
    if revoked is not None or (expires is not None and expires <= dt.datetime.now(dt.UTC)):
        raise HTTPException(401, "API key revoked or expired")
    if status != "active":
        raise HTTPException(403, "partner disabled")


def replay(stored: Any, request_hash: str, status: int) -> Response:
    if stored["request_hash"] != request_hash:
        raise HTTPException(422, "Idempotency-Key reused with a different body")
    return Response(stored["response"].encode(), status_code=status, media_type="application/json")


def _healthz(app: FastAPI) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}


# -- (a) FastAPI + async SQLAlchemy ORM ----------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class PartnerRow(Base):
    __tablename__ = "partners"
    __table_args__ = ({"schema": "ingest"},)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    __table_args__ = ({"schema": "ingest"},)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    partner_id: Mapped[uuid.UUID]
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class FeedbackRow(Base):
    __tablename__ = "feedback_items"
    __table_args__ = ({"schema": "ingest"},)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    source_key: Mapped[str] = mapped_column(String(64))
    partner_id: Mapped[uuid.UUID | None]
    external_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    touchpoint_id: Mapped[str] = mapped_column(String(200))
    journey_stage: Mapped[str] = mapped_column(String(200))
    org_unit_id: Mapped[str] = mapped_column(String(200))
    customer_key: Mapped[str] = mapped_column(String(200))
    product_sku: Mapped[str] = mapped_column(String(200))
    agent_id: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    title: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    redactions: Mapped[dict[str, int]] = mapped_column(JSONB)
    scores: Mapped[dict[str, float]] = mapped_column(JSONB)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source_response_id: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer)
    analysis_state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    analysis_count: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=lambda: _now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=lambda: _now())


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = ({"schema": "ingest"},)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID]
    subject: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    tenant_id: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    trace_id: Mapped[str] = mapped_column(Text, default="")


class IdempotencyRow(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = ({"schema": "ingest"},)
    partner_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[uuid.UUID]
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def orm_app() -> FastAPI:
    engine = create_async_engine(_url("asyncpg"), pool_size=10, max_overflow=10)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    _healthz(app)

    @app.post("/feedback:batch")
    async def batch(
        request: Request,
        body: BatchIn,
        session: AsyncSession = Depends(get_session),
        x_api_key: str = Header(),
        idempotency_key: str | None = Header(default=None),
    ) -> Response:
        found = (
            await session.execute(
                select(ApiKeyRow, PartnerRow)
                .join(PartnerRow, PartnerRow.id == ApiKeyRow.partner_id)
                .where(ApiKeyRow.prefix == key_prefix(x_api_key))
            )
        ).first()
        if found is None:
            raise HTTPException(401, "invalid API key")
        api_key, partner = found
        check_key(x_api_key, api_key.key_hash, api_key.revoked_at, api_key.expires_at, partner.status)
        caller = Caller(tenant_id=partner.tenant_id, partner_id=partner.id)
        request_hash = request_fingerprint(await request.body())
        if idempotency_key is not None:
            stored = await session.get(IdempotencyRow, (partner.id, idempotency_key))
            if stored is not None:
                return replay({"request_hash": stored.request_hash, "response": stored.response}, request_hash, 200)
        keep, results = dedup_in_batch(body.items)
        source_key = f"partner:{partner.id}"
        existing = {
            row.external_id: row
            for row in (
                await session.execute(
                    select(FeedbackRow).where(
                        FeedbackRow.tenant_id == caller.tenant_id,
                        FeedbackRow.source_key == source_key,
                        FeedbackRow.external_id.in_([item.external_id for _, item in keep]),
                    )
                )
            ).scalars()
        }
        now = _now()
        new_rows, events = [], []
        for index, item in keep:
            values = row_values(caller, item, now)
            old = existing.get(item.external_id)
            if old is not None and old.content_hash == values["content_hash"]:
                results[index] = {
                    "index": index,
                    "external_id": item.external_id,
                    "status": "duplicate",
                    "id": str(old.id),
                }
                continue
            if old is not None:
                for name in UPDATED:
                    setattr(old, name, values[name])
                old.revision += 1
                old.analysis_state, old.attempts, old.next_attempt_at, old.updated_at = "pending", 0, now, now
                row_id, action = old.id, "updated"
            else:
                new_rows.append(FeedbackRow(**values))
                row_id, action = values["id"], "created"
            event_id, payload, trace_id = received_event(values, row_id)
            events.append(
                OutboxRow(
                    event_id=event_id,
                    subject=SUBJECT,
                    event_type=EVENT_TYPE,
                    tenant_id=str(caller.tenant_id),
                    payload=payload,
                    trace_id=trace_id,
                )
            )
            results[index] = {
                "index": index,
                "external_id": item.external_id,
                "status": "accepted",
                "id": str(row_id),
                "action": action,
            }
        session.add_all(new_rows)
        session.add_all(events)
        encoded = answer(results, len(body.items))
        if idempotency_key is not None:
            session.add(
                IdempotencyRow(
                    partner_id=partner.id,
                    key=idempotency_key,
                    tenant_id=caller.tenant_id,
                    request_hash=request_hash,
                    status_code=200,
                    response=encoded.decode(),
                )
            )
        await session.commit()
        return Response(encoded, media_type="application/json")

    return app


# -- asyncpg pools (b, c) -------------------------------------------------------------------------------------

_AUTH = (
    "SELECT k.key_hash, k.revoked_at, k.expires_at, p.id, p.tenant_id, p.status FROM ingest.api_keys k "
    "JOIN ingest.partners p ON p.id = k.partner_id WHERE k.prefix = $1"
)
_CLAIM = (
    "INSERT INTO ingest.idempotency_keys (partner_id, key, tenant_id, request_hash, status_code) "
    "VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING RETURNING 1"
)
_STORED = "SELECT request_hash, response FROM ingest.idempotency_keys WHERE partner_id = $1 AND key = $2"
_STORE_ANSWER = "UPDATE ingest.idempotency_keys SET response = $3, status_code = 200 WHERE partner_id = $1 AND key = $2"
_EXISTING = (
    "SELECT external_id, id, content_hash FROM ingest.feedback_items "
    "WHERE tenant_id = $1 AND source_key = $2 AND external_id = ANY($3::text[])"
)
JSON_COLUMNS = ("redactions", "scores", "attributes")
OUTBOX_COLUMNS = ("event_id", "subject", "event_type", "tenant_id", "payload", "trace_id")


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _caller(conn: asyncpg.Connection, key: str) -> Caller:
    row = await conn.fetchrow(_AUTH, key_prefix(key))
    if row is None:
        raise HTTPException(401, "invalid API key")
    check_key(key, row["key_hash"], row["revoked_at"], row["expires_at"], row["status"])
    return Caller(tenant_id=row["tenant_id"], partner_id=row["id"])


def _pool_app(handler: Any, init: Any = _init) -> FastAPI:
    state: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(_url(""), init=init, **POOL)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)
    _healthz(app)

    @app.post("/feedback:batch")
    async def batch(
        request: Request,
        body: BatchIn,
        x_api_key: str = Header(),
        idempotency_key: str | None = Header(default=None),
    ) -> Response:
        request_hash = request_fingerprint(await request.body())
        async with state["pool"].acquire() as conn:
            caller = await _caller(conn, x_api_key)
            async with conn.transaction():
                if idempotency_key is not None:
                    claimed = await conn.fetchval(
                        _CLAIM, caller.partner_id, idempotency_key, caller.tenant_id, request_hash
                    )
                    if claimed is None:
                        return replay(
                            await conn.fetchrow(_STORED, caller.partner_id, idempotency_key), request_hash, 200
                        )
                encoded: bytes = await handler(conn, caller, body.items)
                if idempotency_key is not None:
                    await conn.execute(_STORE_ANSWER, caller.partner_id, idempotency_key, encoded.decode())
        return Response(encoded, media_type="application/json")

    return app


# -- (b) FastAPI + asyncpg executemany ------------------------------------------------------------------------

_INSERT = (
    f"INSERT INTO ingest.feedback_items ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${i + 1}' for i in range(len(COLUMNS)))})"
)
_UPDATE = (
    "UPDATE ingest.feedback_items SET "
    + ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(UPDATED))
    + ", revision = revision + 1, analysis_state = 'pending', attempts = 0, next_attempt_at = now(), "
    "lease_until = NULL, claim_token = NULL, last_error = NULL, updated_at = now() WHERE id = $1"
)
_OUTBOX = (
    "INSERT INTO ingest.outbox (event_id, subject, event_type, tenant_id, payload, trace_id) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)


async def _executemany(conn: asyncpg.Connection, caller: Caller, items: list[RecordIn]) -> bytes:
    keep, results = dedup_in_batch(items)
    existing = {
        r["external_id"]: r
        for r in await conn.fetch(
            _EXISTING, caller.tenant_id, f"partner:{caller.partner_id}", [i.external_id for _, i in keep]
        )
    }
    now = _now()
    inserts, updates, events = [], [], []
    for index, item in keep:
        values = row_values(caller, item, now)
        old = existing.get(item.external_id)
        if old is not None and old["content_hash"] == values["content_hash"]:
            results[index] = {
                "index": index,
                "external_id": item.external_id,
                "status": "duplicate",
                "id": str(old["id"]),
            }
            continue
        if old is not None:
            updates.append((old["id"], *(values[name] for name in UPDATED)))
            row_id, action = old["id"], "updated"
        else:
            inserts.append(tuple(values[name] for name in COLUMNS))
            row_id, action = values["id"], "created"
        event_id, payload, trace_id = received_event(values, row_id)
        events.append((event_id, SUBJECT, EVENT_TYPE, str(caller.tenant_id), payload, trace_id))
        results[index] = {
            "index": index,
            "external_id": item.external_id,
            "status": "accepted",
            "id": str(row_id),
            "action": action,
        }
    if inserts:
        await conn.executemany(_INSERT, inserts)
    if updates:
        await conn.executemany(_UPDATE, updates)
    if events:
        await conn.executemany(_OUTBOX, events)
    return answer(results, len(items))


def executemany_app() -> FastAPI:
    return _pool_app(_executemany)


# -- (c) FastAPI + staged COPY ---------------------------------------------------------------------------------

_STAGE_PER_REQUEST = (
    "CREATE TEMP TABLE stage_feedback ON COMMIT DROP AS "
    f"SELECT {', '.join(COLUMNS)} FROM ingest.feedback_items WITH NO DATA"
)
_STAGE_PER_CONNECTION = (
    "CREATE TEMP TABLE IF NOT EXISTS stage_feedback ON COMMIT DELETE ROWS AS "
    f"SELECT {', '.join(COLUMNS)} FROM ingest.feedback_items WITH NO DATA"
)
_MERGE = (
    f"INSERT INTO ingest.feedback_items AS f ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM stage_feedback "
    "ON CONFLICT ON CONSTRAINT uq_feedback_items_natural_key DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in UPDATED)
    + ", revision = f.revision + 1, analysis_state = 'pending', attempts = 0, next_attempt_at = now(), "
    "lease_until = NULL, claim_token = NULL, last_error = NULL, updated_at = now() "
    "WHERE f.content_hash IS DISTINCT FROM EXCLUDED.content_hash "
    "RETURNING f.id, f.external_id, (xmax = 0) AS inserted"
)
_UNCHANGED = (
    "SELECT external_id, id FROM ingest.feedback_items "
    "WHERE tenant_id = $1 AND source_key = $2 AND external_id = ANY($3::text[])"
)


async def _stage_init(conn: asyncpg.Connection) -> None:
    await conn.execute(_STAGE_PER_CONNECTION)  # jsonb goes in as JSON text (asyncpg's binary codec, usable by COPY)


async def _staged_copy_per_request(conn: asyncpg.Connection, caller: Caller, items: list[RecordIn]) -> bytes:
    await conn.execute(_STAGE_PER_REQUEST)  # the textbook form: a temp table per transaction, dropped at commit
    return await _staged_copy(conn, caller, items)


async def _staged_copy(conn: asyncpg.Connection, caller: Caller, items: list[RecordIn]) -> bytes:
    keep, results = dedup_in_batch(items)
    now = _now()
    rows = [(index, row_values(caller, item, now)) for index, item in keep]
    await conn.copy_records_to_table(
        "stage_feedback",
        records=[tuple(json.dumps(v[c]) if c in JSON_COLUMNS else v[c] for c in COLUMNS) for _, v in rows],
        columns=COLUMNS,
    )
    changed = {r["external_id"]: (r["id"], r["inserted"]) for r in await conn.fetch(_MERGE)}
    missing = [v["external_id"] for _, v in rows if v["external_id"] not in changed]
    unchanged: dict[str, uuid.UUID] = {}
    if missing:
        source_key = f"partner:{caller.partner_id}"
        unchanged = {
            r["external_id"]: r["id"] for r in await conn.fetch(_UNCHANGED, caller.tenant_id, source_key, missing)
        }
    events = []
    for index, values in rows:
        ext = values["external_id"]
        if ext not in changed:
            results[index] = {"index": index, "external_id": ext, "status": "duplicate", "id": str(unchanged.get(ext))}
            continue
        row_id, inserted = changed[ext]
        event_id, payload, trace_id = received_event(values, row_id)
        events.append((event_id, SUBJECT, EVENT_TYPE, str(caller.tenant_id), payload, trace_id))
        action = "created" if inserted else "updated"
        results[index] = {"index": index, "external_id": ext, "status": "accepted", "id": str(row_id), "action": action}
    if events:
        await conn.copy_records_to_table("outbox", schema_name="ingest", records=events, columns=OUTBOX_COLUMNS)
    return answer(results, len(items))


def staged_copy_app() -> FastAPI:
    """(c): the temp table is created in each request's transaction (`ON COMMIT DROP`)."""
    return _pool_app(_staged_copy_per_request, _no_stage_init)


def staged_copy_reused_app() -> FastAPI:
    """(c'): the same, with one temp table per pooled connection (`ON COMMIT DELETE ROWS`): no catalog churn."""
    return _pool_app(_staged_copy, _stage_init)


async def _no_stage_init(conn: asyncpg.Connection) -> None:
    pass
