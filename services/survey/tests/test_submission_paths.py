"""The one-statement hot path and the ORM careful path of a submission store the same thing, and the hot path hands
over whenever what it remembers about a survey is out of date."""

import asyncio
import gc
import json
import re
import uuid

import asyncpg
import pytest
from survey_testkit import ALL_TYPES, GOOD, LOGIC, eventually, t

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope, subject_for
from cx_common.events.outbox import OUTBOX_CHANNEL
from cx_local.pytest_plugin import app_client
from cx_survey.pg import Pool, plain_dsn
from cx_survey.responses.submission import submissions_of

ONE_PAGE = {**LOGIC, "pages": LOGIC["pages"][:1]}
# What differs between two responses by construction (ids, keys, clocks).
OWN_COLUMNS = {"id", "survey_id", "version_id", "submission_key", "submitted_at", "created_at", "updated_at"}


async def paths(svc) -> dict[str, float]:
    text = (await svc.client.get("/metrics")).text
    found = dict(re.findall(r'^cx_survey_submissions_total\{path="(\w+)"\} ([0-9.e+]+)$', text, re.M))
    return {k: float(found.get(k, 0)) for k in ("hot", "careful")}


async def stored(svc, response_id: str) -> tuple[dict, events_pb2.SurveyResponseSubmitted]:
    row = dict((await svc.sql("SELECT * FROM responses WHERE id = $1", uuid.UUID(response_id)))[0])
    events = [
        events_pb2.Envelope.FromString(r["payload"])
        for r in await svc.sql("SELECT payload FROM outbox WHERE event_type = 'survey.response.submitted'")
    ]
    event = next(e for e in events if e.survey_response_submitted.response_id == response_id)
    assert event.tenant_id == str(row["tenant_id"])
    return row, event.survey_response_submitted


async def test_hot_and_careful_paths_store_the_same_response_and_event(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    store = {"name": "门店", "stage_key": "in_sale", "channel": "store", "org_unit_id": "s1"}
    tp = await svc.client.post("/v1/touchpoints", json=store, headers=h)
    assert tp.status_code == 201, tp.text
    hot = await svc.create_published(tenant, ALL_TYPES, touchpoint_id=tp.json()["id"])
    careful = await svc.create_published(tenant, ALL_TYPES, touchpoint_id=tp.json()["id"], quota=100)  # quota: ORM
    for survey_id, code in ((hot, "H-1"), (careful, "C-1")):
        await svc.client.post(f"/v1/surveys/{survey_id}/incentive-codes", json={"codes": [code]}, headers=h)
    before = await paths(svc)
    results = {}
    for survey_id in (hot, careful):
        base = f"/v1/public/surveys/{survey_id}"
        resume = (await svc.client.post(f"{base}/partial", json={"answers": {"nps": 3}})).json()["resume_id"]
        r = await svc.client.post(
            f"{base}/responses",
            json={
                "answers": GOOD,
                "hidden": {"customer_id": "C-42", "order_id": "O-1", "channel": "app"},
                "submission_id": f"same-{survey_id}",
                "resume_id": resume,
            },
            headers={"Accept-Language": "zh-TW"},
        )
        assert r.status_code == 201, r.text
        results[survey_id] = r.json()
        assert (await svc.client.get(f"{base}/partial/{resume}")).status_code == 404  # the partial save is gone
    after = await paths(svc)
    assert (after["hot"] - before["hot"], after["careful"] - before["careful"]) == (1, 1)

    (hot_row, hot_event), (careful_row, careful_event) = [await stored(svc, results[s]["id"]) for s in (hot, careful)]
    assert hot_row["org_path"] == ["s1"] and hot_row["channel"] == "app" and hot_row["language"] == "zh-Hant"
    for row in (hot_row, careful_row):
        assert row["duration_ms"] is not None and row["started_at"] is not None
    same = {k: v for k, v in hot_row.items() if k not in OWN_COLUMNS | {"started_at", "duration_ms"}}
    assert same == {k: v for k, v in careful_row.items() if k in same}
    assert results[hot]["incentive_code"] == "H-1" and results[careful]["incentive_code"] == "C-1"
    for key in ("id", "survey_id", "submitted_at", "started_at", "duration_ms", "incentive_code"):
        results[hot].pop(key), results[careful].pop(key)
    assert results[hot] == results[careful]
    for event in (hot_event, careful_event):
        event.ClearField("response_id"), event.ClearField("survey_id"), event.ClearField("submitted_at")
    assert hot_event == careful_event
    assert hot_event.nps == 3 and hot_event.customer_key == "C-42" and hot_event.org_unit_id == "s1"


async def test_the_hot_path_notices_a_republished_quota_or_closed_survey(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    survey_id = await svc.create_published(tenant, ONE_PAGE)
    url = f"/v1/public/surveys/{survey_id}/responses"
    first = await svc.client.post(url, json={"answers": {"nps": 10}})
    assert (first.status_code, first.json()["version"]) == (201, 1)
    # Version 2 requires one more answer: the answers are checked against it, not against the remembered version 1.
    v2 = {**ONE_PAGE, "pages": [{"id": "p1", "questions": [*ONE_PAGE["pages"][0]["questions"], _why()]}]}
    assert (await svc.client.patch(f"/v1/surveys/{survey_id}", json={"definition": v2}, headers=h)).status_code == 200
    assert (await svc.client.post(f"/v1/surveys/{survey_id}/publish", headers=h)).status_code == 201
    stale = await svc.client.post(url, json={"answers": {"nps": 10}})
    assert stale.status_code == 422, stale.text
    assert [e["field"] for e in stale.json()["errors"]] == ["answers.why"]
    second = await svc.client.post(url, json={"answers": {"nps": 10, "why": "快"}})
    assert (second.status_code, second.json()["version"]) == (201, 2)
    # A quota set afterwards is counted.
    assert (await svc.client.patch(f"/v1/surveys/{survey_id}", json={"quota": 3}, headers=h)).status_code == 200
    assert (await svc.client.post(url, json={"answers": {"nps": 9, "why": "x"}})).status_code == 201
    full = await svc.client.post(url, json={"answers": {"nps": 9, "why": "x"}})
    assert (full.status_code, full.json()["rule"]) == (410, "quota")
    # Closed: 410 too, and nothing stored by either path.
    other = await svc.create_published(tenant, ONE_PAGE)
    assert (await svc.client.post(f"/v1/public/surveys/{other}/responses", json={"answers": {"nps": 9}})).is_success
    assert (await svc.client.post(f"/v1/surveys/{other}/close", headers=h)).status_code == 200
    closed = await svc.client.post(f"/v1/public/surveys/{other}/responses", json={"answers": {"nps": 9}})
    assert (closed.status_code, closed.json()["field"]) == (410, "survey_id")
    assert len(await svc.sql("SELECT 1 FROM responses")) == len(await svc.sql("SELECT 1 FROM outbox")) == 4


def _why() -> dict:
    return {"id": "why", "type": "text", "title": t("why"), "required": True}


async def test_a_deleted_org_unit_is_refused_by_the_statement(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    await svc.publish_org(tenant, [("hq", "", []), ("s1", "hq", ["hq"])])
    delivery = {"name": "s1", "stage_key": "post_sale", "channel": "delivery", "org_unit_id": "s1"}
    tp = await svc.client.post("/v1/touchpoints", json=delivery, headers=h)
    survey_id = await svc.create_published(tenant, ONE_PAGE, touchpoint_id=tp.json()["id"])
    url = f"/v1/public/surveys/{survey_id}/responses"
    ok = await svc.client.post(url, json={"answers": {"nps": 4, "why_low": "慢"}})
    assert ok.status_code == 201, ok.text
    assert (await svc.sql("SELECT org_path FROM responses"))[0]["org_path"] == ["hq", "s1"]

    envelope = build_envelope(
        tenant_id=tenant,
        event_type="org.unit.deleted",
        payload=events_pb2.OrgUnitChanged(org_unit_id="s1", parent_id="hq", ancestor_ids=["hq"], deleted=True),
        source="gateway",
    )
    subject = subject_for("org.unit.deleted", svc.settings.events_subject_prefix)
    await svc.app.state.runtime.bus.js.publish(
        subject, envelope.SerializeToString(), headers={"Nats-Msg-Id": envelope.event_id}
    )

    async def deleted() -> bool:
        return bool(await svc.sql("SELECT 1 FROM org_units WHERE id = 's1' AND deleted"))

    await eventually(deleted)
    refused = await svc.client.post(url, json={"answers": {"nps": 4, "why_low": "慢"}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "touchpoint_id"
    assert len(await svc.sql("SELECT 1 FROM outbox")) == 1


async def test_a_dropped_pool_connection_does_not_lose_or_double_a_response(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ONE_PAGE)
    url = f"/v1/public/surveys/{survey_id}/responses"
    assert (await svc.client.post(url, json={"answers": {"nps": 8}, "submission_id": "drop-0001"})).status_code == 201
    killed = await svc.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'cx-survey-submit' AND datname = current_database()"
    )
    assert killed and all(r[0] for r in killed)
    again = await svc.client.post(url, json={"answers": {"nps": 7}, "submission_id": "drop-0002"})
    assert again.status_code == 201, again.text
    double = await svc.client.post(url, json={"answers": {"nps": 7}, "submission_id": "drop-0002"})
    assert (double.status_code, double.json()["id"]) == (200, again.json()["id"])
    assert len(await svc.sql("SELECT 1 FROM responses")) == len(await svc.sql("SELECT 1 FROM outbox")) == 2


async def test_bad_bodies_are_422_naming_the_field(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ONE_PAGE)
    url = f"/v1/public/surveys/{survey_id}/responses"
    cases = [
        (url, {"content": b'{"answers": {"nps": 1}', "headers": {"content-type": "application/json"}}, "body"),
        (url, {"json": {"answers": []}}, "answers"),
        (url, {"json": {"answers": {}, "submission_id": "short"}}, "submission_id"),
        (url, {"content": b"nps=1", "headers": {"content-type": "text/plain"}}, "body"),
        ("/v1/public/surveys/not-a-uuid/responses", {"json": {"answers": {}}}, "survey_id"),
    ]
    for path, kwargs, field in cases:
        r = await svc.client.post(path, **kwargs)
        assert r.status_code == 422, (field, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == field, r.json()
    schema = (await svc.client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/public/surveys/{survey_id}/responses"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ResponseSubmit")
    assert {"200", "201"} <= set(operation["responses"])
    assert json.dumps(operation).count("SubmitResult") >= 2


async def test_the_submission_pool_lends_each_connection_to_one_statement_at_a_time(svc):
    pool = Pool(plain_dsn(svc.settings.database_url), size=2, server_settings={"application_name": "pool-test"})
    try:
        pids = await asyncio.gather(*(pool.fetchrow("SELECT pg_backend_pid(), pg_sleep(0.02)") for _ in range(12)))
        assert len({row[0] for row in pids}) == 2 and pool.open == 2  # never more than `size` connections
        # A Postgres error leaves the connection usable; a statement cancelled mid-way closes its connection.
        with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
            await pool.fetchrow("SELECT 1 / 0")
        assert pool.open == 2
        slow = [asyncio.create_task(pool.fetchrow("SELECT pg_sleep(0.3)")) for _ in range(2)]
        waiting = asyncio.create_task(pool.fetchrow("SELECT 1"))
        await asyncio.sleep(0.1)
        waiting.cancel()  # gave up while waiting for a connection: its turn is not lost
        slow[0].cancel()  # gave up mid-statement: that connection is closed
        await asyncio.gather(*slow, waiting, return_exceptions=True)
        assert pool.open == 1
        rows = await asyncio.gather(*(pool.fetchrow("SELECT pg_backend_pid()") for _ in range(6)))
        assert all(rows) and pool.open <= 2
    finally:
        await pool.close()
    with pytest.raises(ConnectionError):
        await pool.fetchrow("SELECT 1")


async def test_the_relay_is_woken_after_every_commit_with_few_notifications(svc):
    """Responses close together share one NOTIFY; the last of them is still followed by one (within the window)."""
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ONE_PAGE)
    url = f"/v1/public/surveys/{survey_id}/responses"
    assert (await svc.client.post(url, json={"answers": {"nps": 9}})).status_code == 201  # remembered: hot path
    submissions = submissions_of(svc.app.state.runtime)
    submissions.notify_every = 2.0  # wide enough that the next three fall in one window on any machine
    submissions.notified_at = -10.0
    heard: list[float] = []
    listener = await asyncpg.connect(svc.admin_url)
    try:
        await listener.add_listener(OUTBOX_CHANNEL, lambda *_: heard.append(asyncio.get_running_loop().time()))
        for _ in range(3):
            assert (await svc.client.post(url, json={"answers": {"nps": 9}})).status_code == 201

        async def woken(n: int) -> bool:
            return len(heard) >= n

        await eventually(lambda: woken(1))  # the first one's own, delivered with its commit
        answered = asyncio.get_running_loop().time()
        await eventually(lambda: woken(2), attempts=200)  # the follow-up for the other two
        assert len(heard) == 2 and heard[1] >= answered
    finally:
        await listener.close()
    assert len(await svc.sql("SELECT 1 FROM outbox")) == 4


async def test_a_serving_process_freezes_its_startup_heap(svc):
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()
    try:
        async with app_client(svc.app_with(gc_tuning=True), svc.tokens) as client:
            assert gc.get_freeze_count() > max(frozen, 10_000)
            assert gc.get_threshold()[0] == 20_000
            survey_id = await svc.create_published(uuid.uuid4(), ONE_PAGE)
            answered = await client.post(f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 9}})
            assert answered.status_code == 201
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def test_odd_start_times_are_stored_without_a_duration_on_both_paths(svc):
    tenant = uuid.uuid4()
    hot = await svc.create_published(tenant, ONE_PAGE)
    careful = await svc.create_published(tenant, ONE_PAGE, quota=100)
    for survey_id in (hot, careful):
        url = f"/v1/public/surveys/{survey_id}/responses"
        for started in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2000-01-01T00:00:00+08:00"):
            r = await svc.client.post(url, json={"answers": {"nps": 9}, "started_at": started})
            assert r.status_code == 201, (survey_id, started, r.text)
            assert r.json()["duration_ms"] is None
        naive = await svc.client.post(url, json={"answers": {"nps": 9}, "started_at": "2026-01-01T08:00:00"})
        assert (naive.status_code, naive.json()["errors"][0]["field"]) == (422, "started_at")
        big = await svc.client.post(
            url, content=b'{"answers": {"nps": 1e999}}', headers={"content-type": "application/json"}
        )
        assert (big.status_code, big.json()["errors"][0]["field"]) == (422, "answers.nps")
