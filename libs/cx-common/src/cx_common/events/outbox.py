"""Write an event in the same transaction as the state change it describes."""

from __future__ import annotations

import datetime as dt
import uuid

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cx.events.v1 import events_pb2
from cx_common.events.envelope import build_envelope, subject_for

OUTBOX_CHANNEL = "cx_outbox"

_INSERT = text(
    "INSERT INTO outbox (event_id, subject, event_type, tenant_id, payload, trace_id) "
    "VALUES (:event_id, :subject, :event_type, :tenant_id, :payload, :trace_id)"
)


async def add_event(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID | str,
    event_type: str,
    payload: Message,
    source: str,
    subject_prefix: str = "cx",
    occurred_at: dt.datetime | None = None,
) -> events_pb2.Envelope:
    """Stage an event in the outbox of the session's schema; it is published only if the transaction commits."""
    envelope = build_envelope(
        tenant_id=tenant_id, event_type=event_type, payload=payload, source=source, occurred_at=occurred_at
    )
    await session.execute(
        _INSERT,
        {
            "event_id": uuid.UUID(envelope.event_id),
            "subject": subject_for(event_type, subject_prefix),
            "event_type": event_type,
            "tenant_id": str(tenant_id),
            "payload": envelope.SerializeToString(),
            "trace_id": envelope.trace_id,
        },
    )
    # Delivered to listeners only on commit, so the relay wakes exactly when there is something to send.
    await session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return envelope
