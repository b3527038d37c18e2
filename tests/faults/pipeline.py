"""Where an event is in the pipeline, read from the real stores: each schema's outbox (written, not yet published;
publish failures) and `processed_events` (applied by which consumer), and JetStream's own view of the stream and
every durable consumer (pending, waiting for an ack, redelivered) from the NATS monitoring endpoint.

Used by the fault suite to tell "still on its way" from "lost": an event that is neither in an outbox waiting, nor in
the stream waiting for a consumer, nor applied, is gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
from e2e_stack import LocalStack

from cx_local.config import SERVICE_SCHEMAS


async def _db_state(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, Any] = {}
        for schema in SERVICE_SCHEMAS.values():
            outbox = await conn.fetchrow(
                f"SELECT count(*) FILTER (WHERE published_at IS NULL) AS unpublished, "
                f"count(*) FILTER (WHERE published_at IS NULL AND attempts > 0) AS failing, "
                f"count(*) AS total, max(last_error) FILTER (WHERE published_at IS NULL) AS last_error "
                f"FROM {schema}.outbox"
            )
            consumed = await conn.fetch(
                f"SELECT consumer, count(*) AS n FROM {schema}.processed_events GROUP BY consumer"
            )
            out[schema] = {
                "outbox": dict(outbox) if outbox else {},
                "processed": {r["consumer"]: r["n"] for r in consumed},
            }
        return out
    finally:
        await conn.close()


async def _event_ids(dsn: str, schema: str, event_type: str) -> dict[str, bool]:
    """event_id -> published? for every outbox row of that type."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT event_id, published_at IS NOT NULL AS published FROM {schema}.outbox WHERE event_type = $1",
            event_type,
        )
        return {str(r["event_id"]): bool(r["published"]) for r in rows}
    finally:
        await conn.close()


async def _processed_ids(dsn: str, schema: str, consumer: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT event_id FROM {schema}.processed_events WHERE consumer = $1",
            consumer,
        )
        return {str(r["event_id"]) for r in rows}
    finally:
        await conn.close()


def jetstream_state(stack: LocalStack) -> dict[str, Any]:
    """Stream and consumer figures as NATS reports them (empty when the monitor does not answer)."""
    url = f"http://127.0.0.1:{stack.config.nats_monitor_port}/jsz"
    try:
        data = httpx.get(url, params={"consumers": "true", "config": "false"}, timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": repr(exc)}
    out: dict[str, Any] = {}
    for account in data.get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            state = stream.get("state") or {}
            out[stream["name"]] = {
                "messages": state.get("messages"),
                "last_seq": state.get("last_seq"),
                "consumers": {
                    c["name"]: {
                        "num_pending": c.get("num_pending"),
                        "num_ack_pending": c.get("num_ack_pending"),
                        "num_redelivered": c.get("num_redelivered"),
                        "num_waiting": c.get("num_waiting"),
                        "delivered_stream_seq": (c.get("delivered") or {}).get("stream_seq"),
                        "ack_floor_stream_seq": (c.get("ack_floor") or {}).get("stream_seq"),
                    }
                    for c in stream.get("consumer_detail") or []
                },
            }
    return out


def snapshot(stack: LocalStack) -> dict[str, Any]:
    return {"db": asyncio.run(_db_state(stack.admin_dsn)), "jetstream": jetstream_state(stack)}


def event_fate(
    stack: LocalStack, *, schema: str, event_type: str, consumer_schema: str, consumer: str
) -> dict[str, int]:
    """How many `event_type` events of `schema` are waiting in its outbox, published but not yet applied by
    `consumer` (in the stream or in flight), and applied."""
    published = asyncio.run(_event_ids(stack.admin_dsn, schema, event_type))
    applied = asyncio.run(_processed_ids(stack.admin_dsn, consumer_schema, consumer))
    return {
        "written": len(published),
        "in_outbox": sum(1 for p in published.values() if not p),
        "published_not_applied": sum(1 for e, p in published.items() if p and e not in applied),
        "applied": sum(1 for e in published if e in applied),
    }
