"""Ticket lifecycle over HTTP: transitions, optimistic locking, owners, comments, closed loop, visibility."""

import uuid

from alerts_testkit import seed_org

from cx_common.pagination import encode_cursor


async def open_ticket(client, h, **extra):
    body = {"title": "店员态度差", "org_unit_id": "s1", "priority": "P3", "customer_key": "c-7", **extra}
    r = await client.post("/v1/tickets", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["ETag"] == '"1"'
    return r.json()


async def test_lifecycle_transitions_locking_and_closed_loop(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant, user="u-s1")
    await seed_org(env, client, tenant)
    t = await open_ticket(client, h)
    assert t["owner_user_id"] == "u-s1"
    assert t["allowed_transitions"] == ["acknowledged", "in_progress", "resolved"]
    tid = t["id"]

    # no precondition → 428; stale → 409; not allowed → 409 naming the allowed ones
    r = await client.post(f"/v1/tickets/{tid}/transitions", json={"status": "acknowledged"}, headers=h)
    assert r.status_code == 428
    r = await client.post(f"/v1/tickets/{tid}/transitions", json={"status": "closed"}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 409
    assert r.json()["allowed"] == ["acknowledged", "in_progress", "resolved"]
    assert "acknowledged, in_progress, resolved" in r.json()["detail"]
    r = await client.post(
        f"/v1/tickets/{tid}/transitions", json={"status": "acknowledged"}, headers={**h, "If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.json()["version"] == 2 and r.headers["ETag"] == '"2"'
    assert r.json()["first_responded_at"] is not None
    stale = await client.patch(f"/v1/tickets/{tid}", json={"priority": "P1", "version": 1}, headers=h)
    assert stale.status_code == 409
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["current_version"] == 2

    # owner must be a known user; watchers too
    r = await client.patch(f"/v1/tickets/{tid}", json={"owner_user_id": "ghost"}, headers={**h, "If-Match": '"2"'})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "owner_user_id"
    r = await client.patch(
        f"/v1/tickets/{tid}",
        json={"owner_user_id": "u-agent", "watchers": ["u-east"], "priority": "P1"},
        headers={**h, "If-Match": '"2"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["owner_user_id"] == "u-agent" and r.json()["watchers"] == ["u-east"]
    assert r.json()["priority"] == "P1"
    # P1 default: resolution 8 h after opening
    assert r.json()["resolution_due"].startswith("2026-11-23T09:00:00")

    # comments and internal notes
    await client.post(f"/v1/tickets/{tid}/comments", json={"body": "已联系顾客"}, headers=h)
    await client.post(f"/v1/tickets/{tid}/comments", json={"body": "内部：店长复盘", "internal": True}, headers=h)
    reader = env.headers(tenant, user="viewer", scopes=("tickets:read",))
    assert [c["body"] for c in (await client.get(f"/v1/tickets/{tid}/comments", headers=reader)).json()] == [
        "已联系顾客"
    ]
    assert len((await client.get(f"/v1/tickets/{tid}/comments", headers=h)).json()) == 2

    # closed loop: contact, resolve (needs a resolution code), close, reopen
    r = await client.post(
        f"/v1/tickets/{tid}/contacts",
        json={"method": "call", "outcome": "reached", "summary": "道歉并赠券", "follow_up_survey": True},
        headers=h,
    )
    assert r.status_code == 201
    current = await client.get(f"/v1/tickets/{tid}", headers=h)
    version = current.headers["ETag"]
    r = await client.post(
        f"/v1/tickets/{tid}/transitions", json={"status": "resolved"}, headers={**h, "If-Match": version}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "resolution_code"
    r = await client.post(
        f"/v1/tickets/{tid}/transitions",
        json={"status": "resolved", "resolution_code": "coupon", "outcome": "customer satisfied"},
        headers={**h, "If-Match": version},
    )
    assert r.status_code == 200 and r.json()["resolution_code"] == "coupon"
    detail = (await client.get(f"/v1/tickets/{tid}", headers=h)).json()
    assert detail["contacts"][0]["method"] == "call" and detail["contacts"][0]["follow_up_survey"] is True
    assert all(t["cancelled_at"] or t["fired_at"] for t in detail["timers"])
    v = detail["version"]
    r = await client.post(f"/v1/tickets/{tid}/transitions", json={"status": "closed", "version": v}, headers=h)
    assert r.status_code == 200 and r.json()["closed_at"]
    r = await client.post(f"/v1/tickets/{tid}/transitions", json={"status": "in_progress", "version": v + 1}, headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "in_progress" and r.json()["resolved_at"] is None and r.json()["closed_at"] is None


async def test_visibility_follows_the_org_tree_and_tenant(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    t1 = await open_ticket(client, h)
    await open_ticket(client, h, org_unit_id="s2")
    store1 = env.headers(tenant, user="u-s1", org="s1")
    region = env.headers(tenant, user="u-east", org="east")
    assert [t["id"] for t in (await client.get("/v1/tickets", headers=store1)).json()["items"]] == [t1["id"]]
    assert len((await client.get("/v1/tickets", headers=region)).json()["items"]) == 2
    store2 = env.headers(tenant, user="x", org="s2")
    assert (await client.get(f"/v1/tickets/{t1['id']}", headers=store2)).status_code == 404
    other = env.headers(uuid.uuid4())
    assert (await client.get(f"/v1/tickets/{t1['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/tickets", headers=other)).json()["items"] == []


async def test_bad_input(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    r = await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "nowhere"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "org_unit_id"
    r = await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1", "priority": "P9"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "priority"
    r = await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1", "watchers": ["ghost"]}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "watchers.0"
    assert (await client.get("/v1/tickets")).status_code == 401
    ro = env.headers(tenant, scopes=("tickets:read",))
    assert (await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1"}, headers=ro)).status_code == 403
    assert (await client.get("/v1/tickets?cursor=@@", headers=h)).status_code == 400
    tampered = encode_cursor({"id": "not-a-uuid"})  # decodes, but names no row: 400, not 500
    assert (await client.get(f"/v1/tickets?cursor={tampered}", headers=h)).status_code == 400


async def test_lists_are_newest_first_across_pages(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    opened = [(await open_ticket(client, h, title=f"t{i}"))["id"] for i in range(5)]
    page = (await client.get("/v1/tickets", params={"limit": 2}, headers=h)).json()
    ids = [t["id"] for t in page["items"]]
    while page["next_cursor"]:
        page = (await client.get("/v1/tickets", params={"limit": 2, "cursor": page["next_cursor"]}, headers=h)).json()
        ids += [t["id"] for t in page["items"]]
    assert ids == list(reversed(opened))
