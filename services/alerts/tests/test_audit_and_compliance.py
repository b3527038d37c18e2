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
