"""Token buckets and the rate-limit middleware: 429 problem+json with Retry-After, real HTTP through ASGI."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from cx_common.ratelimit import RateLimitMiddleware, TokenBuckets, retry_after


def test_bucket_allows_burst_then_asks_to_wait_and_refills() -> None:
    buckets = TokenBuckets(rate_per_s=2.0, burst=3)
    assert [buckets.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=0.0) == 0.5
    assert buckets.take("b", now=0.0) == 0.0  # keys are independent
    assert buckets.take("a", now=1.0) == 0.0  # refilled at 2 tokens/s


def test_per_key_rate_and_cost() -> None:
    buckets = TokenBuckets()
    assert buckets.take("p", cost=10, rate_per_s=10, burst=10, now=0.0) == 0.0
    assert buckets.take("p", cost=5, rate_per_s=10, burst=10, now=0.0) == 0.5
    # a changed limit starts from a full bucket
    assert buckets.take("p", cost=20, rate_per_s=20, burst=20, now=0.0) == 0.0


def test_bounded_number_of_keys() -> None:
    buckets = TokenBuckets(1.0, 1, max_keys=10)
    for i in range(100):
        buckets.take(i, now=0.0)
    assert len(buckets._buckets) == 10


def test_retry_after_is_whole_seconds() -> None:
    assert [retry_after(0.01), retry_after(1.0), retry_after(1.2)] == ["1", "1", "2"]


async def test_middleware_answers_429_with_retry_after() -> None:
    app = FastAPI()

    @app.get("/api/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(RateLimitMiddleware, per_minute=60, burst=2, path_prefix="/api/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        codes = [(await client.get("/api/x", headers={"Authorization": "Bearer a"})).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = await client.get("/api/x", headers={"Authorization": "Bearer a"})
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert int(limited.headers["Retry-After"]) >= 1
        assert (await client.get("/api/x", headers={"Authorization": "Bearer b"})).status_code == 200
        assert [(await client.get("/healthz")).status_code for _ in range(5)] == [200] * 5
