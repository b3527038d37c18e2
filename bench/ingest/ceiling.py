"""(d) the ceiling: raw asyncpg COPY of the same rows (feedback items + outbox rows, one transaction per batch of
100), without HTTP, validation, idempotency or dedup — what the database absorbs at most through one client."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg

from bench.ingest.loadgen import Run, closed_loop
from bench.ingest.peers import (
    COLUMNS,
    EVENT_TYPE,
    JSON_COLUMNS,
    OUTBOX_COLUMNS,
    SUBJECT,
    Caller,
    RecordIn,
    received_event,
    row_values,
)
from bench.ingest.workload import body
from cx_common.ids import uuid7

TEMPLATES = 20  # distinct batches per connection, cycled with fresh ids
ID, EXTERNAL_ID = COLUMNS.index("id"), COLUMNS.index("external_id")

Batch = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]


def _templates(caller: Caller, connections: int) -> list[list[Batch]]:
    """Per connection, batches of (feedback row tuples, outbox row tuples) built once, before the clock starts."""
    now = dt.datetime.now(dt.UTC)
    out = []
    for conn in range(connections):
        batches = []
        for request in range(TEMPLATES):
            rows, events = [], []
            for item in json.loads(body(conn, request))["items"]:
                values = row_values(caller, RecordIn.model_validate(item), now)
                rows.append(tuple(json.dumps(values[c]) if c in JSON_COLUMNS else values[c] for c in COLUMNS))
                _, payload, trace_id = received_event(values, values["id"])
                events.append((None, SUBJECT, EVENT_TYPE, str(caller.tenant_id), payload, trace_id))
            batches.append((rows, events))
        out.append(batches)
    return out


async def run_ceiling(db_url: str, caller: Caller, connections: int, *, seconds: float, warmup: float) -> Run:
    """Closed loop of `connections` concurrent COPY transactions; only ids are made fresh per batch."""
    templates = _templates(caller, connections)
    sent = dict.fromkeys(range(connections), 0)
    pool = await asyncpg.create_pool(db_url, min_size=connections, max_size=connections)
    try:

        async def one(conn_no: int) -> None:
            n = sent[conn_no]
            sent[conn_no] = n + 1
            template_rows, template_events = templates[conn_no][n % TEMPLATES]
            rows = []
            for r in template_rows:
                row = list(r)
                row[ID], row[EXTERNAL_ID] = uuid7(), f"{r[EXTERNAL_ID]}-{n}"
                rows.append(tuple(row))
            events = [(uuid7(), *e[1:]) for e in template_events]
            async with pool.acquire() as conn, conn.transaction():
                await conn.copy_records_to_table("feedback_items", schema_name="ingest", records=rows, columns=COLUMNS)
                await conn.copy_records_to_table("outbox", schema_name="ingest", records=events, columns=OUTBOX_COLUMNS)

        run = await closed_loop(one, connections, seconds=seconds, warmup=warmup)
        run.batches = sum(sent.values())
        return run
    finally:
        await pool.close()
