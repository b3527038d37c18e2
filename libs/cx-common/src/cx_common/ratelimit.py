"""In-process token-bucket rate limiting: 429 problem+json with `Retry-After`.

Buckets live in the service process; with N replicas each enforces its own share (move them to Postgres or NATS KV
when a global limit matters). `TokenBuckets` is the primitive (per key, optional per-key rate); `RateLimitMiddleware`
applies it to a path prefix, keyed by the caller's credential with a wider per-address bucket behind it, so that
rotating made-up credentials does not escape the limit.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from starlette.types import ASGIApp, Receive, Scope, Send

from cx_common.errors import problem_response

ADDRESS_FACTOR = 5  # an address may spend this many callers' worth of requests


def retry_after(seconds: float) -> str:
    """`Retry-After` value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(seconds)))


class TokenBuckets:
    """Token buckets by key; `take` answers 0 when allowed, else the seconds until the request would be allowed."""

    def __init__(self, rate_per_s: float = 1.0, burst: float = 1.0, *, max_keys: int = 100_000) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float, float, float]] = OrderedDict()

    def take(
        self,
        key: Hashable,
        *,
        cost: float = 1.0,
        rate_per_s: float | None = None,
        burst: float | None = None,
        now: float | None = None,
    ) -> float:
        now = time.monotonic() if now is None else now
        rate = self.rate if rate_per_s is None else rate_per_s
        capacity = max(1.0, self.burst if burst is None else float(burst))
        tokens, last, old_rate, old_capacity = self._buckets.pop(key, (capacity, now, rate, capacity))
        if (old_rate, old_capacity) != (rate, capacity):  # the limit changed: start from a full bucket
            tokens, last = capacity, now
        tokens = min(capacity, tokens + (now - last) * rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / rate if rate > 0 else 60.0
        self._buckets[key] = (tokens, now, rate, capacity)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def _default_key(scope: Scope) -> str | None:
    credential = dict(scope.get("headers") or []).get(b"authorization", b"")
    return "t:" + hashlib.sha256(credential).hexdigest()[:32] if credential else None


class RateLimitMiddleware:
    """Limits requests under `path_prefix` per caller (by default: the Authorization header, else the address)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        burst: int,
        path_prefix: str = "/",
        exempt: tuple[str, ...] = (),
        key: Callable[[Scope], str | None] = _default_key,
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.path_prefix = path_prefix
        self.key = key
        self.buckets = TokenBuckets(per_minute / 60.0, burst)
        self.address_buckets = TokenBuckets(per_minute * ADDRESS_FACTOR / 60.0, burst * ADDRESS_FACTOR)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(self.path_prefix) or path in self.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = "ip:" + (client[0] if client else "?")
        caller = self.key(scope)
        wait = self.buckets.take(caller or address)
        if caller is not None:
            wait = max(wait, self.address_buckets.take(address))
        if wait > 0:
            seconds = retry_after(wait)
            response = problem_response(
                429, "rate limit exceeded; retry later", headers={"Retry-After": seconds}, retry_after_s=int(seconds)
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
