"""Codebooks (3-level tree, versions, history) and the survey.response.submitted consumer."""

import asyncio
import uuid

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope, subject_for

TREE = [
    {"id": "product", "names": {"zh-Hans": "商品", "en": "Product"}},
    {"id": "quality", "parent_id": "product", "names": {"zh-Hans": "质量", "en": "Quality"}},
    {"id": "defect", "parent_id": "quality", "names": {"zh-Hans": "瑕疵"}, "keywords": ["破损", "瑕疵"]},
]


async def test_codebook_lifecycle_versions_and_history(ingest):
    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    created = await ingest.client.post("/v1/codebooks", json={"name": "电商", "nodes": TREE}, headers=headers)
    assert created.status_code == 201, created.text
    cb = created.json()
    assert [(n["id"], n["level"]) for n in cb["draft_nodes"]] == [("product", 1), ("quality", 2), ("defect", 3)]
    cb_id = cb["id"]

    v1 = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={"note": "first"}, headers=headers)
    assert v1.json()["version"] == 1

    added = await ingest.client.post(
        f"/v1/codebooks/{cb_id}/nodes",
        json={"id": "late", "parent_id": "quality", "names": {"zh-Hans": "发货慢"}, "keywords": ["慢"]},
        headers=headers,
    )
    assert added.status_code == 201, added.text
    patched = await ingest.client.patch(
        f"/v1/codebooks/{cb_id}/nodes/late", json={"names": {"zh-Hans": "发货", "en": "Shipping"}}, headers=headers
    )
    assert patched.status_code == 200, patched.text
    v2 = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=headers)
    assert v2.json()["version"] == 2
    assert v2.json()["fingerprint"] != v1.json()["fingerprint"]

    deleted = await ingest.client.delete(f"/v1/codebooks/{cb_id}/nodes/quality", headers=headers)
    assert [n["id"] for n in deleted.json()["draft_nodes"]] == ["product"]  # children go with their parent

    versions = (await ingest.client.get(f"/v1/codebooks/{cb_id}/versions", headers=headers)).json()
    assert [len(v["nodes"]) for v in versions] == [3, 4]  # published versions are immutable

    history = (await ingest.client.get(f"/v1/codebooks/{cb_id}/history", headers=headers)).json()
    assert [h["action"] for h in history] == [
        "created",
        "published",
        "node_added",
        "node_updated",
        "published",
        "node_deleted",
    ]
    assert history[3]["before"]["names"] == {"zh-Hans": "发货慢"}
    assert history[3]["after"]["names"]["en"] == "Shipping"
    assert all(h["actor"] == "user-1" for h in history)

    other = uuid.uuid4()
    assert (await ingest.client.get(f"/v1/codebooks/{cb_id}", headers=ingest.auth(other))).status_code == 404


async def test_only_one_active_codebook_per_tenant(ingest):
    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    a = (await ingest.client.post("/v1/codebooks", json={"name": "a", "active": True}, headers=headers)).json()
    b = (await ingest.client.post("/v1/codebooks", json={"name": "b"}, headers=headers)).json()
    await ingest.client.post(f"/v1/codebooks/{b['id']}:activate", headers=headers)
    listed = {c["name"]: c["active"] for c in (await ingest.client.get("/v1/codebooks", headers=headers)).json()}
    assert listed == {"a": False, "b": True}
    assert a["active"] is True


BAD_TREES = [
    ([{"id": "a", "names": {"en": "A"}}], "nodes.0.names"),  # no name in the primary language
    ([{"id": "a", "parent_id": "zz", "names": {"zh-Hans": "甲"}}], "nodes.0.parent_id"),
    ([{"id": "a", "names": {"zh-Hans": "甲"}}, {"id": "a", "names": {"zh-Hans": "乙"}}], "nodes.1.id"),
    (
        [
            {"id": "1", "names": {"zh-Hans": "一"}},
            {"id": "2", "parent_id": "1", "names": {"zh-Hans": "二"}},
            {"id": "3", "parent_id": "2", "names": {"zh-Hans": "三"}},
            {"id": "4", "parent_id": "3", "names": {"zh-Hans": "四"}},
        ],
        "nodes.3.parent_id",
    ),
    ([{"id": "a", "names": {"zh-Hans": "甲"}}, {"id": "b", "names": {"zh-Hans": "甲"}}], "nodes.1.names"),
    ([{"id": "a", "names": {"zh-Hans": "甲"}, "colour": "red"}], "nodes.0.colour"),
]


async def test_bad_trees_are_refused_naming_the_field(ingest):
    for nodes, field in BAD_TREES:
        response = await ingest.client.post(
            "/v1/codebooks", json={"name": "x", "nodes": nodes}, headers=ingest.auth(uuid.uuid4())
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field, nodes


async def test_survey_open_answers_become_feedback_items(ingest):
    tenant = uuid.uuid4()
    payload = events_pb2.SurveyResponseSubmitted(
        response_id="resp-1",
        survey_id="s-1",
        survey_version=3,
        survey_title="门店满意度",
        touchpoint_id="tp-store",
        journey_stage="purchase",
        channel="web",
        org_unit_id="store-9",
        customer_key="C-1",
        language="zh-Hans",
        nps=3,
        answers=[
            events_pb2.Answer(question_id="q-nps", question_type="nps", number_value=3),
            events_pb2.Answer(question_id="q-why", question_type="text", text_value="排队太久，电话13912345678"),
            events_pb2.Answer(question_id="q-pick", question_type="single_choice", choice_ids=["x"], other_text="别的"),
            events_pb2.Answer(question_id="q-empty", question_type="text", text_value="  "),
        ],
    )
    payload.submitted_at.GetCurrentTime()
    envelope = build_envelope(
        tenant_id=tenant, event_type="survey.response.submitted", payload=payload, source="survey"
    )
    bus = ingest.app.state.runtime.bus
    subject = subject_for("survey.response.submitted", ingest.settings.events_subject_prefix)
    for _ in range(2):  # a redelivered duplicate is applied once
        await bus.js.publish(subject, envelope.SerializeToString(), headers={"Nats-Msg-Id": envelope.event_id + "x"})
        await bus.js.publish(subject, envelope.SerializeToString())

    async def stored():
        rows = await ingest.sql("SELECT * FROM feedback_items ORDER BY external_id")
        return rows if len(rows) == 2 else None

    for _ in range(200):
        rows = await stored()
        if rows:
            break
        await asyncio.sleep(0.05)
    assert rows, "survey answers were not ingested"
    await asyncio.sleep(0.3)
    rows = await ingest.sql("SELECT * FROM feedback_items ORDER BY external_id")
    assert [r["external_id"] for r in rows] == ["resp-1:q-pick:other", "resp-1:q-why:text"]
    why = rows[1]
    assert why["channel"] == "survey"
    assert why["text"] == "排队太久，电话[PHONE]"
    assert why["touchpoint_id"] == "tp-store"
    assert why["journey_stage"] == "purchase"
    assert why["org_unit_id"] == "store-9"
    assert why["source_response_id"] == "resp-1"
    events = await ingest.sql("SELECT payload FROM outbox WHERE event_type = 'feedback.received'")
    assert len(events) == 2
    context = events_pb2.Envelope.FromString(events[0]["payload"]).feedback_received.context
    assert context.source_response_id == "resp-1"
    assert context.channel == "survey"
    item = await ingest.client.get(f"/v1/feedback/{why['id']}", headers=ingest.auth(tenant))
    assert item.json()["scores"] == {"nps": 3.0}
    assert item.json()["attributes"]["survey_id"] == "s-1"


async def test_feedback_reads_are_scoped_to_the_org_subtree(ingest):
    tenant = uuid.uuid4()
    bus = ingest.app.state.runtime.bus
    units = [("hq", "", []), ("east", "hq", ["hq"]), ("store-1", "east", ["hq", "east"]), ("west", "hq", ["hq"])]
    for unit_id, parent, ancestors in units:
        payload = events_pb2.OrgUnitChanged(org_unit_id=unit_id, parent_id=parent, ancestor_ids=ancestors, name=unit_id)
        envelope = build_envelope(tenant_id=tenant, event_type="org.unit.upserted", payload=payload, source="gateway")
        await bus.js.publish(
            subject_for("org.unit.upserted", ingest.settings.events_subject_prefix), envelope.SerializeToString()
        )
    for _ in range(200):
        if len(await ingest.sql("SELECT id FROM org_units")) == 4:
            break
        await asyncio.sleep(0.05)
    _, key = await ingest.partner(tenant)
    items = [{"external_id": u, "text": f"来自{u}", "org_unit_id": u} for u in ("hq", "east", "store-1", "west")]
    sent = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    ids = {r["external_id"]: r["id"] for r in sent.json()["results"]}

    def headers(org):
        return {"Authorization": f"Bearer {ingest.tokens.mint(tenant, scopes=('feedback:read',), org_unit_id=org)}"}

    async def visible(org):
        page = (await ingest.client.get("/v1/feedback", headers=headers(org))).json()
        return sorted(i["external_id"] for i in page["items"])

    assert await visible(None) == ["east", "hq", "store-1", "west"]
    assert await visible("hq") == ["east", "hq", "store-1", "west"]
    assert await visible("east") == ["east", "store-1"]
    assert await visible("store-1") == ["store-1"]
    assert (await ingest.client.get(f"/v1/feedback/{ids['west']}", headers=headers("east"))).status_code == 404
    assert (await ingest.client.get(f"/v1/feedback/{ids['store-1']}", headers=headers("east"))).status_code == 200


async def test_industry_starter_codebooks(ingest):
    tenant = uuid.uuid4()
    templates = (await ingest.client.get("/v1/codebooks/templates", headers=ingest.auth(tenant))).json()
    assert [t["id"] for t in templates] == ["retail", "ecommerce", "food_delivery", "automotive", "banking"]
    for template in templates:
        assert {n["level"] for n in template["nodes"]} == {1, 2, 3}
        assert all(set(n["names"]) == {"zh-Hans", "zh-Hant", "en"} for n in template["nodes"])
        assert all(n["keywords"] for n in template["nodes"] if n["level"] == 3)
    created = await ingest.client.post(
        "/v1/codebooks", json={"name": "我的电商", "template": "ecommerce"}, headers=ingest.auth(tenant)
    )
    assert created.status_code == 201, created.text
    leaf = next(n for n in created.json()["draft_nodes"] if n["id"] == "logistics.delivery.speed")
    assert leaf["names"]["en"] == "Delivery speed"
    assert leaf["parent_id"] == "logistics.delivery"
    bad = await ingest.client.post(
        "/v1/codebooks", json={"name": "x", "template": "mining"}, headers=ingest.auth(tenant)
    )
    assert bad.json()["errors"][0]["field"] == "template"


class _Hang:
    """An async context manager that never enters: the task using it stops there until cancelled."""

    async def __aenter__(self):
        await asyncio.sleep(3600)

    async def __aexit__(self, *exc):
        return False


async def test_recoding_backfill_resumes_after_a_restart(ingest, cx_tokens, monkeypatch):
    """The backfill commits its cursor with each chunk: a service stopped mid-way resumes where it was and every
    stale item is re-queued exactly once."""
    from cx_ingest.codebooks import recode
    from cx_ingest.main import create_app
    from cx_local.pytest_plugin import app_client

    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    created = await ingest.client.post(
        "/v1/codebooks", json={"name": "cb", "nodes": TREE, "active": True}, headers=headers
    )
    cb_id = created.json()["id"]
    await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=headers)
    _, key = await ingest.partner(tenant)
    items = [{"external_id": f"r{i}", "text": f"商品破损{i}"} for i in range(23)]
    await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    await ingest.sql(  # as if analysed against version 1
        "UPDATE feedback_items SET analysis_state = 'done', analysis = jsonb_build_object('codebook_id', $1::text, "
        "'codebook_version', 1)",
        cb_id,
    )

    monkeypatch.setattr(recode, "CHUNK", 5)
    runtime = ingest.app.state.runtime
    real_sessions, opened, stalled = runtime.sessions, 0, asyncio.Event()

    def stalling_sessions():
        nonlocal opened
        opened += 1
        if opened == 3:  # two chunks committed, then the process "stops" in the third
            stalled.set()
            return _Hang()
        return real_sessions()

    original = recode.run_job
    monkeypatch.setattr(recode, "run_job", lambda sessions, job_id: original(stalling_sessions, job_id))
    v2 = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=headers)
    assert v2.json()["version"] == 2
    await asyncio.wait_for(stalled.wait(), 10)
    task = next(t for t in runtime.tasks if t.get_name().startswith("recode-"))
    task.cancel()
    jobs = (await ingest.client.get(f"/v1/codebooks/{cb_id}/recodes", headers=headers)).json()
    latest = jobs[0]
    assert (latest["version"], latest["status"], latest["total"], latest["queued"]) == (2, "running", 23, 10)
    monkeypatch.setattr(recode, "run_job", original)

    # A new process over the same database picks the job up at its cursor.
    async with app_client(create_app(ingest.settings), cx_tokens) as client:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            jobs = (await client.get(f"/v1/codebooks/{cb_id}/recodes", headers=headers)).json()
            if jobs[0]["status"] == "completed":
                break
            assert asyncio.get_running_loop().time() < deadline, jobs
            await asyncio.sleep(0.05)
    assert (jobs[0]["total"], jobs[0]["queued"]) == (23, 23)
    rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'pending'")
    assert rows[0]["n"] == 23
