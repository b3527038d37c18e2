"""Forwarding against real upstreams: a small FastAPI app served by uvicorn on an ephemeral port (verifying the
gateway's tokens through the gateway's JWKS), and a grpc.aio NLP servicer on an ephemeral port."""

from typing import Any

import pytest

from cx_common.auth import JWTVerifier


@pytest.fixture
def gateway_overrides(upstream, cx_nlp_grpc) -> dict[str, Any]:
    return {
        "alerts_url": upstream[1],
        "survey_url": "http://127.0.0.1:9",  # nothing listens: unreachable
        "nlp_grpc_target": cx_nlp_grpc,  # the real NLP service (tiny model)
        "upstream_timeout_s": 0.5,
        "cors_origins": ["https://app.example"],
    }


@pytest.fixture
async def world(gw, demo, upstream):
    up, _ = upstream
    up.verifier = JWTVerifier(
        issuer="cx-gateway", audience="cx", jwks=(await gw.client.get("/api/v1/auth/jwks")).json()
    )
    units = demo.units
    up.tickets = [
        {"id": f"t{i}", "org_unit_id": str(units[code]), "title": f"ticket {i}"}
        for i, code in enumerate(["S-SH-01", "S-GZ-01", "S-SH-01", "S-HZ-01", "S-SZ-01"])
    ]
    return up


async def test_forwarding_propagates_identity_request_id_and_traceparent(gw, demo, world):
    headers = await gw.headers("owner@demo.cx")
    trace = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    r = await gw.client.post(
        "/api/v1/tickets",
        json={"title": "空调坏了"},
        headers={**headers, "x-request-id": "req-123", "traceparent": trace, "Idempotency-Key": "k1"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["created_by"]["sub"] == str(demo.users["owner@demo.cx"])
    assert r.headers["location"] == "/v1/tickets/x"
    seen = world.seen[-1]["headers"]
    assert seen["x-request-id"] == "req-123"
    assert seen["traceparent"].split("-")[1] == "ab" * 16
    assert seen["idempotency-key"] == "k1"


async def test_cursor_pagination_passes_through(gw, demo, world):
    headers = await gw.headers("owner@demo.cx")
    first = (await gw.client.get("/api/v1/tickets?limit=2", headers=headers)).json()
    second = (await gw.client.get(f"/api/v1/tickets?limit=2&cursor={first['next_cursor']}", headers=headers)).json()
    assert [t["id"] for t in first["items"] + second["items"]] == ["t0", "t1", "t2", "t3"]
    assert world.seen[-1]["query"] == {"limit": "2", "cursor": "2"}


async def test_store_manager_never_sees_another_stores_tickets(gw, demo, world):
    manager = await gw.headers("store.manager@demo.cx")  # S-SH-01
    items = (await gw.client.get("/api/v1/tickets?limit=10", headers=manager)).json()["items"]
    assert {t["id"] for t in items} == {"t0", "t2"}
    assert (await gw.client.get("/api/v1/tickets/t1", headers=manager)).status_code == 404
    assert (await gw.client.get("/api/v1/tickets/t0", headers=manager)).status_code == 200
    east = await gw.headers("east.manager@demo.cx")
    items = (await gw.client.get("/api/v1/tickets?limit=10", headers=east)).json()["items"]
    assert {t["id"] for t in items} == {"t0", "t2", "t3"}
    # the upstream got the caller's own org claim to filter by
    assert world.seen[-1]["headers"]["authorization"].startswith("Bearer ")


async def test_scopes_are_enforced_before_forwarding(gw, demo, world):
    viewer = await gw.headers("viewer@demo.cx")
    before = len(world.seen)
    r = await gw.client.post("/api/v1/tickets", json={"title": "x"}, headers=viewer)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert (await gw.client.post("/api/v1/rules", json={}, headers=viewer)).status_code == 403
    assert len(world.seen) == before
    assert (await gw.client.get("/api/v1/tickets")).status_code == 401


async def test_upstream_errors_and_timeouts_are_problem_json(gw, demo, world):
    headers = await gw.headers("owner@demo.cx")
    missing = await gw.client.get("/api/v1/tickets/nope", headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    boom = await gw.client.get("/api/v1/tickets/boom", headers=headers)
    assert boom.status_code == 502 and boom.json()["upstream"] == "alerts"
    slow = await gw.client.get("/api/v1/tickets/slow", headers=headers)
    assert slow.status_code == 504 and slow.headers["content-type"] == "application/problem+json"
    down = await gw.client.get("/api/v1/surveys", headers=headers)
    assert down.status_code == 502 and down.json()["upstream"] == "survey"


async def test_api_token_callers_are_forwarded_with_a_minted_jwt(gw, demo, world):
    admin = await gw.headers("admin@demo.cx")
    created = await gw.client.post(
        "/api/v1/api-tokens",
        json={"name": "app", "role": "agent", "org_unit_id": str(demo.units["S-GZ-01"])},
        headers=admin,
    )
    token = created.json()["token"]
    items = (await gw.client.get("/api/v1/tickets?limit=10", headers={"Authorization": f"Bearer {token}"})).json()
    assert [t["id"] for t in items["items"]] == ["t1"]
    forwarded = world.seen[-1]["headers"]["authorization"]
    assert token not in forwarded  # the API token itself never leaves the gateway


async def test_cors_preflight(gw):
    r = await gw.client.options(
        "/api/v1/tickets",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
    )
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    r = await gw.client.options(
        "/api/v1/tickets", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in r.headers


async def test_nlp_playground_over_grpc(gw, demo):
    headers = await gw.headers("analyst@demo.cx")
    r = await gw.client.post(
        "/api/v1/nlp/analyze", json={"text": "服务 太差 了"}, headers={**headers, "x-request-id": "nlp-req"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sentiment"]["label"] == "SENTIMENT_NEGATIVE"
    assert body["model_version"] == "cx-tiny@tiny-1"
    assert body["language"]["language"] == "zh-Hans"
    assert {k["text"] for k in body["keywords"]} & {"服务", "太差"}
    bad = await gw.client.post("/api/v1/nlp/analyze", json={"text": "   "}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"] == "text: is empty" and bad.json()["field"] == "text"
    empty = await gw.client.post("/api/v1/nlp/analyze", json={"text": ""}, headers=headers)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "text"
    viewer = await gw.headers("viewer@demo.cx")
    assert (await gw.client.post("/api/v1/nlp/analyze", json={"text": "x"}, headers=viewer)).status_code == 403


@pytest.mark.parametrize("gateway_overrides", [{"rate_limit_per_minute": 60, "rate_limit_burst": 3}])
async def test_rate_limit_429_with_retry_after(gw):
    headers = {"Authorization": "Bearer whatever"}
    codes = [(await gw.client.get("/api/v1/auth/me", headers=headers)).status_code for _ in range(4)]
    assert codes[:3] == [401, 401, 401] and codes[3] == 429
    limited = await gw.client.get("/api/v1/auth/me", headers=headers)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"] == "application/problem+json"
    # another caller has its own bucket ...
    assert (await gw.client.get("/api/v1/auth/me", headers={"Authorization": "Bearer other"})).status_code == 401
    # ... but made-up credentials from one address run into the address's wider bucket
    codes = [
        (await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer made-up-{i}"})).status_code
        for i in range(20)
    ]
    assert 429 in codes
    # the JWKS every service fetches is never limited
    assert (await gw.client.get("/api/v1/auth/jwks")).status_code == 200


async def test_writes_on_out_of_scope_items_are_404_before_reaching_the_owner(gw, demo, world):
    manager = await gw.headers("store.manager@demo.cx")  # S-SH-01; t1 belongs to S-GZ-01
    other = await gw.client.post("/api/v1/tickets/t1/transitions", json={"status": "resolved"}, headers=manager)
    assert other.status_code == 404
    assert "handled_by" not in world.tickets[1]
    mine = await gw.client.post("/api/v1/tickets/t0/transitions", json={"status": "resolved"}, headers=manager)
    assert mine.status_code == 200 and mine.json()["handled_by"] == str(demo.users["store.manager@demo.cx"])


async def test_each_resource_has_its_own_scope_rule(gw, demo, world):
    u = {k: str(v) for k, v in demo.units.items()}
    world.tickets = [
        {"id": "mine", "org_unit_id": u["S-SH-01"], "assigned_org_unit_id": u["S-SH-01"]},
        {"id": "other", "org_unit_id": u["S-GZ-01"], "assigned_org_unit_id": u["S-GZ-01"]},
        # about another store, but assigned to this one: its owner unit may see it
        {"id": "assigned-here", "org_unit_id": u["S-GZ-01"], "assigned_org_unit_id": u["S-SH-01"]},
        # escalated up to the region: still about (and visible at) the store
        {"id": "escalated", "org_unit_id": u["S-SH-01"], "assigned_org_unit_id": u["R-EAST"]},
        {"id": "nowhere", "org_unit_id": "", "assigned_org_unit_id": ""},  # data on no unit: tenant-wide only
    ]
    world.calendars = [
        {"id": "default", "org_unit_id": None},  # tenant-wide configuration
        {"id": "hq", "org_unit_id": u["HQ"]},  # set on HQ: applies to every store below
        {"id": "east", "org_unit_id": u["R-EAST"]},
        {"id": "sh", "org_unit_id": u["S-SH-01"]},
        {"id": "gz", "org_unit_id": u["S-GZ-01"]},
    ]
    store = await gw.headers("store.manager@demo.cx")
    tickets = (await gw.client.get("/api/v1/tickets?limit=10", headers=store)).json()["items"]
    assert [t["id"] for t in tickets] == ["mine", "assigned-here", "escalated"]
    assert (await gw.client.get("/api/v1/tickets/assigned-here", headers=store)).status_code == 200
    assert (await gw.client.get("/api/v1/tickets/nowhere", headers=store)).status_code == 404
    calendars = (await gw.client.get("/api/v1/calendars", headers=store)).json()
    assert [c["id"] for c in calendars] == ["default", "hq", "east", "sh"]
    analyst = await gw.headers("analyst@demo.cx")  # at the root unit: the whole tenant
    assert len((await gw.client.get("/api/v1/tickets?limit=10", headers=analyst)).json()["items"]) == 5
    assert (await gw.client.get("/api/v1/tickets/nowhere", headers=analyst)).status_code == 200


async def test_org_scoped_callers_read_the_audit_trail_of_visible_tickets_only(gw, demo, world):
    store = await gw.headers("store.manager@demo.cx")  # t0 is theirs, t1 belongs to S-GZ-01
    whole = await gw.client.get("/api/v1/audit", headers=store)
    assert whole.status_code == 403 and whole.json()["field"] == "entity_id"
    mine = await gw.client.get("/api/v1/audit", params={"entity_type": "ticket", "entity_id": "t0"}, headers=store)
    assert mine.status_code == 200 and [e["entity_id"] for e in mine.json()["items"]] == ["t0"]
    other = await gw.client.get("/api/v1/audit", params={"entity_type": "ticket", "entity_id": "t1"}, headers=store)
    assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    odd = await gw.client.get("/api/v1/audit", params={"entity_type": "ticket", "entity_id": "../x"}, headers=store)
    assert odd.status_code == 422 and odd.json()["field"] == "entity_id"
    assert (await gw.client.get("/api/v1/audit/verify", headers=store)).status_code == 403
    analyst = await gw.headers("analyst@demo.cx")  # at the root unit: the whole trail
    assert len((await gw.client.get("/api/v1/audit", headers=analyst)).json()["items"]) == 5
