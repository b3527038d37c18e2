"""`feedback.received` payloads serialised straight from the rows `records.build_row` makes.

Building `FeedbackContext` + `FeedbackReceived` messages and serialising them cost ~8 us per event (13 keyword
arguments copied into the message, a `Timestamp`, the context copied into its parent, then the serialisation);
writing the protobuf wire format directly is a few string encodes and one join. The bytes are exactly those
`FeedbackReceived(...).SerializeToString()` gives (fields in number order, proto3 defaults left out):
`tests/test_received_wire.py` checks that against the generated classes on generated rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from cx.events.v1 import events_pb2

_CONTEXT = events_pb2.FeedbackContext.DESCRIPTOR.fields_by_name
_RECEIVED = events_pb2.FeedbackReceived.DESCRIPTOR.fields_by_name
_TIMESTAMP = Timestamp.DESCRIPTOR.fields_by_name
_LEN, _VARINT = 2, 0


def varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement (int32/int64 fields)."""
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:  # text lengths: two bytes, no loop
        return bytes((value & 0x7F | 0x80, value >> 7))
    if 0x10000000 <= value < 0x800000000:  # Unix seconds from 1978 to 3058: five bytes
        return bytes(
            (
                value & 0x7F | 0x80,
                (value >> 7) & 0x7F | 0x80,
                (value >> 14) & 0x7F | 0x80,
                (value >> 21) & 0x7F | 0x80,
                value >> 28,
            )
        )
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


_SMALL = [bytes([n]) for n in range(128)]  # the varint of a length below 128 is that byte

# (row key, tag) of the string fields of FeedbackContext, in field-number order, split around occurred_at (9).
_ROW_STRINGS = (
    ("channel", "channel"),
    ("touchpoint_id", "touchpoint_id"),
    ("journey_stage", "journey_stage"),
    ("org_unit_id", "org_unit_id"),
    ("customer_key", "customer_key"),
    ("product_sku", "product_sku"),
    ("language", "language"),
)
_BEFORE = tuple((key, _tag(_CONTEXT[name].number, _LEN)) for key, name in _ROW_STRINGS)
_FEEDBACK_ID = _tag(_CONTEXT["feedback_id"].number, _LEN)
_OCCURRED_AT = _tag(_CONTEXT["occurred_at"].number, _LEN)
_SECONDS = _tag(_TIMESTAMP["seconds"].number, _VARINT)
_NANOS = _tag(_TIMESTAMP["nanos"].number, _VARINT)
_PARTNER_ID = _tag(_CONTEXT["partner_id"].number, _LEN)
_AFTER = tuple((key, _tag(_CONTEXT[key].number, _LEN)) for key in ("external_id", "source_response_id", "agent_id"))
_CONTEXT_FIELD = _tag(_RECEIVED["context"].number, _LEN)
_IS_CONVERSATION = _tag(_RECEIVED["is_conversation"].number, _VARINT) + b"\x01"
_TEXT_LENGTH = _tag(_RECEIVED["text_length"].number, _VARINT)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
assert [f.number for f in events_pb2.FeedbackContext.DESCRIPTOR.fields] == list(range(1, 14)), "fields changed"
assert [f.number for f in events_pb2.FeedbackReceived.DESCRIPTOR.fields] == [1, 2, 3], "fields changed"


def _length(n: int) -> bytes:
    return _SMALL[n] if n < 128 else varint(n)


def _timestamp(value: dt.datetime) -> bytes:
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)) - _EPOCH
    seconds, micros = delta.days * 86_400 + delta.seconds, delta.microseconds
    if seconds and micros:
        body = b"".join((_SECONDS, varint(seconds), _NANOS, varint(micros * 1000)))
    elif seconds:
        body = _SECONDS + varint(seconds)
    else:
        body = _NANOS + varint(micros * 1000) if micros else b""
    return _OCCURRED_AT + _SMALL[len(body)] + body  # at most 2 + 10 + 1 + 5 bytes


_ID_FIELD = _FEEDBACK_ID + _SMALL[36]  # str(uuid) is always 36 characters


def feedback_received(
    row: dict[str, Any], row_id: uuid.UUID, partner_id: bytes, *, is_conversation: bool, text_length: int
) -> bytes:
    """The serialised `FeedbackReceived` of a row built by `build_row`, stored as `row_id`; `partner_id` is the
    already encoded `partner_id` field (`partner_field`), the same for every row of a call."""
    parts = [_ID_FIELD, str(row_id).encode()]
    small = _SMALL
    for key, tag in _BEFORE:
        if value := row[key]:
            data = value.encode()
            n = len(data)
            parts += (tag, small[n] if n < 128 else varint(n), data)
    if (occurred_at := row["occurred_at"]) is not None:
        parts.append(_timestamp(occurred_at))
    parts.append(partner_id)
    for key, tag in _AFTER:
        if value := row[key]:
            data = value.encode()
            n = len(data)
            parts += (tag, small[n] if n < 128 else varint(n), data)
    context = b"".join(parts)
    n = len(context)
    head: tuple[bytes, ...] = (_CONTEXT_FIELD, small[n] if n < 128 else varint(n), context)
    if is_conversation:
        head += (_IS_CONVERSATION,)
    if text_length:
        head += (_TEXT_LENGTH, varint(text_length))
    return b"".join(head)


def partner_field(partner_id: str) -> bytes:
    """The encoded `partner_id` field of FeedbackContext (nothing for "")."""
    data = partner_id.encode()
    return _PARTNER_ID + _length(len(data)) + data if data else b""
