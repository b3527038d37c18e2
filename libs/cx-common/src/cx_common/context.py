"""Request-scoped identifiers that follow a request across HTTP, gRPC and events."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

import structlog

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"

_request_id: ContextVar[str] = ContextVar("cx_request_id", default="")
_trace_id: ContextVar[str] = ContextVar("cx_trace_id", default="")

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def new_request_id() -> str:
    return secrets.token_hex(12)


def trace_id_from_traceparent(value: str | None) -> str | None:
    """Extract the trace id of a W3C `traceparent` header; None when absent or malformed."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if not match or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def make_traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{new_span_id()}-01"


def current_request_id() -> str:
    return _request_id.get()


def current_trace_id() -> str:
    return _trace_id.get()


def bind_request_context(*, request_id: str | None = None, trace_id: str | None = None) -> tuple[str, str]:
    """Set the ids for the current task (new ones when absent) and bind them into every log line."""
    rid = request_id or new_request_id()
    tid = trace_id or new_trace_id()
    _request_id.set(rid)
    _trace_id.set(tid)
    structlog.contextvars.bind_contextvars(request_id=rid, trace_id=tid)
    return rid, tid


def outgoing_headers() -> dict[str, str]:
    """Headers/metadata to propagate the current ids to a downstream call."""
    headers: dict[str, str] = {}
    if rid := current_request_id():
        headers[REQUEST_ID_HEADER] = rid
    if tid := current_trace_id():
        headers[TRACEPARENT_HEADER] = make_traceparent(tid)
    return headers
