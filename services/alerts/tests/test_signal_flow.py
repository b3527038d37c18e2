"""Signals → rules → alerts + tickets + events, through real NATS and Postgres."""

import uuid

import asyncpg
from alerts_testkit import NPS_RULE, eventually, feedback_event, response_event, seed_org

from cx.events.v1 import events_pb2


async def outbox_events(env, types: tuple[str, ...]) -> list[events_pb2.Envelope]:
    conn = await asyncpg.connect(env.db.admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch("SELECT payload FROM alerts.outbox WHERE event_type = ANY($1) ORDER BY id", list(types))
    finally:
        await conn.close()
    return [events_pb2.Envelope.FromString(bytes(r["payload"])) for r in rows]


async def test_detractor_opens_ticket_for_its_store_with_owner_sla_and_events(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    assert (await client.post("/v1/rules", json=NPS_RULE, headers=h)).status_code == 201

    promoter = await env.publish(tenant, "survey.response.submitted", response_event(nps=9, customer="c-happy"))
    detractor = await env.publish(
        tenant, "survey.response.submitted", response_event(nps=3, customer="c-1", text="排队太久")
    )

    async def ticket():
        items = (await client.get("/v1/tickets", headers=h)).json()["items"]
        return items[0] if items else None

    t = await eventually(ticket)
    assert t["org_unit_id"] == "s1"
    assert t["org_path"] == ["hq", "east", "s1"]
    assert t["owner_user_id"] == "u-s1"  # the store's manager
    assert t["priority"] == "P2"
    assert t["status"] == "open"
    assert t["source_type"] == "survey.response.submitted"
    assert t["source_event_id"] == detractor.event_id
    # default P2 policy (24x7): first response 4 h, resolution 24 h after opening
    assert t["first_response_due"].startswith("2026-11-23T05:00:00")
    assert t["resolution_due"].startswith("2026-11-24T01:00:00")
    detail = (await client.get(f"/v1/tickets/{t['id']}", headers=h)).json()
    assert detail["source"]["nps"] == 3
    assert detail["source"]["answers"][1]["text_value"] == "排队太久"
    assert {x["kind"] for x in detail["timers"]} == {"first_response", "resolution"}

    alerts = (await client.get("/v1/alerts", headers=h)).json()["items"]
    assert len(alerts) == 1
    assert alerts[0]["ticket_id"] == t["id"] and alerts[0]["severity"] == "critical"
    assert alerts[0]["reason"] == "nps 3 <= 6"
    assert alerts[0]["source_event_id"] != promoter.event_id
    other_store = env.headers(tenant, org="s2")
    assert (await client.post(f"/v1/alerts/{alerts[0]['id']}/acknowledge", headers=other_store)).status_code == 404
    acked = await client.post(f"/v1/alerts/{alerts[0]['id']}/acknowledge", headers=h)
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"

    raised = await outbox_events(env, ("alert.raised",))
    assert [e.alert_raised.alert_id for e in raised] == [alerts[0]["id"]]
    created = await outbox_events(env, ("ticket.created",))
    assert created[-1].ticket_changed.ticket_id == t["id"]
    assert created[-1].ticket_changed.owner_user_id == "u-s1"
    assert created[-1].ticket_changed.first_response_due.seconds > 0

    # the owner and the rule's extra recipient are notified
    owner_inbox = (await client.get("/v1/notifications", headers=env.headers(tenant, user="u-s1"))).json()["items"]
    assigned = [n for n in owner_inbox if n["kind"] == "ticket_assigned" and n["ticket_id"] == t["id"]]
    assert assigned[0]["title"].startswith("[P2] 新工单：Detractor")  # no locale in the directory: zh-Hans
    east_inbox = (await client.get("/v1/notifications", headers=env.headers(tenant, user="u-east"))).json()["items"]
    assert [n["title"] for n in east_inbox if n["kind"] == "alert"] == ["[critical] Alert: Detractor"]  # locale en


async def test_one_customers_burst_makes_one_ticket(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    await client.post("/v1/rules", json=NPS_RULE, headers=h)
    for score in (2, 4, 1):
        await env.publish(tenant, "survey.response.submitted", response_event(nps=score, customer="c-burst"))
    await env.publish(tenant, "survey.response.submitted", response_event(nps=0, customer="c-other"))

    async def four_alerts():
        items = (await client.get("/v1/alerts", headers=h)).json()["items"]
        return items if len(items) == 4 else None

    alerts = await eventually(four_alerts)
    tickets = (await client.get("/v1/tickets", headers=h)).json()["items"]
    assert sorted(t["customer_key"] for t in tickets) == ["c-burst", "c-other"]
    burst = next(t for t in tickets if t["customer_key"] == "c-burst")
    assert sum(1 for a in alerts if a["ticket_id"] == burst["id"]) == 3
    notes = (await client.get(f"/v1/tickets/{burst['id']}/comments", headers=h)).json()
    assert sum(1 for n in notes if n["internal"] and n["body"].startswith("grouped alert")) == 2

    # after the window a new burst opens a new ticket
    env.clock.advance(minutes=61)
    await env.publish(tenant, "survey.response.submitted", response_event(nps=2, customer="c-burst"))

    async def three_tickets():
        items = (await client.get("/v1/tickets?customer_key=c-burst", headers=h)).json()["items"]
        return len(items) == 2

    await eventually(three_tickets)


async def test_feedback_rules_combine_sentiment_aspect_intent_and_scope(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    rule = {
        "name": "Angry about staff, or churn",
        "enabled": True,
        "definition": {
            "trigger": "feedback.analyzed",
            "scope": {"org_unit_ids": ["east"], "channels": ["hotline", "chat"]},
            "condition": {
                "type": "any",
                "conditions": [
                    {
                        "type": "all",
                        "conditions": [
                            {"type": "sentiment", "label": "negative", "min_confidence": 0.8},
                            {"type": "aspect", "path": ["服务"], "polarity": "negative"},
                        ],
                    },
                    {"type": "intent", "intent": "churn-risk", "min_score": 0.7},
                    {"type": "regex", "patterns": [r"投诉\d*次"]},
                ],
            },
            "actions": {"severity": "warning", "open_ticket": {"priority": "P3"}},
            "grouping_window_minutes": 0,
        },
    }
    created = await client.post("/v1/rules", json=rule, headers=h)
    assert created.status_code == 201, created.text
    cases = [
        (feedback_event(aspects=[(["服务", "态度", "冷漠"], "negative", 0.9)], customer="a"), True),  # sub-path
        (feedback_event(aspects=[(["服务", "态度"], "negative", 0.9)], score=0.5, customer="b"), False),  # low conf
        (feedback_event(sentiment="neutral", intents={"churn-risk": 0.9}, customer="c"), True),
        (feedback_event(sentiment="neutral", intents={"churn-risk": 0.4}, customer="d"), False),
        (feedback_event(sentiment="neutral", text="我已经投诉3次了", customer="e"), True),
        (feedback_event(aspects=[(["服务"], "negative", 0.9)], channel="review", customer="f"), False),  # channel
    ]
    for event, _ in cases:
        await env.publish(tenant, "feedback.analyzed", event)
    # an out-of-scope org unit (not under east) never matches
    await env.publish(
        tenant, "feedback.analyzed", feedback_event(intents={"churn-risk": 1.0}, store="hq", customer="g")
    )
    sentinel = await env.publish(tenant, "feedback.analyzed", feedback_event(intents={"churn-risk": 1.0}, customer="z"))

    async def sentinel_seen():
        items = (await client.get("/v1/alerts?limit=100", headers=h)).json()["items"]
        return items if any(a["source_event_id"] == sentinel.event_id for a in items) else None

    alerts = await eventually(sentinel_seen)
    got = sorted(a["customer_key"] for a in alerts)
    assert got == ["a", "c", "e", "z"]
    tickets = (await client.get("/v1/tickets", headers=h)).json()["items"]
    assert len(tickets) == 4
    t = next(t for t in tickets if t["customer_key"] == "a")
    detail = (await client.get(f"/v1/tickets/{t['id']}", headers=h)).json()
    assert detail["source"]["aspects"][0]["path"] == ["服务", "态度", "冷漠"]  # NLP analysis kept
    assert detail["source_feedback_id"].startswith("f-")


async def test_disabled_rule_does_nothing_and_tenant_rules_stay_apart(env, client):
    tenant, other = uuid.uuid4(), uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    created = (await client.post("/v1/rules", json=NPS_RULE, headers=h)).json()
    await client.post(f"/v1/rules/{created['id']}/disable", headers=h)
    await env.publish(tenant, "survey.response.submitted", response_event(nps=1))
    await env.publish(other, "survey.response.submitted", response_event(nps=1))
    # enable again: the next detractor of `tenant` alerts, `other` has no rule
    await client.post(f"/v1/rules/{created['id']}/enable", headers=h)
    last = await env.publish(tenant, "survey.response.submitted", response_event(nps=2, customer="c-late"))

    async def seen():
        items = (await client.get("/v1/alerts", headers=h)).json()["items"]
        return items if any(a["source_event_id"] == last.event_id for a in items) else None

    # the enable may land before the first event is consumed; either way only tenant's events can alert
    alerts = await eventually(seen)
    assert all(a["customer_key"] in ("c-1", "c-late") for a in alerts)
    assert (await client.get("/v1/alerts", headers=env.headers(other))).json()["items"] == []
    assert (await client.get("/v1/tickets", headers=env.headers(other))).json()["items"] == []


async def test_redelivered_event_is_applied_once_and_analysis_joins_the_ticket(env, client):
    import nats

    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    await client.post("/v1/rules", json=NPS_RULE, headers=h)
    envelope = await env.publish(tenant, "survey.response.submitted", response_event(nps=1, text="太慢了"))
    # the same event again under another broker message id (past JetStream's dedup): the consumer drops it
    nc = await nats.connect(env.nats_url)
    try:
        await nc.jetstream().publish(
            f"{env.settings.events_subject_prefix}.survey.response.submitted",
            envelope.SerializeToString(),
            headers={"Nats-Msg-Id": "again-" + envelope.event_id},
        )
    finally:
        await nc.close()
    # ingest's analysis of the response's open answer arrives later and lands on the ticket
    analysis = feedback_event(channel="survey", aspects=[(["效率", "等待"], "negative", 0.95)], customer="c-1")
    analysis.context.source_response_id = envelope.survey_response_submitted.response_id
    await env.publish(tenant, "feedback.analyzed", analysis)
    sentinel = await env.publish(tenant, "survey.response.submitted", response_event(nps=8))

    async def processed():
        r = await client.post("/v1/rules/dry-run", json={"definition": NPS_RULE["definition"]}, headers=h)
        return any(m for m in r.json()["matches"]) and r.json()["evaluated"] == 2

    await eventually(processed)
    assert sentinel is not None

    async def analysed():
        tickets = (await client.get("/v1/tickets", headers=h)).json()["items"]
        detail = (await client.get(f"/v1/tickets/{tickets[0]['id']}", headers=h)).json()
        return detail if detail["analysis"] else None

    detail = await eventually(analysed)
    assert detail["analysis"]["aspects"][0]["path"] == ["效率", "等待"]
    assert detail["source"]["nps"] == 1
    assert len((await client.get("/v1/alerts", headers=h)).json()["items"]) == 1
    assert len((await client.get("/v1/tickets", headers=h)).json()["items"]) == 1


async def test_ops_endpoints_and_openapi(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}
    assert "cx_http_requests_total" in (await client.get("/metrics")).text
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "CX alerts service"
    for path in ("/v1/rules", "/v1/tickets/{ticket_id}/transitions", "/v1/tasks/{task_id}/accept", "/v1/audit"):
        assert path in spec["paths"]


async def test_the_outbox_relay_is_woken_by_listen_notify_by_default(env):
    """bench/time_to_alert: a LISTEN/NOTIFY-woken relay beats polling only; the default must stay the faster one."""
    from cx_alerts.settings import Settings
    from cx_local.pytest_plugin import app_client

    assert Settings().outbox_listen is True
    assert env.settings.outbox_listen is True
    app = env.app()
    async with app_client(app, env.tokens):
        assert app.state.runtime.relay.database_url == env.settings.database_url
        conn = await asyncpg.connect(env.db.admin_url.replace("postgresql+asyncpg", "postgresql"))
        try:

            async def listening():
                return await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query ILIKE 'LISTEN%cx_outbox%'"
                )

            assert await eventually(listening) >= 1
        finally:
            await conn.close()
