"""A small circuit breaker: after `threshold` consecutive failures the circuit opens for `cooldown` seconds; then
one probe is let through (half-open) and its outcome closes or re-opens the circuit."""

from __future__ import annotations

import time
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.state: State = "closed"
        self.failures = 0
        self.opened_at = 0.0

    def allow(self) -> bool:
        if self.state == "open" and time.monotonic() - self.opened_at >= self.cooldown:
            self.state = "half_open"
        return self.state != "open"

    def remaining(self) -> float:
        if self.state != "open":
            return 0.0
        return max(0.0, self.cooldown - (time.monotonic() - self.opened_at))

    def success(self) -> None:
        self.state = "closed"
        self.failures = 0

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            self.state = "open"
            self.opened_at = time.monotonic()
