"""Transactional outbox, relay to NATS JetStream, and durable idempotent consumers."""

from cx_common.events.batch_consumer import BatchEventConsumer, BatchHandler
from cx_common.events.bus import EventBus, connect_nats, ensure_stream
from cx_common.events.consumer import EventConsumer, EventHandler
from cx_common.events.envelope import build_envelope, payload_of, subject_for
from cx_common.events.outbox import add_event
from cx_common.events.relay import OutboxRelay

__all__ = [
    "BatchEventConsumer",
    "BatchHandler",
    "EventBus",
    "EventConsumer",
    "EventHandler",
    "OutboxRelay",
    "add_event",
    "build_envelope",
    "connect_nats",
    "ensure_stream",
    "payload_of",
    "subject_for",
]
