"""Passwords, API keys, access tokens and the platform secret never reach a log line of any process of the stack,
after everything the tests of this directory did with them (logins, thousands of authenticated reads, refused and
rate-limited requests). Runs last in this directory (the file name), so that every log line is scanned."""

from __future__ import annotations

import pytest
from two_tenants import World

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_no_password_api_key_or_token_in_any_log(world: World) -> None:
    needles = {"platform secret": world.stack.internal_secret}
    for name, t in world.tenants.items():
        needles[f"{name}: api key"] = t.api_key
        needles |= {f"{name}: password of {k}": v for k, v in t.passwords.items()}
        needles |= {f"{name}: access token of {k}": v for k, v in t.tokens.items()}
    assert len(needles) > 25 and all(needles.values())
    lines = sum(len(v) for v in world.stack.logs.values())
    assert lines > 1000, "the services logged next to nothing: nothing to scan"
    hits = world.stack.find_in_logs(needles)
    assert hits == [], "\n".join(hits[:20])
