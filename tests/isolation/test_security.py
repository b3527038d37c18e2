"""Limits of the public surfaces on the real processes (real sockets, the launcher's settings): oversized bodies are
refused with 413 problem+json by every service, whether the size is announced or streamed; the partner API and the
survey's public endpoints answer 429 with Retry-After once a caller's budget is spent.

(The gateway's per-caller limit is raised in this stack for the isolation reads; its 429 is tested in
services/gateway/tests/test_public_api.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_stack import client
from two_tenants import World, ok

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MIB = 1024 * 1024


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def targets(world: World) -> list[tuple[str, str, dict[str, str]]]:
    """(service, path, headers) of one JSON write per service, each with credentials that reach it."""
    a = world.tenants["a"]
    with client(world.stack.url("gateway"), a.tokens["owner"]) as gw:
        survey_id = ok(gw.get("/api/v1/surveys"))["items"][0]["id"]
    bearer = {"Authorization": f"Bearer {a.tokens['owner']}"}
    return [
        ("gateway", "/api/v1/org-units", bearer),
        ("survey", f"/v1/public/surveys/{survey_id}/responses", {}),
        ("ingest", "/v1/feedback:batch", {"Authorization": f"ApiKey {a.api_key}", "Idempotency-Key": "too-big"}),
        ("alerts", "/v1/tickets", bearer),
    ]


def test_oversized_bodies_are_refused_with_413_by_every_service(world: World) -> None:
    body = b'{"text": "' + b"x" * (5 * MIB) + b'"}'  # above every service's JSON limit (4 MiB by default)

    def streamed() -> Iterator[bytes]:  # no Content-Length: the limit must count what arrives
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    for service, path, headers in targets(world):
        with client(world.stack.url(service), **headers) as c:
            announced = c.post(path, content=body, headers={"Content-Type": "application/json"})
            problem(announced, 413)
            chunked = c.post(path, content=streamed(), headers={"Content-Type": "application/json"})
            problem(chunked, 413)
            # the service is still there and answers normally
            assert c.get("/healthz").status_code == 200, service


def test_partner_api_answers_429_with_retry_after_when_its_key_is_over_its_limit(world: World) -> None:
    a = world.tenants["a"]
    with client(world.stack.url("gateway"), a.tokens["owner"]) as gw:
        partner = ok(
            gw.post("/api/v1/partners", json={"title": "slow CRM", "rate_limit_per_minute": 1, "rate_limit_burst": 2})
        )
        key = ok(gw.post(f"/api/v1/partners/{partner['id']}/keys", json={"name": "limited"}), 201)["key"]
    item = {"external_id": "RL-1", "channel": "chat", "text": "hello"}
    with client(world.stack.url("ingest"), Authorization=f"ApiKey {key}") as ingest:
        answers = [
            ingest.post("/v1/feedback:batch", json={"items": [item]}, headers={"Idempotency-Key": f"rl-{i}"})
            for i in range(5)
        ]
    codes = [r.status_code for r in answers]
    assert codes[0] in (200, 201, 207), answers[0].text
    limited = [r for r in answers if r.status_code == 429]
    assert limited, codes
    problem(limited[0], 429)
    assert int(limited[0].headers["Retry-After"]) >= 1


def test_survey_public_endpoints_answer_429_with_retry_after(world: World) -> None:
    a = world.tenants["a"]
    with client(world.stack.url("gateway"), a.tokens["owner"]) as gw:
        survey_id = ok(gw.get("/api/v1/surveys"))["items"][-1]["id"]
    with client(world.stack.url("survey")) as public:
        codes = []
        for _ in range(400):  # far above the default burst per address and link
            r = public.get(f"/v1/public/surveys/{survey_id}")
            codes.append(r.status_code)
            if r.status_code == 429:
                break
    assert codes[0] == 200 and codes[-1] == 429, codes[-3:]
    problem(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
