"""Stage many events in the outbox with one round trip (executemany) and one NOTIFY.

Generic: a candidate for `cx_common.events.outbox` (same table, same envelope as `add_event`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.events import build_envelope, subject_for
from cx_common.events.outbox import OUTBOX_CHANNEL

_INSERT = text(
    "INSERT INTO outbox (event_id, subject, event_type, tenant_id, payload, trace_id) "
    "VALUES (:event_id, :subject, :event_type, :tenant_id, :payload, :trace_id)"
)


async def add_events(
    session: AsyncSession,
    events: Sequence[tuple[uuid.UUID | str, str, Message]],
    *,
    source: str,
    subject_prefix: str = "cx",
) -> int:
    """`events`: (tenant_id, event_type, payload). Published only if the surrounding transaction commits."""
    if not events:
        return 0
    params = []
    for tenant_id, event_type, payload in events:
        envelope = build_envelope(tenant_id=tenant_id, event_type=event_type, payload=payload, source=source)
        params.append(
            {
                "event_id": uuid.UUID(envelope.event_id),
                "subject": subject_for(event_type, subject_prefix),
                "event_type": event_type,
                "tenant_id": str(tenant_id),
                "payload": envelope.SerializeToString(),
                "trace_id": envelope.trace_id,
            }
        )
    await session.execute(_INSERT, params)
    await session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
    return len(params)
