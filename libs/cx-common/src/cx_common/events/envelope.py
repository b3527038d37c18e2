"""Build and read `cx.events.v1.Envelope` messages."""

from __future__ import annotations

import datetime as dt
import uuid

from google.protobuf.message import Message

from cx.events.v1 import events_pb2
from cx_common.context import current_trace_id
from cx_common.ids import uuid7

_PAYLOAD_FIELDS = {
    field.message_type.full_name: field.name
    for field in events_pb2.Envelope.DESCRIPTOR.oneofs_by_name["payload"].fields
    if field.message_type is not None
}


def subject_for(event_type: str, prefix: str = "cx") -> str:
    """`survey.response.submitted` -> `cx.survey.response.submitted`."""
    return f"{prefix}.{event_type}"


def build_envelope(
    *,
    tenant_id: uuid.UUID | str,
    event_type: str,
    payload: Message,
    source: str,
    event_id: uuid.UUID | None = None,
    occurred_at: dt.datetime | None = None,
    trace_id: str | None = None,
) -> events_pb2.Envelope:
    field = _PAYLOAD_FIELDS.get(payload.DESCRIPTOR.full_name)
    if field is None:
        raise TypeError(f"{payload.DESCRIPTOR.full_name} is not a payload of cx.events.v1.Envelope")
    envelope = events_pb2.Envelope(
        event_id=str(event_id or uuid7()),
        tenant_id=str(tenant_id),
        type=event_type,
        trace_id=trace_id if trace_id is not None else current_trace_id(),
        source=source,
    )
    envelope.occurred_at.FromDatetime(occurred_at or dt.datetime.now(dt.UTC))
    getattr(envelope, field).CopyFrom(payload)
    return envelope


def payload_of(envelope: events_pb2.Envelope) -> Message | None:
    which = envelope.WhichOneof("payload")
    return getattr(envelope, which) if which else None
