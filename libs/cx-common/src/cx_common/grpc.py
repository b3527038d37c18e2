"""gRPC helpers: client channels with deadlines, bounded retries with backoff and trace metadata; server-side
context binding so logs of a call carry the caller's request and trace ids."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import structlog
from grpc import aio

from cx_common.context import (
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    bind_request_context,
    outgoing_headers,
    trace_id_from_traceparent,
)

DEFAULT_TIMEOUT_S = 10.0


def retry_service_config(
    *,
    max_attempts: int = 3,
    initial_backoff: float = 0.1,
    max_backoff: float = 2.0,
    retryable: tuple[str, ...] = ("UNAVAILABLE", "RESOURCE_EXHAUSTED"),
) -> str:
    """A gRPC service config with a bounded retry policy (gRPC adds jitter and a retry throttle)."""
    config = {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": f"{initial_backoff}s",
                    "maxBackoff": f"{max_backoff}s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": list(retryable),
                },
            }
        ],
        # A retry budget: each failure costs a token, each success gives back 0.1, and retries stop below half of
        # maxTokens — about one retry per ten successes, so attempts stay ≤ ~1.1× calls even when a quarter of the
        # calls fail (tests/faults measure it through a fault-injecting proxy).
        "retryThrottling": {"maxTokens": 4, "tokenRatio": 0.1},
        # Spread calls over every address of a headless Service (e.g. all nlp Pods), not just the first.
        "loadBalancingConfig": [{"round_robin": {}}],
    }
    return json.dumps(config)


class _MetadataInterceptor(
    aio.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    aio.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds request id + traceparent to every call and a default deadline when the caller gave none."""

    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout

    def _details(self, details: aio.ClientCallDetails) -> aio.ClientCallDetails:
        metadata = aio.Metadata(*(details.metadata or ()))
        for key, value in outgoing_headers().items():
            if key not in metadata:
                metadata[key] = value
        return aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else self.default_timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


def insecure_channel(
    target: str,
    *,
    default_timeout: float = DEFAULT_TIMEOUT_S,
    max_attempts: int = 3,
    max_message_mb: int = 64,
) -> aio.Channel:
    options = [
        ("grpc.service_config", retry_service_config(max_attempts=max_attempts)),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", max_message_mb * 1024 * 1024),
        ("grpc.max_send_message_length", max_message_mb * 1024 * 1024),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    return aio.insecure_channel(
        target, options=options, interceptors=[cast(Any, _MetadataInterceptor(default_timeout))]
    )


class ServerContextInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Binds the caller's request/trace ids into the log context of each call."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        metadata = dict(handler_call_details.invocation_metadata or ())
        structlog.contextvars.clear_contextvars()
        bind_request_context(
            request_id=str(metadata.get(REQUEST_ID_HEADER, "")) or None,
            trace_id=trace_id_from_traceparent(str(metadata.get(TRACEPARENT_HEADER, ""))),
        )
        structlog.contextvars.bind_contextvars(rpc=handler_call_details.method)
        return await continuation(handler_call_details)
