"""The read model fed through real NATS JetStream: events published like the owning services do, consumed
idempotently, queried with org-subtree scoping per role."""

import asyncio
import uuid

import pytest


async def test_overview_metrics_for_hq(gw, loaded):
    body = (await gw.client.get("/api/v1/analytics/overview", headers=await gw.headers("analyst@demo.cx"))).json()
    # NPS: promoters 2 (10, 9), detractors 2 (3, 0), passive 1 -> 0
    assert body["nps"] == 0.0 and body["promoters"] == 2 and body["detractors"] == 2
    assert body["csat"] == 3.5
    assert body["sentiment"] == {"negative": 2, "neutral": 0, "positive": 1}
    assert body["complaint_rate"] == round(2 / 3, 4)
    assert body["tickets_created"] == 2 and body["tickets_open"] == 1 and body["sla_compliance"] == 1.0


async def test_store_manager_sees_only_their_store(gw, loaded):
    manager = await gw.headers("store.manager@demo.cx")
    body = (await gw.client.get("/api/v1/analytics/overview", headers=manager)).json()
    assert body["responses"] == 2 and body["nps"] == 100.0 and body["feedback"] == 2
    assert body["tickets_created"] == 1 and body["tickets_open"] == 0
    # another store: 404, not an empty answer
    other = await gw.client.get(f"/api/v1/analytics/overview?org_unit_id={loaded.units['S-GZ-01']}", headers=manager)
    assert other.status_code == 404
    kw = (await gw.client.get("/api/v1/analytics/terms?kind=keyword", headers=manager)).json()["items"]
    assert {k["term"] for k in kw} == {"排队", "态度", "fast"}
    fusion = (await gw.client.get("/api/v1/analytics/fusion?attribute=segment", headers=manager)).json()["items"]
    assert {i["value"]: i["responses"] for i in fusion} == {"vip": 1, "(none)": 1}


ROLE_EXPECTATIONS = [
    # (user, responses visible, may drill into the East region)
    ("owner@demo.cx", 5, True),
    ("admin@demo.cx", 5, True),
    ("analyst@demo.cx", 5, True),
    ("east.manager@demo.cx", 3, True),
    ("store.manager@demo.cx", 2, False),
    ("agent@demo.cx", 2, False),
    ("viewer@demo.cx", 1, False),
]


async def test_every_role_is_limited_to_its_subtree(gw, loaded):
    for email, responses, sees_east in ROLE_EXPECTATIONS:
        headers = await gw.headers(email)
        body = (await gw.client.get("/api/v1/analytics/overview", headers=headers)).json()
        assert body["responses"] == responses, email
        east = await gw.client.get(f"/api/v1/analytics/overview?org_unit_id={loaded.units['R-EAST']}", headers=headers)
        assert east.status_code == (200 if sees_east else 404), email
        units = (await gw.client.get("/api/v1/org-units?limit=100", headers=headers)).json()["items"]
        if not sees_east:
            assert all(u["code"].startswith("S-") for u in units), email


async def test_drilldown_hq_region_store(gw, loaded):
    headers = await gw.headers("owner@demo.cx")
    top = (await gw.client.get("/api/v1/analytics/drilldown", headers=headers)).json()
    by_code = {i["code"]: i for i in top["items"]}
    assert by_code["R-EAST"]["responses"] == 3 and by_code["R-SOUTH"]["responses"] == 2
    assert by_code["R-EAST"]["has_children"] and by_code["D-CX"]["tasks_created"] == 1
    east = (
        await gw.client.get(
            f"/api/v1/analytics/drilldown?org_unit_id={by_code['R-EAST']['org_unit_id']}", headers=headers
        )
    ).json()
    assert {i["code"]: i["nps"] for i in east["items"]} == {"S-HZ-01": -100.0, "S-SH-01": 100.0}
    assert east["parent"]["name"] == "华东区 East"


async def test_aspects_three_levels_and_breakdowns(gw, loaded):
    headers = await gw.headers("analyst@demo.cx")
    l1 = (await gw.client.get("/api/v1/analytics/aspects?level=1", headers=headers)).json()["items"]
    assert {(a["path"][0], a["mentions"]) for a in l1} == {("服务", 2), ("产品", 1)}
    l3 = (await gw.client.get("/api/v1/analytics/aspects?level=3&parent=服务 > 态度", headers=headers)).json()
    assert l3["items"][0]["path"] == ["服务", "态度", "冷漠"] and l3["items"][0]["negative"] == 1
    tps = (await gw.client.get("/api/v1/analytics/breakdown?by=touchpoint", headers=headers)).json()["items"]
    assert {t["key"]: t["responses"] for t in tps if t["responses"]} == {"tp-checkout": 4, "tp-delivery": 1}
    days = (await gw.client.get("/api/v1/analytics/breakdown?by=day", headers=headers)).json()["items"]
    assert sum(d["responses"] for d in days) == 5
    bad = await gw.client.get("/api/v1/analytics/breakdown?by=weather", headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "by"
    rng = await gw.client.get("/api/v1/analytics/overview?from=2026-02-01&to=2026-01-01", headers=headers)
    assert rng.status_code == 422 and rng.json()["field"] == "from"


async def test_redelivered_event_is_applied_once(gw, loaded, ev):
    headers = await gw.headers("owner@demo.cx")
    env = await ev.publish(gw, "survey.response.submitted", ev.response(loaded.units["S-SZ-01"], 10), loaded.tenant_id)
    # same event id under another broker message id: the consumer's processed-event table drops it
    await ev.publish(
        gw,
        "survey.response.submitted",
        ev.response(loaded.units["S-SZ-01"], 10),
        loaded.tenant_id,
        event_id=uuid.UUID(env.event_id),
        msg_id=str(uuid.uuid4()),
    )
    marker = await ev.publish(
        gw, "survey.response.submitted", ev.response(loaded.units["S-SZ-01"], 0), loaded.tenant_id
    )
    assert marker

    async def done():
        body = (await gw.client.get("/api/v1/analytics/overview", headers=headers)).json()
        return body if body["responses"] >= 7 else None

    body = await ev.until(done)
    await asyncio.sleep(0.5)
    body = (await gw.client.get("/api/v1/analytics/overview", headers=headers)).json()
    assert body["responses"] == 7


async def test_kpi_formula_per_org_unit(gw, loaded):
    headers = await gw.headers("analyst@demo.cx")
    bad = await gw.client.post(
        "/api/v1/kpis", json={"code": "x", "name": "x", "formula": "__import__('os')"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "formula"
    created = await gw.client.post(
        "/api/v1/kpis",
        json={"code": "simple-index", "name": "CX index", "formula": "0.5*nps/100 + 0.5*(1 - complaint_rate)"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    values = (await gw.client.get(f"/api/v1/kpis/{created.json()['id']}/values", headers=headers)).json()
    by_name = {v["name"]: v["value"] for v in values}
    assert by_name["总部 HQ"] == pytest.approx(0.5 * 0 + 0.5 * (1 - 2 / 3), abs=1e-3)
    assert by_name["华东区 East"] == pytest.approx(0.5 * (100 / 3) / 100 + 0.5 * (1 - 0.5), abs=1e-3)
    assert by_name["客户体验部 CX Department"] is None  # no data -> no value, not a made-up number
    manager = await gw.headers("store.manager@demo.cx")
    mine = (await gw.client.get(f"/api/v1/kpis/{created.json()['id']}/values", headers=manager)).json()
    assert [v["name"] for v in mine] == ["上海南京路店 Shanghai Nanjing Rd"]


async def test_task_outcomes(gw, loaded, ev):
    from cx.events.v1 import events_pb2

    org = str(loaded.units["S-SH-01"])
    for event_type, status, before, after in [
        ("task.created", "created", None, None),
        ("task.approved", "approved", None, None),
        ("task.completed", "completed", 6.0, None),
        ("task.accepted", "accepted", 6.0, 8.5),
    ]:
        payload = events_pb2.TaskChanged(task_id="k-sh", status=status, org_unit_id=org, metric="csat")
        if before is not None:
            payload.metric_before = before
        if after is not None:
            payload.metric_after = after
        await ev.publish(gw, event_type, payload, loaded.tenant_id)
    manager = await gw.headers("store.manager@demo.cx")

    async def accepted():
        body = (await gw.client.get("/api/v1/analytics/tasks", headers=manager)).json()
        return body if body["by_status"].get("accepted") == 1 else None

    body = await ev.until(accepted)
    assert body["by_status"] == {"accepted": 1}  # the CX department's task is outside the store's scope
    assert body["measured"] == [{"metric": "csat", "tasks": 1, "avg_change": 2.5, "improved": 1}]
    overview = (await gw.client.get("/api/v1/analytics/overview", headers=manager)).json()
    assert overview["tasks_created"] == 1 and overview["tasks_completed"] == 1 and overview["tasks_accepted"] == 1


async def test_overview_reports_the_freshness_of_the_read_model(gw, loaded):
    body = (await gw.client.get("/api/v1/analytics/overview", headers=await gw.headers("viewer@demo.cx"))).json()
    fresh = body["freshness"]
    assert fresh["events"] >= 14 and fresh["last_event_at"] and fresh["applied_at"]
    assert fresh["applied_at"] >= fresh["last_event_at"][:10]


async def test_survey_results_are_scoped(gw, loaded):
    owner = (await gw.client.get("/api/v1/analytics/surveys/s1", headers=await gw.headers("owner@demo.cx"))).json()
    assert owner["responses"] == 5 and owner["nps"] == 0.0 and owner["csat"] == 3.5
    assert sum(d["responses"] for d in owner["by_day"]) == 5
    assert {u["name"]: u["responses"] for u in owner["by_org_unit"]}["上海南京路店 Shanghai Nanjing Rd"] == 2
    manager = await gw.headers("store.manager@demo.cx")
    mine = (await gw.client.get("/api/v1/analytics/surveys/s1", headers=manager)).json()
    assert mine["responses"] == 2 and [u["responses"] for u in mine["by_org_unit"]] == [2]
    assert (await gw.client.get("/api/v1/analytics/surveys/other", headers=manager)).json()["responses"] == 0
    bad = await gw.client.get("/api/v1/analytics/surveys/a b", headers=manager)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "survey_id"


async def test_competitor_mentions_are_counted_from_tracked_names_and_aliases(gw, loaded, ev):
    analyst = await gw.headers("analyst@demo.cx")
    bad = await gw.client.post("/api/v1/competitors", json={"name": "  "}, headers=analyst)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
    created = await gw.client.post(
        "/api/v1/competitors", json={"name": "优衣库", "aliases": ["Uniqlo"]}, headers=analyst
    )
    assert created.status_code == 201, created.text
    dup = await gw.client.post("/api/v1/competitors", json={"name": "优衣库"}, headers=analyst)
    assert dup.status_code == 409 and dup.json()["field"] == "name"
    viewer = await gw.headers("viewer@demo.cx")
    assert (await gw.client.post("/api/v1/competitors", json={"name": "x"}, headers=viewer)).status_code == 403
    u = loaded.units
    for org, text, sentiment in [
        (u["S-SH-01"], "比 UNIQLO 贵多了", "negative"),
        (u["S-GZ-01"], "隔壁优衣库的试衣间更大", "neutral"),
        (u["S-GZ-01"], "no competitor here", "positive"),
    ]:
        payload = ev.feedback(org, sentiment)
        payload.text = text
        await ev.publish(gw, "feedback.analyzed", payload, loaded.tenant_id)

    async def counted():
        r = await gw.client.get("/api/v1/analytics/terms?kind=competitor", headers=analyst)
        items = r.json()["items"]
        return items if items and items[0]["mentions"] == 2 else None

    assert await ev.until(counted) == [{"term": "优衣库", "mentions": 2, "negative": 1}]
    store = await gw.headers("store.manager@demo.cx")
    mine = (await gw.client.get("/api/v1/analytics/terms?kind=competitor", headers=store)).json()["items"]
    assert mine == [{"term": "优衣库", "mentions": 1, "negative": 1}]
    listed = (await gw.client.get("/api/v1/competitors", headers=viewer)).json()
    assert [(c["name"], c["aliases"]) for c in listed] == [("优衣库", ["Uniqlo"])]
    gone = await gw.client.delete(f"/api/v1/competitors/{created.json()['id']}", headers=analyst)
    assert gone.status_code == 204
    assert (await gw.client.get("/api/v1/competitors", headers=viewer)).json() == []


async def test_fusion_by_order_value_band_and_store_size(gw, loaded, ev):
    from cx.events.v1 import events_pb2

    for key, value in (("c1", "350"), ("c3", "80.5"), ("c2", "not a number")):
        order = events_pb2.ODataUpserted(kind="orders", record_key=f"o-{key}", customer_key=key)
        order.attributes["order_value"] = value
        await ev.publish(gw, "odata.upserted", order, loaded.tenant_id)
    analyst = await gw.headers("analyst@demo.cx")

    async def banded():
        r = await gw.client.get("/api/v1/analytics/fusion?attribute=order_value_band", headers=analyst)
        items = {i["value"]: i for i in r.json()["items"]}
        return items if {"300-999", "<100"} <= set(items) else None

    items = await ev.until(banded)
    assert items["300-999"]["responses"] == 2 and items["300-999"]["nps"] == 0.0  # c1: a 10 and a 0
    assert items["<100"]["responses"] == 1 and items["(none)"]["responses"] == 2  # c2 (no number) and the anonymous
    sizes = (await gw.client.get("/api/v1/analytics/fusion?source=org&attribute=size", headers=analyst)).json()
    by_size = {i["value"]: i["responses"] for i in sizes["items"] if i["responses"]}
    assert by_size == {"large": 3, "medium": 1, "small": 1}  # (the CX department only has a task: no responses)


async def test_events_are_applied_in_batches_and_a_bad_one_does_not_hold_back_the_rest(gw, loaded, ev):
    from cx_common.events import build_envelope, subject_for

    js, prefix = gw.app.state.runtime.bus.js, gw.settings.events_subject_prefix
    subject = subject_for("survey.response.submitted", prefix)
    store = loaded.units["S-SZ-01"]
    good = [build_envelope(tenant_id=loaded.tenant_id, event_type="survey.response.submitted",
                           payload=ev.response(store, 10), source="test") for _ in range(5)]  # fmt: skip
    bad = build_envelope(
        tenant_id=loaded.tenant_id, event_type="survey.response.submitted", payload=ev.response(store, 0), source="test"
    )
    bad.tenant_id = "not-a-tenant"  # the handler fails on it, every time
    # published together, so they are fetched as one batch; one of the good ones twice (same event id)
    for env in [good[0], good[1], bad, good[2], good[1], good[3], good[4]]:
        await js.publish(subject, env.SerializeToString())
    headers = await gw.headers("owner@demo.cx")

    async def counted():
        body = (await gw.client.get("/api/v1/analytics/overview", headers=headers)).json()
        return body if body["responses"] >= 10 else None

    body = await ev.until(counted)
    assert body["responses"] == 10 and body["promoters"] == 7  # 5 new ones, the duplicate and the bad one not counted
    store_view = (
        await gw.client.get("/api/v1/analytics/overview", params={"org_unit_id": str(store)}, headers=headers)
    ).json()
    assert store_view["responses"] == 6 and store_view["nps"] == round(5 * 100 / 6, 2)  # its earlier 8 + five 10s
