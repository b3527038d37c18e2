"""The hand-written `feedback.received` encoding gives the very bytes the generated protobuf classes give, and the
outbox envelopes around such payloads parse into the envelope `cx_common.events.build_envelope` would build."""

import datetime as dt
import random
import uuid

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope
from cx_ingest.feedback import received
from cx_ingest.outbox_bulk import Encoded, encode_envelopes

NAME = events_pb2.FeedbackReceived.DESCRIPTOR.full_name
STRINGS = ["", "a", "crm", "订单反馈 #12", "x" * 127, "y" * 128, "長" * 300, "e\u0301", "😀 emoji", "tab\tnew\nline"]
TIMES = [
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    dt.datetime(1901, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(2026, 11, 1, 12, 30, 0, 123_456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    dt.datetime(2026, 11, 1, 12, 30),  # naive: taken as UTC, like Timestamp.FromDatetime
    dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
]
KEYS = ("channel", "touchpoint_id", "journey_stage", "org_unit_id", "customer_key", "product_sku", "language",
        "external_id", "source_response_id", "agent_id")  # fmt: skip


def row_context(row: dict, row_id: uuid.UUID, partner_id: str) -> events_pb2.FeedbackContext:
    """The context as the generated classes build it."""
    context = events_pb2.FeedbackContext(feedback_id=str(row_id), partner_id=partner_id, **{k: row[k] for k in KEYS})
    context.occurred_at.FromDatetime(row["occurred_at"])
    return context


def generated_rows(n: int) -> list[dict]:
    rng = random.Random(7)
    return [
        {**{key: rng.choice(STRINGS) for key in KEYS}, "occurred_at": rng.choice(TIMES), "id": uuid.uuid4()}
        for _ in range(n)
    ]


def test_payload_bytes_equal_the_generated_classes():
    rng = random.Random(11)
    for row in generated_rows(2000):
        partner = rng.choice(["", str(uuid.uuid4())])
        conversation = rng.random() < 0.3
        length = rng.choice([0, 1, 127, 128, 20_000, 2**31 - 1])
        expected = events_pb2.FeedbackReceived(
            context=row_context(row, row["id"], partner), is_conversation=conversation, text_length=length
        ).SerializeToString()
        got = received.feedback_received(
            row, row["id"], received.partner_field(partner), is_conversation=conversation, text_length=length
        )
        assert got == expected, row


def test_varint_matches_protobuf_for_negative_and_large_values():
    for value in (0, 1, 127, 128, 300, 2**31 - 1, 2**63 - 1, -1, -(2**31), -(2**63)):
        message = events_pb2.FeedbackContext()
        message.occurred_at.seconds = value
        assert message.occurred_at.SerializeToString() == (b"\x08" + received.varint(value) if value else b"")


def test_envelopes_of_encoded_payloads_parse_like_build_envelope():
    tenant = uuid.uuid4()
    rows = generated_rows(50)
    messages = [events_pb2.FeedbackReceived(context=row_context(r, r["id"], "p"), text_length=3) for r in rows]
    encoded = [Encoded(NAME, m.SerializeToString()) for m in messages]
    for payloads in (messages, encoded):
        for (event_id, data), message in zip(
            encode_envelopes(tenant, "feedback.received", payloads, source="ingest", trace_id="t1"),
            messages,
            strict=True,
        ):
            parsed = events_pb2.Envelope.FromString(data)
            want = build_envelope(tenant_id=tenant, event_type="feedback.received", payload=message, source="ingest",
                                  trace_id="t1")  # fmt: skip
            want.event_id = str(event_id)
            want.occurred_at.CopyFrom(parsed.occurred_at)
            assert parsed == want
