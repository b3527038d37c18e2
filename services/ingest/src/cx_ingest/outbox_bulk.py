"""Stage many events in the outbox with one statement (and one notification for the relay) per call.

Generic: a candidate for `cx_common.events.outbox` (same table, same envelope as `add_event`). The rows travel as
arrays and are expanded with `unnest`, so the statement is constant (prepared once per connection) and a batch of
any size is one round trip; `pg_notify` in the same statement wakes the relay on commit, like `add_event`'s NOTIFY.

Envelopes are encoded by concatenation: the fields every event of the call shares (tenant, type, trace id, source,
occurred_at) are serialised once, and each event adds its own `event_id` and payload field. Protobuf parsers read
the concatenation as one message (the wire format is a sequence of fields), so consumers see exactly the envelope
`cx_common.events.build_envelope` would have built, at a third of the CPU.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uuid_utils
from google.protobuf.message import Message

from cx.events.v1 import events_pb2
from cx_common.context import current_trace_id
from cx_common.events import subject_for
from cx_common.events.outbox import OUTBOX_CHANNEL
from cx_ingest.feedback.received import varint
from cx_ingest.pg import Db, Sql

NOTIFY_IF_STAGED = (
    f"SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM (SELECT count(*) AS n FROM staged) AS c WHERE c.n > 0"  # noqa: S608
)
_INSERT = Sql(
    "WITH staged AS ("  # noqa: S608 - constant
    " INSERT INTO outbox (event_id, subject, event_type, tenant_id, payload, trace_id)"
    " SELECT * FROM unnest(CAST(:event_ids AS uuid[]), CAST(:subjects AS text[]), CAST(:event_types AS text[]),"
    " CAST(:tenant_ids AS text[]), CAST(:payloads AS bytea[]), CAST(:trace_ids AS text[]))"
    f" RETURNING 1) {NOTIFY_IF_STAGED}"
)
# The usual call: every event of one tenant and type. The shared values go once, not once per event (each array
# element costs asyncpg's encoder a few isinstance checks). `STAGE_ONE_GROUP` (a data-modifying CTE named
# `staged`, followed by `NOTIFY_IF_STAGED`) is also a part of bigger statements (`feedback.service.finish_batch`).
STAGE_ONE_GROUP = (
    "staged AS ("
    " INSERT INTO outbox (event_id, subject, event_type, tenant_id, payload, trace_id)"
    " SELECT e.event_id, CAST(:subject AS text), CAST(:event_type AS text), CAST(:event_tenant_id AS text), e.payload,"
    " CAST(:trace_id AS text)"
    " FROM unnest(CAST(string_to_array(CAST(:event_ids AS text), ',') AS uuid[]), CAST(:payloads AS bytea[]))"
    " WITH ORDINALITY AS e(event_id, payload, n)"
    " ORDER BY e.n RETURNING 1)"
)
_INSERT_ONE_GROUP = Sql(f"WITH {STAGE_ONE_GROUP} {NOTIFY_IF_STAGED}")


@dataclass(frozen=True)
class Encoded:
    """A payload already serialised (e.g. `feedback.received.feedback_received`): its message type's full name and
    its bytes."""

    type_name: str
    data: bytes


Payload = Message | Encoded


_FIELDS = events_pb2.Envelope.DESCRIPTOR.fields_by_name
_EVENT_ID_TAG = varint((_FIELDS["event_id"].number << 3) | 2)
_PAYLOAD_TAGS = {
    field.message_type.full_name: varint((field.number << 3) | 2)
    for field in events_pb2.Envelope.DESCRIPTOR.oneofs_by_name["payload"].fields
    if field.message_type is not None
}


_ID_LENGTH = varint(36)  # str(uuid) is always 36 characters


def _type_name(payload: Payload) -> str:
    return payload.type_name if isinstance(payload, Encoded) else payload.DESCRIPTOR.full_name


def encode_envelopes(
    tenant_id: uuid.UUID | str, event_type: str, payloads: Sequence[Payload], *, source: str, trace_id: str
) -> list[tuple[str, bytes]]:
    """(event id as text, serialised `Envelope`) for each payload (all of one message type); all share tenant, type,
    source, trace and time."""
    if not payloads:
        return []
    name = _type_name(payloads[0])
    tag = _PAYLOAD_TAGS.get(name)
    if tag is None:
        raise TypeError(f"{name} is not a payload of cx.events.v1.Envelope")
    if any(_type_name(p) != name for p in payloads):
        raise TypeError(f"payloads of one call must all be {name}")
    shared = events_pb2.Envelope(tenant_id=str(tenant_id), type=event_type, trace_id=trace_id, source=source)
    shared.occurred_at.FromDatetime(dt.datetime.now(dt.UTC))
    head: bytes = shared.SerializeToString()
    out = []
    for payload in payloads:
        event_id = str(uuid_utils.uuid7())  # UUIDv7 like cx_common.ids.uuid7, formatted natively
        body: bytes = payload.data if isinstance(payload, Encoded) else payload.SerializeToString()
        out.append(
            (event_id, b"".join((head, _EVENT_ID_TAG, _ID_LENGTH, event_id.encode(), tag, varint(len(body)), body)))
        )
    return out


def one_group_params(
    tenant_id: uuid.UUID | str,
    event_type: str,
    payloads: Sequence[Payload],
    *,
    source: str,
    subject_prefix: str,
) -> dict[str, Any]:
    """The parameters of `STAGE_ONE_GROUP` for events of one tenant and type (none at all stages nothing)."""
    trace_id = current_trace_id()
    encoded = encode_envelopes(tenant_id, event_type, payloads, source=source, trace_id=trace_id)
    return {
        "subject": subject_for(event_type, subject_prefix),
        "event_type": event_type,
        "event_tenant_id": str(tenant_id),
        "trace_id": trace_id,
        "event_ids": ",".join(event_id for event_id, _ in encoded),  # one text: see ROW_COLUMNS in feedback.upsert
        "payloads": [envelope for _, envelope in encoded],
    }


async def add_events(
    db: Db,
    events: Sequence[tuple[uuid.UUID | str, str, Payload]],
    *,
    source: str,
    subject_prefix: str = "cx",
) -> int:
    """`events`: (tenant_id, event_type, payload). Published only if the surrounding transaction commits."""
    if not events:
        return 0
    groups: dict[tuple[str, str], list[Payload]] = {}
    for tenant_id, event_type, payload in events:
        groups.setdefault((str(tenant_id), event_type), []).append(payload)
    if len(groups) == 1:
        ((tenant_id, event_type), group), *_ = groups.items()
        params = one_group_params(tenant_id, event_type, group, source=source, subject_prefix=subject_prefix)
        await db.fetch(_INSERT_ONE_GROUP, **params)
        return len(group)
    trace_id = current_trace_id()
    event_ids, subjects, types, tenants, payloads = [], [], [], [], []
    for (tenant_id, event_type), group in groups.items():
        for event_id, envelope in encode_envelopes(tenant_id, event_type, group, source=source, trace_id=trace_id):
            event_ids.append(event_id)
            subjects.append(subject_for(event_type, subject_prefix))
            types.append(event_type)
            tenants.append(tenant_id)
            payloads.append(envelope)
    await db.fetch(
        _INSERT,
        event_ids=event_ids,
        subjects=subjects,
        event_types=types,
        tenant_ids=tenants,
        payloads=payloads,
        trace_ids=[trace_id] * len(event_ids),
    )
    return len(event_ids)
