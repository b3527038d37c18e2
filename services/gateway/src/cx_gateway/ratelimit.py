"""In-process token-bucket rate limiting for the public API: 429 problem+json with Retry-After.

Generic (candidate for libs/cx-common). Buckets are per caller (hash of the bearer token or API token, else the
client address) and per process; with several replicas each enforces its own share.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from cx_common.errors import problem_response

IP_FACTOR = 5  # an address may spend this many callers' worth of requests


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else seconds until a token is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class RateLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, per_minute: int, burst: int, path_prefix: str = "/api/", exempt: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.buckets = TokenBuckets(per_minute / 60.0, burst)
        # Every address also has a wider bucket, so rotating made-up credentials does not escape the limit.
        self.address_buckets = TokenBuckets(per_minute * IP_FACTOR / 60.0, burst * IP_FACTOR)
        self.path_prefix = path_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.path_prefix) or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        credential = headers.get(b"authorization", b"")
        client = scope.get("client")
        address = "ip:" + (client[0] if client else "?")
        key = "t:" + hashlib.sha256(credential).hexdigest()[:32] if credential else address
        wait = max(self.buckets.take(key), self.address_buckets.take(address) if credential else 0.0)
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            response = problem_response(
                429, "rate limit exceeded; retry later", headers={"Retry-After": retry}, retry_after_s=int(retry)
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
