"""Rate limiting of the public (unauthenticated) endpoints: the respondent page, its autosave and the public API.

Each request spends a token from the bucket of (client address, link) — the link being the personal token when the
URL carries one (`?t=`), else the survey — and one from a wider bucket of the address alone, so that rotating survey
ids or made-up tokens does not escape the limit. Over the limit: 429 problem+json with `Retry-After`. Buckets live in
the process (each replica enforces its own share); the primitive is `cx_common.ratelimit.TokenBuckets`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from cx_common.errors import problem_response
from cx_common.ratelimit import TokenBuckets, retry_after

PUBLIC_PATH = re.compile(r"^/(?:s|v1/public/surveys)/([^/]+)")


def client_address(scope: Scope, *, trust_forwarded: bool) -> str:
    if trust_forwarded:
        for name, value in scope.get("headers") or []:
            if name == b"x-forwarded-for":
                first = str(value.decode("latin-1")).split(",")[0].strip()
                if first:
                    return first
    client = scope.get("client")
    return str(client[0]) if client else "?"


class PublicRateLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        burst: int,
        address_factor: int = 5,
        trust_forwarded: bool = False,
    ) -> None:
        self.app = app
        self.enabled = per_minute > 0
        self.trust_forwarded = trust_forwarded
        self.links = TokenBuckets(per_minute / 60.0, burst)
        self.addresses = TokenBuckets(per_minute * address_factor / 60.0, burst * address_factor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = PUBLIC_PATH.match(scope.get("path", "")) if scope["type"] == "http" and self.enabled else None
        if match is None:
            await self.app(scope, receive, send)
            return
        address = client_address(scope, trust_forwarded=self.trust_forwarded)
        raw_query: bytes = scope.get("query_string", b"")
        query = parse_qs(raw_query.decode("latin-1")) if b"t=" in raw_query else {}
        link = "t:" + query["t"][0][:128] if query.get("t") else "s:" + match.group(1)[:64]
        wait = max(self.links.take((address, link)), self.addresses.take(address))
        if wait > 0:
            seconds = retry_after(wait)
            response = problem_response(
                429,
                "too many requests from this address for this link; retry later",
                headers={"Retry-After": seconds},
                retry_after_s=int(seconds),
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
