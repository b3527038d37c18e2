"""One pooled httpx.AsyncClient for every upstream call; errors and timeouts become 502/504 problem+json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from cx_common.context import outgoing_headers
from cx_common.errors import Problem
from cx_common.logging import get_logger
from cx_gateway.proxy.routes import Upstream
from cx_gateway.settings import Settings

log = get_logger(__name__)

# Request headers passed on to the owning service (besides Authorization and the trace headers).
FORWARD_REQUEST_HEADERS = ("content-type", "accept", "accept-language", "idempotency-key", "if-match", "if-none-match")
# Response headers passed back to the caller.
FORWARD_RESPONSE_HEADERS = ("content-type", "location", "etag", "retry-after", "link", "content-disposition")


@dataclass
class UpstreamResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def is_json(self) -> bool:
        return "json" in self.headers.get("content-type", "")


class Upstreams:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_urls: dict[str, str] = {
            "survey": settings.survey_url.rstrip("/"),
            "ingest": settings.ingest_url.rstrip("/"),
            "alerts": settings.alerts_url.rstrip("/"),
        }
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.upstream_timeout_s, connect=settings.upstream_connect_timeout_s),
            # Idle pooled connections must be dropped before the services' uvicorn closes them (5 s keep-alive):
            # reusing one that the server is closing fails with "Server disconnected" (a spurious 502).
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0),
            transport=transport,
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        upstream: Upstream,
        method: str,
        path: str,
        *,
        authorization: str,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> UpstreamResponse:
        out = {k: v for k, v in (headers or {}).items() if k.lower() in FORWARD_REQUEST_HEADERS}
        out.update(outgoing_headers())
        out["authorization"] = authorization
        url = self.base_urls[upstream] + path
        try:
            response = await self.client.request(method, url, params=list(params or ()), headers=out, content=content)
        except httpx.TimeoutException as exc:
            log.warning("upstream_timeout", upstream=upstream, path=path)
            raise Problem(504, f"the {upstream} service did not answer in time", upstream=upstream) from exc
        except httpx.HTTPError as exc:
            log.warning("upstream_unreachable", upstream=upstream, path=path, error=str(exc))
            raise Problem(502, f"the {upstream} service is unreachable", upstream=upstream) from exc
        if response.status_code >= 500:
            log.warning("upstream_error", upstream=upstream, path=path, status=response.status_code)
            raise Problem(
                502,
                f"the {upstream} service failed ({response.status_code})",
                upstream=upstream,
                upstream_status=response.status_code,
            )
        kept = {k: v for k, v in response.headers.items() if k.lower() in FORWARD_RESPONSE_HEADERS}
        return UpstreamResponse(response.status_code, kept, response.content)
