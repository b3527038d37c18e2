"""Token-bucket rate limiting per partner, in the service process.

Each replica enforces the partner's limit on its own share of traffic; with N replicas behind a load balancer the
effective limit is up to N x the configured one (move the bucket to Postgres/NATS KV if that matters).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass


@dataclass
class Bucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[uuid.UUID, Bucket] = {}

    def take(self, key: uuid.UUID, *, per_minute: int, burst: int, cost: float = 1.0) -> float:
        """Take `cost` tokens; returns 0 when allowed, else the seconds to wait before retrying."""
        now = time.monotonic()
        rate = per_minute / 60.0
        capacity = float(max(burst, 1))
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate or bucket.capacity != capacity:
            bucket = Bucket(rate=rate, capacity=capacity, tokens=capacity, updated=now)
            self._buckets[key] = bucket
        bucket.tokens = min(bucket.capacity, bucket.tokens + (now - bucket.updated) * bucket.rate)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        if rate <= 0:
            return 60.0
        return (cost - bucket.tokens) / rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
