"""Internal HTTP client: pooled connections, timeouts, and the caller's request/trace ids on every request."""

from __future__ import annotations

import httpx

from cx_common.context import outgoing_headers


async def _propagate_ids(request: httpx.Request) -> None:
    for key, value in outgoing_headers().items():
        request.headers.setdefault(key, value)


def internal_client(
    base_url: str = "",
    *,
    timeout: float = 10.0,
    connect_timeout: float = 2.0,
    max_connections: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One per process and upstream; close it on shutdown."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections // 2),
        event_hooks={"request": [_propagate_ids]},
        transport=transport,
    )
