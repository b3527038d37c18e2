"""The analysis lanes share one circuit breaker: half-open hands its single probe to one lane at a time."""

import time

from cx_ingest.analysis.breaker import CircuitBreaker


def test_half_open_grants_one_probe_at_a_time_and_an_unused_one_goes_back() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=0.05)
    assert breaker.allow() and breaker.allow()  # closed: every lane
    breaker.failure()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.remaining() > 0
    time.sleep(0.06)
    assert breaker.allow()  # lane 1 gets the probe
    assert not breaker.allow() and not breaker.allow()  # lanes 2 and 3 wait…
    assert 0 < breaker.remaining() <= 0.2  # …polling, not spinning
    breaker.done()  # lane 1 found nothing to analyse: the probe goes back
    assert breaker.allow()
    breaker.failure()  # the probe failed: open again for a whole cooldown
    assert breaker.state == "open" and not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()
