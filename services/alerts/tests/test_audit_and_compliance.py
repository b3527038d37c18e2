"""Audit trail (append-only in the database, hash-chained) and agent compliance on transcripts."""

import uuid

import asyncpg
import pytest
from alerts_testkit import eventually, feedback_event, seed_org


async def test_audit_trail_is_append_only_and_tamper_evident(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    t = (await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1"}, headers=h)).json()
    await client.post(f"/v1/tickets/{t['id']}/transitions", json={"status": "acknowledged", "version": 1}, headers=h)
    await client.put("/v1/sla-policies/P1", json={"first_response_minutes": 10, "resolution_minutes": 60}, headers=h)
    trail = (await client.get("/v1/audit", headers=h)).json()["items"]
    assert [(e["entity_type"], e["action"]) for e in trail] == [
        ("ticket", "created"),
        ("ticket", "status:acknowledged"),
        ("sla_policy", "set"),
    ]
    assert trail[1]["actor_type"] == "user" and trail[1]["actor_id"] == "admin-1"
    assert trail[1]["before"]["status"] == "open" and trail[1]["after"]["status"] == "acknowledged"
    assert trail[1]["prev_hash"] == trail[0]["hash"]
    page = (await client.get("/v1/audit?limit=2", headers=h)).json()
    rest = (await client.get(f"/v1/audit?limit=2&cursor={page['next_cursor']}", headers=h)).json()
    assert [e["id"] for e in page["items"] + rest["items"]] == [e["id"] for e in trail]
    assert (await client.get("/v1/audit/verify", headers=h)).json() == {
        "intact": True,
        "entries_checked": 3,
        "first_broken_id": None,
    }
    assert (await client.get("/v1/audit", headers=env.headers(uuid.uuid4()))).json()["items"] == []

    # the service's own role cannot rewrite history; even the owner of the table is stopped by the trigger
    conn = await asyncpg.connect(env.db.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for sql in ("UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()
    # a superuser who disables the trigger and edits a row is caught by the hash chain
    admin = await asyncpg.connect(env.db.admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute("ALTER TABLE alerts.audit_log DISABLE TRIGGER audit_log_append_only")
        await admin.execute("UPDATE alerts.audit_log SET after = '{}'::jsonb WHERE id = $1", trail[1]["id"])
    finally:
        await admin.close()
    check = (await client.get("/v1/audit/verify", headers=h)).json()
    assert check["intact"] is False and check["first_broken_id"] == trail[1]["id"]


async def test_audit_trail_is_limited_to_the_callers_org_subtree(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    t1 = (await client.post("/v1/tickets", json={"title": "s1 queue", "org_unit_id": "s1"}, headers=h)).json()
    t2 = (await client.post("/v1/tickets", json={"title": "s2 rude", "org_unit_id": "s2"}, headers=h)).json()
    await client.put("/v1/sla-policies/P1", json={"first_response_minutes": 10, "resolution_minutes": 60}, headers=h)

    async def seen(org: str | None, **params: str) -> list[tuple[str, str]]:
        headers = env.headers(tenant, user=f"u-{org}", role="manager", org=org)
        answer = await client.get("/v1/audit", headers=headers, params=params)
        assert answer.status_code == 200, answer.text
        return [(e["entity_type"], e["entity_id"]) for e in answer.json()["items"]]

    everything = [("ticket", t1["id"]), ("ticket", t2["id"]), ("sla_policy", "P1")]
    assert await seen("hq") == everything
    assert await seen("east") == everything[:2]  # both stores' tickets, not the tenant's configuration
    assert await seen("s1") == [("ticket", t1["id"])]
    assert await seen("s1", entity_type="ticket", entity_id=t2["id"]) == []  # asking by id does not get round it
    assert await seen("s2") == [("ticket", t2["id"])]


PROFILE = {
    "name": "热线服务规范",
    "definition": {
        "required": [
            {"name": "greeting", "phrases": ["您好", "hello"], "where": "start", "within_turns": 1},
            {"name": "identity_check", "phrases": ["核实", "verify"], "where": "any"},
            {"name": "closing", "phrases": ["感谢", "thank you"], "where": "end", "within_turns": 1},
        ],
        "forbidden_phrases": ["不归我管"],
        "customer_risk_phrases": ["投诉", "律师"],
        "channels": ["hotline"],
    },
}


async def test_agent_compliance_scores_conversations_and_alerts_supervisors(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    assert (await client.post("/v1/compliance/profiles", json=PROFILE, headers=h)).status_code == 201
    good = [("agent", "您好，这里是客服"), ("customer", "我的订单"), ("agent", "先核实一下身份"), ("agent", "感谢来电")]
    bad = [("agent", "喂"), ("customer", "我要投诉"), ("agent", "这不归我管"), ("agent", "再见")]
    await env.publish(tenant, "feedback.analyzed", feedback_event(turns=good, agent="a-1", sentiment="neutral"))
    last = await env.publish(tenant, "feedback.analyzed", feedback_event(turns=bad, agent="a-2", sentiment="neutral"))
    # chat conversations are outside this profile
    await env.publish(tenant, "feedback.analyzed", feedback_event(turns=bad, agent="a-3", channel="chat"))

    async def alerted():
        items = (await client.get("/v1/alerts", headers=h)).json()["items"]
        return items if any(a["source_event_id"] == last.event_id for a in items) else None

    alerts = await eventually(alerted)
    assert len(alerts) == 1 and alerts[0]["kind"] == "compliance" and alerts[0]["severity"] == "critical"
    assert "forbidden_phrase 不归我管" in alerts[0]["reason"] and "customer_risk 投诉" in alerts[0]["reason"]
    cards = {c["agent_id"]: c for c in (await client.get("/v1/compliance/scorecards", headers=h)).json()}
    assert set(cards) == {"a-1", "a-2"}
    assert cards["a-1"]["average_score"] == 1.0 and cards["a-1"]["pass_rate"] == 1.0
    assert cards["a-2"]["average_score"] == 0.0 and cards["a-2"]["pass_rate"] == 0.0
    assert cards["a-2"]["violations"]["missing_required:greeting"] == 1
    supervisor = (await client.get("/v1/notifications", headers=env.headers(tenant, user="u-s1"))).json()["items"]
    assert any(n["kind"] == "compliance" for n in supervisor)


async def test_audit_query_filters(env, client):
    tenant = uuid.uuid4()
    await seed_org(env, client, tenant)
    alice, bob = env.headers(tenant, user="alice"), env.headers(tenant, user="bob")
    t = (await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1"}, headers=alice)).json()
    await client.post(f"/v1/tickets/{t['id']}/transitions", json={"status": "acknowledged", "version": 1}, headers=bob)
    await client.put("/v1/sla-policies/P1", json={"first_response_minutes": 10, "resolution_minutes": 60}, headers=bob)
    await client.post(f"/v1/tickets/{t['id']}/comments", json={"body": "note", "internal": True}, headers=alice)

    async def actions(**params):
        r = await client.get("/v1/audit", params=params, headers=alice)
        assert r.status_code == 200, r.text
        return [(e["actor_id"], e["entity_type"], e["action"]) for e in r.json()["items"]]

    everything = (await client.get("/v1/audit", headers=alice)).json()["items"]
    assert len(everything) == 4
    assert await actions(actor_id="bob") == [("bob", "ticket", "status:acknowledged"), ("bob", "sla_policy", "set")]
    assert await actions(entity_type="sla_policy") == [("bob", "sla_policy", "set")]
    assert await actions(entity_type="ticket", entity_id=t["id"], actor_id="alice") == [
        ("alice", "ticket", "created"),
        ("alice", "ticket", "internal_note"),
    ]
    assert await actions(action="status:acknowledged") == [("bob", "ticket", "status:acknowledged")]
    since = everything[2]["occurred_at"]
    assert await actions(since=since) == [(e["actor_id"], e["entity_type"], e["action"]) for e in everything[2:]]
    assert await actions(until=since) == [(e["actor_id"], e["entity_type"], e["action"]) for e in everything[:2]]
    # filters and cursor together
    page = (await client.get("/v1/audit", params={"actor_id": "alice", "limit": 1}, headers=alice)).json()
    rest = (
        await client.get("/v1/audit", params={"actor_id": "alice", "cursor": page["next_cursor"]}, headers=alice)
    ).json()
    assert [e["action"] for e in page["items"] + rest["items"]] == ["created", "internal_note"]
    bad = await client.get("/v1/audit", params={"since": "yesterday"}, headers=alice)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"


async def test_the_entries_of_one_transaction_chain_in_order(env, client):
    """A detractor's alert and its ticket are audited in the consumer's one transaction: chained, in order."""
    from alerts_testkit import NPS_RULE, response_event

    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    rule = (await client.post("/v1/rules", json=NPS_RULE, headers=h)).json()
    await env.publish(tenant, "survey.response.submitted", response_event(nps=2))

    async def audited():
        items = (await client.get("/v1/audit", params={"actor_id": rule["id"]}, headers=h)).json()["items"]
        return items if len(items) == 2 else None

    raised, created = await eventually(audited)
    assert (raised["entity_type"], raised["action"]) == ("alert", "raised")
    assert (created["entity_type"], created["action"]) == ("ticket", "created")
    assert created["prev_hash"] == raised["hash"] and created["id"] > raised["id"]
    assert (await client.get("/v1/audit/verify", headers=h)).json()["intact"] is True


async def test_scorecards_over_time_and_within_the_callers_subtree(env, client):
    import datetime as dt

    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    assert (await client.post("/v1/compliance/profiles", json=PROFILE, headers=h)).status_code == 201
    good = [("agent", "您好"), ("agent", "先核实一下"), ("agent", "感谢来电")]
    bad = [("agent", "喂"), ("agent", "再见")]
    day1 = env.clock.now()
    last = None
    for when, agent, store, turns in [
        (day1, "a-1", "s1", good),
        (day1 + dt.timedelta(hours=1), "a-1", "s1", bad),
        (day1 + dt.timedelta(days=1), "a-1", "s1", good),
        (day1 + dt.timedelta(days=1), "a-2", "s2", bad),
    ]:
        env.clock.set(when)
        last = await env.publish(
            tenant, "feedback.analyzed", feedback_event(turns=turns, agent=agent, store=store, sentiment="neutral")
        )

    async def scored():
        r = await client.get("/v1/compliance/results", params={"limit": 10}, headers=h)
        return len(r.json()) == 4

    await eventually(scored)
    assert last is not None
    params = {"since": (day1 - dt.timedelta(days=1)).isoformat(), "interval": "day"}
    cards = {c["agent_id"]: c for c in (await client.get("/v1/compliance/scorecards", params=params, headers=h)).json()}
    assert set(cards) == {"a-1", "a-2"}
    trend = cards["a-1"]["trend"]
    assert [p["period_start"] for p in trend] == [str(day1.date()), str((day1 + dt.timedelta(days=1)).date())]
    assert [(p["conversations"], p["pass_rate"]) for p in trend] == [(2, 0.5), (1, 1.0)]
    assert cards["a-1"]["conversations"] == 3
    # a store manager sees the agents of their store only, in scorecards and results alike
    store1 = env.headers(tenant, user="u-s1", org="s1")
    mine = (await client.get("/v1/compliance/scorecards", params=params, headers=store1)).json()
    assert [c["agent_id"] for c in mine] == ["a-1"]
    results = (await client.get("/v1/compliance/results", headers=store1)).json()
    assert {r["agent_id"] for r in results} == {"a-1"} and len(results) == 3
    region = env.headers(tenant, user="u-east", org="east")
    assert len((await client.get("/v1/compliance/scorecards", params=params, headers=region)).json()) == 2
    weekly = (await client.get("/v1/compliance/scorecards", params={**params, "interval": "week"}, headers=h)).json()
    assert [p["period_start"] for p in weekly[0]["trend"]] == ["2026-11-23"]  # both days in the week of Monday 23rd
    bad_interval = await client.get("/v1/compliance/scorecards", params={"interval": "hour"}, headers=h)
    assert bad_interval.status_code == 422 and bad_interval.json()["errors"][0]["field"] == "interval"
