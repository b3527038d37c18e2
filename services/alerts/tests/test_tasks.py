"""Improvement tasks: plan → approval → execution → acceptance with the before/after metric; roles enforced."""

import uuid

import asyncpg
from alerts_testkit import eventually, feedback_event, seed_org

from cx.events.v1 import events_pb2


async def publish_mentions(env, tenant, polarities):
    last = None
    for i, polarity in enumerate(polarities):
        env.clock.advance(minutes=1)
        last = await env.publish(
            tenant,
            "feedback.analyzed",
            feedback_event(aspects=[(["服务", "态度"], polarity, 0.9)], customer=f"m{i}", sentiment=polarity),
        )
    return last


async def test_task_goes_through_approval_and_acceptance_with_metric_and_audit(env, client):
    tenant = uuid.uuid4()
    await seed_org(env, client, tenant)
    analyst = env.headers(tenant, user="u-analyst", role="analyst", scopes=("tasks:*",), org="hq")
    region = env.headers(tenant, user="u-east", role="manager", scopes=("tasks:*",), org="east")
    ceo = env.headers(tenant, user="u-ceo", role="manager", scopes=("tasks:*",), org="hq")
    store = env.headers(tenant, user="u-s1", role="manager", scopes=("tasks:*",), org="s1")
    qa = env.headers(tenant, user="u-qa", role="verifier", scopes=("tasks:*",), org="hq")
    admin = env.headers(tenant)

    last = await publish_mentions(env, tenant, ["negative", "negative", "negative", "positive"])

    async def stored():
        r = await client.post(
            "/v1/rules/dry-run",
            json={"definition": {"trigger": "feedback.analyzed", "condition": {"type": "aspect", "path": ["服务"]}}},
            headers=admin,
        )
        return r.json()["evaluated"] == 4

    await eventually(stored)
    assert last is not None
    body = {
        "title": "提升门店服务态度",
        "source_kind": "aspect",
        "aspect_path": ["服务", "态度"],
        "department_id": "east",
    }
    r = await client.post("/v1/tasks", json=body, headers=analyst)
    assert r.status_code == 201, r.text
    task = r.json()
    tid = task["id"]
    assert task["status"] == "draft" and task["assignee_user_id"] == "u-east" and task["metric_before"] == 0.75

    async def act(headers, action, **payload):
        current = (await client.get(f"/v1/tasks/{tid}", headers=admin)).json()
        return await client.post(
            f"/v1/tasks/{tid}/{action}", json={"version": current["version"], **payload}, headers=headers
        )

    assert (await act(region, "approve")).status_code == 409  # not submitted yet
    r = await act(region, "submit", plan="培训 + 神秘顾客", due_date="2026-12-31")
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    assert (await act(store, "approve")).status_code == 404  # a store below the owner department cannot see it
    assert (await act(region, "approve")).status_code == 403  # assignee approving their own plan
    assert (await act(analyst, "approve")).status_code == 403  # not a manager
    r = await act(ceo, "reject")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "comment"
    r = await act(ceo, "reject", comment="需要量化目标")
    assert r.json()["status"] == "rejected" and r.json()["allowed_actions"] == ["submit"]
    await act(region, "submit", plan="培训 + 神秘顾客；差评率降到 30% 以下", due_date="2026-12-31")
    r = await act(ceo, "approve", comment="同意")
    assert r.json()["status"] == "approved" and r.json()["approver_id"] == "u-ceo"
    env.clock.advance(minutes=1)
    assert (await act(region, "start")).json()["status"] == "in_progress"
    p = await client.post(
        f"/v1/tasks/{tid}/progress", json={"note": "完成第一轮培训", "progress_percent": 50}, headers=region
    )
    assert p.status_code == 201

    last = await publish_mentions(env, tenant, ["negative", "positive", "positive", "positive"])

    async def after_stored():
        r = await client.post(
            "/v1/rules/dry-run",
            json={"definition": {"trigger": "feedback.analyzed", "condition": {"type": "aspect", "path": ["服务"]}}},
            headers=admin,
        )
        return r.json()["evaluated"] == 8

    await eventually(after_stored)
    r = await act(region, "complete")
    assert r.json()["status"] == "completed" and r.json()["metric_after"] == 0.25
    assert (await act(region, "accept")).status_code == 403  # the assignee cannot accept their own work
    r = await act(qa, "return", comment="请补充复盘报告")
    assert r.json()["status"] == "returned"
    await act(region, "start")
    await act(region, "complete")
    r = await act(qa, "accept", comment="效果明显")
    assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["verifier_id"] == "u-qa"
    assert r.json()["metric_before"] == 0.75 and r.json()["allowed_actions"] == []

    trail = (await client.get("/v1/audit", params={"entity_type": "task", "entity_id": tid}, headers=admin)).json()
    assert [(e["action"], e["actor_id"]) for e in trail["items"]] == [
        ("created", "u-analyst"),
        ("submit", "u-east"),
        ("reject", "u-ceo"),
        ("submit", "u-east"),
        ("approve", "u-ceo"),
        ("start", "u-east"),
        ("progress", "u-east"),
        ("complete", "u-east"),
        ("return", "u-qa"),
        ("start", "u-east"),
        ("complete", "u-east"),
        ("accept", "u-qa"),
    ]
    updates = (await client.get(f"/v1/tasks/{tid}/updates", headers=admin)).json()
    assert [u["kind"] for u in updates] == ["reject", "approve", "progress", "return", "accept"]

    conn = await asyncpg.connect(env.db.admin_url)
    try:
        rows = await conn.fetch("SELECT payload FROM alerts.outbox WHERE event_type LIKE 'task.%' ORDER BY id")
    finally:
        await conn.close()
    events = [events_pb2.Envelope.FromString(bytes(r["payload"])) for r in rows]
    assert [e.type for e in events] == [
        "task.created",
        "task.submitted",
        "task.rejected",
        "task.submitted",
        "task.approved",
        "task.started",
        "task.completed",
        "task.returned",
        "task.started",
        "task.completed",
        "task.accepted",
    ]
    assert events[-1].task_changed.metric_after == 0.25 and events[-1].task_changed.actor_user_id == "u-qa"


async def test_task_input_is_checked(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    r = await client.post("/v1/tasks", json={"title": "x", "source_kind": "aspect", "department_id": "east"}, headers=h)
    assert r.status_code == 422 and "aspect_path" in r.json()["detail"]
    r = await client.post(
        "/v1/tasks",
        json={"title": "x", "source_kind": "cluster", "cluster_id": "k1", "department_id": "mars"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "department_id"
    r = await client.post(
        "/v1/tasks",
        json={
            "title": "x",
            "source_kind": "cluster",
            "cluster_id": "k1",
            "department_id": "east",
            "assignee_user_id": "nobody",
        },
        headers=h,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "assignee_user_id"
    r = await client.post(
        "/v1/tasks",
        json={"title": "x", "source_kind": "cluster", "cluster_id": "k1", "department_id": "east"},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["metric_before"] is None
    tid = r.json()["id"]
    assert (await client.get(f"/v1/tasks/{tid}", headers=env.headers(uuid.uuid4()))).status_code == 404
    # org scoping: the region and HQ see the region's task, a store below it does not
    store = env.headers(tenant, user="u-s1", org="s1")
    assert (await client.get(f"/v1/tasks/{tid}", headers=store)).status_code == 404
    assert (await client.get("/v1/tasks", headers=store)).json()["items"] == []
    for org in ("east", "hq"):
        seen = (await client.get("/v1/tasks", headers=env.headers(tenant, org=org))).json()["items"]
        assert [t["id"] for t in seen] == [tid]
