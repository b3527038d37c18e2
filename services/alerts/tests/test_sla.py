"""SLA: business-time arithmetic, durable timers, escalation store → region → HQ with a controllable clock."""

import asyncio
import datetime as dt
import uuid

import asyncpg
import pytest
from alerts_testkit import eventually, seed_org

from cx_alerts.context import Ctx
from cx_alerts.sla.calendar import WorkCalendar, add_business_minutes
from cx_alerts.sla.scheduler import Scheduler
from cx_common.db import create_engine, session_factory
from cx_local.pytest_plugin import app_client

NINE_TO_SIX = {d: [(9 * 60, 12 * 60), (13 * 60, 18 * 60)] for d in range(5)}


def test_business_minutes_skip_nights_weekends_holidays_and_lunch():
    cal = WorkCalendar(timezone="Asia/Shanghai", hours=NINE_TO_SIX, holidays=frozenset({dt.date(2026, 11, 24)}))
    friday_5pm = dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.UTC)  # 17:00 in Shanghai
    # 60 min on Friday, then Monday 09:00 + 30 min
    assert add_business_minutes(friday_5pm, 90, cal) == dt.datetime(2026, 11, 30, 1, 30, tzinfo=dt.UTC)
    monday_11 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)
    # 60 min until lunch, lunch skipped, 13:00 + 30; Tuesday is a holiday
    assert add_business_minutes(monday_11, 90, cal) == dt.datetime(2026, 11, 23, 5, 30, tzinfo=dt.UTC)
    assert add_business_minutes(monday_11, 60 + 300 + 10, cal) == dt.datetime(2026, 11, 25, 1, 10, tzinfo=dt.UTC)
    saturday = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)
    assert add_business_minutes(saturday, 0, cal) == dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)


def test_business_minutes_follow_wall_clock_across_dst():
    cal = WorkCalendar(timezone="America/New_York", hours=NINE_TO_SIX)
    # Friday 2026-10-30 17:30 EDT; Monday 2026-11-02 is EST (UTC-5)
    start = dt.datetime(2026, 10, 30, 21, 30, tzinfo=dt.UTC)
    assert add_business_minutes(start, 60, cal) == dt.datetime(2026, 11, 2, 14, 30, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="no working hours"):
        add_business_minutes(start, 1, WorkCalendar(timezone="UTC", hours={}))


async def test_business_calendar_sets_due_dates_in_the_store_time_zone(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    cal = {
        "name": "门店营业时间",
        "working_hours": {d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-11-24"],
    }
    assert (await client.post("/v1/calendars", json=cal, headers=h)).status_code == 201
    assert (await client.post("/v1/calendars", json=cal, headers=h)).status_code == 409
    bad = {**cal, "working_hours": {"mon": [["18:00", "09:00"]]}}
    r = await client.post("/v1/calendars", json=bad, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "working_hours"
    r = await client.post("/v1/calendars", json={**cal, "timezone": "Mars/Base"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "timezone"
    policy = {"first_response_minutes": 120, "resolution_minutes": 600, "business_hours": True}
    assert (await client.put("/v1/sla-policies/P3", json=policy, headers=h)).status_code == 200
    env.clock.set(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC))  # Monday 17:00 in Shanghai
    t = (await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1"}, headers=h)).json()
    assert t["first_response_due"].startswith("2026-11-25T02:00:00")  # Wednesday 10:00 (Tuesday is a holiday)
    assert t["resolution_due"].startswith("2026-11-26T02:00:00")
    preview = await client.get(
        "/v1/calendars:due",
        params={"start": "2026-11-23T09:00:00+00:00", "minutes": 120, "org_unit_id": "s1"},
        headers=h,
    )
    assert preview.json()["due"].startswith("2026-11-25T02:00:00") and preview.json()["timezone"] == "Asia/Shanghai"
    policies = (await client.get("/v1/sla-policies", headers=h)).json()
    assert [p["priority"] for p in policies] == ["P1", "P2", "P3", "P4"]
    assert policies[2]["version"] == 1 and policies[0]["version"] == 0


async def _ticket(client, h, tid):
    return (await client.get(f"/v1/tickets/{tid}", headers=h)).json()


async def test_unattended_ticket_escalates_store_region_hq_across_a_restart(env):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    policy = {
        "first_response_minutes": 30,
        "resolution_minutes": 600,
        "escalation_minutes": 60,
        "business_hours": False,
    }
    async with app_client(env.app(), env.tokens) as client:
        await seed_org(env, client, tenant)
        await client.put("/v1/sla-policies/P2", json=policy, headers=h)
        t = (
            await client.post("/v1/tickets", json={"title": "差评", "org_unit_id": "s1", "priority": "P2"}, headers=h)
        ).json()
        tid = t["id"]
        assert t["owner_user_id"] == "u-s1" and t["first_response_due"].startswith("2026-11-23T01:30:00")
        env.clock.advance(minutes=29, seconds=59)
        await asyncio.sleep(0.3)  # scheduler polls several times; nothing is due yet
        assert (await _ticket(client, h, tid))["escalation_level"] == 0
        env.clock.advance(seconds=1)

        async def level(n):
            t = await _ticket(client, h, tid)
            return t if t["escalation_level"] == n else None

        t = await eventually(lambda: level(1))
        assert t["assigned_org_unit_id"] == "east" and t["owner_user_id"] == "u-east"
        assert t["first_response_breached"] is True
        assert "u-s1" in t["watchers"]
    # the service is down while the next level's deadline passes
    env.clock.advance(minutes=61)
    async with app_client(env.app(), env.tokens) as client:
        t = await eventually(lambda: level(2))
        assert t["assigned_org_unit_id"] == "hq" and t["owner_user_id"] == "u-ceo"
        env.clock.advance(minutes=61)

        async def top_reached():
            timers = (await _ticket(client, h, tid))["timers"]
            return [x for x in timers if x["kind"] == "escalation" and x["level"] == 2 and x["fired_at"]]

        fired = await eventually(top_reached)
        assert fired[0]["outcome"] == "breached at the top of the org tree"
        t = await _ticket(client, h, tid)
        assert t["escalation_level"] == 2
        ceo = (await client.get("/v1/notifications", headers=env.headers(tenant, user="u-ceo"))).json()["items"]
        escalated = [n["title"] for n in ceo if n["kind"] == "ticket_escalated"]
        assert escalated == ["[P2] 工單已升級至HQ：差评"]  # the CEO reads Traditional Chinese
        trail = (await client.get("/v1/audit", params={"entity_type": "ticket", "entity_id": tid}, headers=h)).json()[
            "items"
        ]
        actions = [e["action"] for e in trail]
        assert actions == ["created", "escalated", "escalated", "sla_breached:first_response"]
        assert trail[1]["actor_id"] == "sla-scheduler" and trail[1]["after"]["owner_user_id"] == "u-east"
        # once acknowledged, nothing escalates any more
        r = await client.post(
            f"/v1/tickets/{tid}/transitions", json={"status": "acknowledged", "version": t["version"]}, headers=h
        )
        assert r.status_code == 200


async def test_concurrent_schedulers_fire_each_timer_once(env):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    env.settings.scheduler_enabled = False
    async with app_client(env.app(), env.tokens) as client:
        await seed_org(env, client, tenant)
        ids = []
        for _ in range(5):
            r = await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1", "priority": "P1"}, headers=h)
            ids.append(r.json()["id"])
        env.clock.advance(minutes=61)  # P1 default: first response within 60 min
        engine = create_engine(env.settings.database_url, env.settings.db_schema)
        try:
            schedulers = [
                Scheduler(session_factory(engine), Ctx(env.clock, env.settings.events_subject_prefix)) for _ in range(4)
            ]
            fired = await asyncio.gather(*(s.run_due() for s in schedulers))
        finally:
            await engine.dispose()
        assert sum(fired) == 5
        for tid in ids:
            t = await _ticket(client, h, tid)
            assert t["escalation_level"] == 1 and t["owner_user_id"] == "u-east"


async def test_a_request_holding_the_ticket_never_deadlocks_with_the_scheduler(env):
    """A request locks the ticket, then updates its timers (acknowledging cancels them). The scheduler must not take
    the due timer and then wait for that ticket: the two would deadlock. It skips the busy ticket instead."""
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    env.settings.scheduler_enabled = False
    async with app_client(env.app(), env.tokens) as client:
        await seed_org(env, client, tenant)
        r = await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1", "priority": "P1"}, headers=h)
        tid = uuid.UUID(r.json()["id"])
        env.clock.advance(minutes=61)  # the first-response timer is due
        engine = create_engine(env.settings.database_url, env.settings.db_schema)
        request = await asyncpg.connect(env.settings.database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            scheduler = Scheduler(session_factory(engine), Ctx(env.clock, env.settings.events_subject_prefix))
            async with request.transaction():
                await request.execute("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", tid)
                # bounded only so that a regression fails instead of hanging
                assert await asyncio.wait_for(scheduler.run_due(), timeout=20) == 0
                await request.execute(
                    "UPDATE sla_timers SET cancelled_at = now() WHERE ticket_id = $1 AND fired_at IS NULL", tid
                )
            assert await scheduler.run_due() == 0  # cancelled by the request meanwhile
        finally:
            await request.close()
            await engine.dispose()
        t = await _ticket(client, h, str(tid))
        assert t["escalation_level"] == 0 and t["owner_user_id"] == "u-s1"
        assert all(x["fired_at"] is None for x in t["timers"])


async def test_a_due_timer_of_a_busy_ticket_fires_once_the_ticket_is_free(env):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    env.settings.scheduler_enabled = False
    async with app_client(env.app(), env.tokens) as client:
        await seed_org(env, client, tenant)
        r = await client.post("/v1/tickets", json={"title": "x", "org_unit_id": "s1", "priority": "P1"}, headers=h)
        tid = uuid.UUID(r.json()["id"])
        env.clock.advance(minutes=61)
        engine = create_engine(env.settings.database_url, env.settings.db_schema)
        request = await asyncpg.connect(env.settings.database_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            scheduler = Scheduler(session_factory(engine), Ctx(env.clock, env.settings.events_subject_prefix))
            async with request.transaction():  # e.g. a comment being written: the timers stay
                await request.execute("SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", tid)
                assert await asyncio.wait_for(scheduler.run_due(), timeout=20) == 0
            assert await scheduler.run_due() == 1
        finally:
            await request.close()
            await engine.dispose()
        t = await _ticket(client, h, str(tid))
        assert t["escalation_level"] == 1 and t["owner_user_id"] == "u-east"


async def test_calendar_bad_input(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    cal = {"name": "门店", "working_hours": {"mon": [["09:00", "18:00"]]}}
    r = await client.post("/v1/calendars", json={**cal, "org_unit_id": "atlantis"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "org_unit_id"
    s1 = await client.post("/v1/calendars", json={**cal, "org_unit_id": "s1"}, headers=h)
    s2 = await client.post("/v1/calendars", json={**cal, "org_unit_id": "s2"}, headers=h)
    assert s1.status_code == s2.status_code == 201
    # moving s2's calendar onto s1 would make two calendars for one unit
    r = await client.put(f"/v1/calendars/{s2.json()['id']}", json={**cal, "org_unit_id": "s1"}, headers=h)
    assert r.status_code == 409 and r.json()["field"] == "org_unit_id"
    r = await client.put(f"/v1/calendars/{s2.json()['id']}", json={**cal, "org_unit_id": "ghost"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "org_unit_id"
    renamed = {**cal, "name": "店2", "org_unit_id": "s2"}
    r = await client.put(f"/v1/calendars/{s2.json()['id']}", json=renamed, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2
