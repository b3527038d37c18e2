"""A small circuit breaker: after `threshold` consecutive failures the circuit opens for `cooldown` seconds; then
one probe is let through (half-open) and its outcome closes or re-opens the circuit. The worker's lanes share one
breaker, so half-open grants the probe to one lane at a time; a lane that got it but made no call gives it back
(`done`)."""

from __future__ import annotations

import time
from typing import Literal

State = Literal["closed", "open", "half_open"]
PROBE_POLL_S = 0.2


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.state: State = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False  # half-open: the one probe has been handed out

    def allow(self) -> bool:
        if self.state == "open" and time.monotonic() - self.opened_at >= self.cooldown:
            self.state = "half_open"
        if self.state == "open":
            return False
        if self.state == "half_open":
            if self.probing:
                return False
            self.probing = True
        return True

    def remaining(self) -> float:
        """How long a caller refused by `allow` should wait before asking again."""
        if self.state == "half_open" and self.probing:
            return PROBE_POLL_S
        if self.state != "open":
            return 0.0
        return max(0.0, self.cooldown - (time.monotonic() - self.opened_at))

    def done(self) -> None:
        """The caller that was allowed is finished; a probe it did not use goes back."""
        if self.state == "half_open":
            self.probing = False

    def success(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.probing = False

    def failure(self) -> None:
        self.probing = False
        self.failures += 1
        if self.state == "half_open" or self.failures >= self.threshold:
            self.state = "open"
            self.opened_at = time.monotonic()
