"""Edges of the survey consumer, O-data batches and field mappings: one bad value loses at most its own record
(or answer), never the whole event or batch; unchanged O-data records report their id; a naive O-data time is UTC;
numeric partner ids are stringified."""

import asyncio
import datetime as dt
import json
import os
import time
import uuid

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope, subject_for
from cx_ingest.feedback.consumers import external_id, survey_items
from cx_ingest.partners.mapping import FieldMapping, TurnsMapping, apply_mapping

# -- survey.response.submitted ----------------------------------------------------------------------------------


def test_external_ids_keep_their_format_and_never_collide():
    assert external_id("resp-1", "q-why", "text") == "resp-1:q-why:text"  # existing rows still dedup
    long_q = "q" * 250
    assert external_id("r", long_q + "a", "text") != external_id("r", long_q + "b", "text")
    assert len(external_id("r", long_q, "text")) <= 200
    assert external_id("", "q", "text", event_id="e1") != external_id("", "q", "text", event_id="e2")
    assert external_id("", "q", "text", event_id="e1") == external_id("", "q", "text", event_id="e1")
    # "a:b" + "c" and "a" + "b:c" read the same in the plain format
    assert external_id("a:b", "c", "text") != external_id("a", "b:c", "text")
    assert external_id("", "q", "text", event_id="e1") != external_id("q", "", "text")


def _response(**fields) -> events_pb2.SurveyResponseSubmitted:
    base = {
        "response_id": "resp-edge",
        "survey_id": "s-1",
        "answers": [
            events_pb2.Answer(question_id="q-1", question_type="text", text_value="服务很好"),
            events_pb2.Answer(question_id="q-2", question_type="text", text_value="等太久"),
        ],
    }
    return events_pb2.SurveyResponseSubmitted(**{**base, **fields})


def test_survey_items_are_built_defensively():
    payload = _response(
        customer_key="C" * 250,
        touchpoint_id="T" * 201,
        org_unit_id="O" * 300,
        journey_stage="J" * 250,
        csat=float("nan"),
        ces=float("inf"),
        nps=9,
    )
    payload.submitted_at.FromDatetime(dt.datetime(9999, 12, 31, 12, tzinfo=dt.UTC))  # beyond what FeedbackIn takes
    payload.answers[0].number_value = float("nan")
    items = survey_items(str(uuid.uuid4()), payload)
    assert [i.external_id for i in items] == ["resp-edge:q-1:text", "resp-edge:q-2:text"]
    for item in items:
        assert item.customer_key == "C" * 200
        assert item.touchpoint_id == "T" * 200
        assert item.org_unit_id == "O" * 200
        assert item.journey_stage == "J" * 200
        assert item.scores == {"nps": 9.0}
        assert item.occurred_at is None  # the time of receipt


def test_survey_submitted_at_in_range_is_kept():
    payload = _response()
    payload.submitted_at.FromDatetime(dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC))
    assert survey_items(str(uuid.uuid4()), payload)[0].occurred_at == dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)


def test_an_answer_that_cannot_be_stored_is_skipped_alone():
    payload = _response()
    payload.answers.append(events_pb2.Answer(question_id="q-nul", question_type="text", text_value="a\x00b"))
    assert [i.external_id for i in survey_items(str(uuid.uuid4()), payload)] == [
        "resp-edge:q-1:text",
        "resp-edge:q-2:text",
    ]


async def _publish(ingest, tenant, payload) -> events_pb2.Envelope:
    envelope = build_envelope(tenant_id=tenant, event_type="survey.response.submitted", payload=payload, source="t")
    subject = subject_for("survey.response.submitted", ingest.settings.events_subject_prefix)
    await ingest.app.state.runtime.bus.js.publish(subject, envelope.SerializeToString())
    return envelope


async def _rows(ingest, tenant, count: int) -> list:
    rows: list = []
    for _ in range(200):
        rows = await ingest.sql("SELECT * FROM feedback_items WHERE tenant_id = $1 ORDER BY external_id", tenant)
        if len(rows) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # nothing more arrives
    return await ingest.sql("SELECT * FROM feedback_items WHERE tenant_id = $1 ORDER BY external_id", tenant)


async def test_a_response_with_bad_values_still_stores_its_answers(ingest):
    tenant = uuid.uuid4()
    payload = _response(customer_key="C" * 250, csat=float("nan"), touchpoint_id="T" * 201)
    payload.submitted_at.FromDatetime(dt.datetime(9999, 12, 31, 12, tzinfo=dt.UTC))
    payload.answers.append(events_pb2.Answer(question_id="q-nul", question_type="text", text_value="a\x00b"))
    before = dt.datetime.now(dt.UTC)
    envelope = await _publish(ingest, tenant, payload)
    subject = subject_for("survey.response.submitted", ingest.settings.events_subject_prefix)
    await ingest.app.state.runtime.bus.js.publish(  # redelivered: applied once
        subject, envelope.SerializeToString(), headers={"Nats-Msg-Id": envelope.event_id + "again"}
    )
    rows = await _rows(ingest, tenant, 2)
    assert [r["external_id"] for r in rows] == ["resp-edge:q-1:text", "resp-edge:q-2:text"]
    assert rows[0]["customer_key"] == "C" * 200 and rows[0]["touchpoint_id"] == "T" * 200
    assert json.loads(rows[0]["scores"]) == {}  # the NaN csat is dropped
    assert rows[0]["occurred_at"] >= before - dt.timedelta(seconds=5)
    assert rows[0]["occurred_at"] < dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    processed = await ingest.sql(
        "SELECT count(*) AS n FROM processed_events WHERE event_id = $1::uuid", envelope.event_id
    )
    assert processed[0]["n"] == 1  # acknowledged, not dead-lettered


async def test_responses_without_an_id_or_with_long_question_ids_do_not_collide(ingest):
    tenant = uuid.uuid4()
    long_q = "q" * 250
    first = _response(
        response_id="",
        answers=[
            events_pb2.Answer(question_id=long_q + "a", question_type="text", text_value="一"),
            events_pb2.Answer(question_id=long_q + "b", question_type="text", text_value="二"),
        ],
    )
    second = _response(
        response_id="", answers=[events_pb2.Answer(question_id="q-1", question_type="text", text_value="三")]
    )
    third = _response(
        response_id="", answers=[events_pb2.Answer(question_id="q-1", question_type="text", text_value="四")]
    )
    long_response = _response(
        response_id="r" * 250, answers=[events_pb2.Answer(question_id="q-1", question_type="text", text_value="五")]
    )
    for payload in (first, second, third, long_response):
        await _publish(ingest, tenant, payload)
    rows = await _rows(ingest, tenant, 5)
    assert sorted(r["text"] for r in rows) == sorted(["一", "二", "三", "四", "五"])
    assert len({r["external_id"] for r in rows}) == 5
    assert {r["source_response_id"] for r in rows} == {"", "r" * 200}
    assert all(len(r["external_id"]) <= 200 for r in rows)


# -- O-data -----------------------------------------------------------------------------------------------------


async def test_odata_nan_and_infinity_are_rejected_alone(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    body = (
        '{"items": [{"record_key": "ok", "attributes": {"amount": 5}},'
        ' {"record_key": "nan", "attributes": {"amount": NaN}},'
        ' {"record_key": "inf", "attributes": {"lines": [{"price": Infinity}]}},'
        ' {"record_key": "neg", "attributes": {"amount": -Infinity}},'
        ' {"record_key": "big", "attributes": {"amount": 1e999}}]}'
    )
    response = await ingest.client.post("/v1/odata/orders:batch", content=body, headers=ingest.key(key))
    assert response.status_code == 200, response.text
    by_key = {r["external_id"]: r for r in response.json()["results"]}
    assert by_key["ok"]["status"] == "accepted"
    assert by_key["nan"]["status"] == "rejected"
    assert by_key["nan"]["reason"] == "attributes.amount: must be a finite number"
    assert by_key["nan"]["errors"][0]["field"] == "attributes.amount"
    assert by_key["inf"]["reason"] == "attributes.lines.0.price: must be a finite number"
    assert by_key["neg"]["status"] == "rejected" and by_key["big"]["status"] == "rejected"
    stored = await ingest.sql("SELECT record_key FROM odata_records WHERE tenant_id = $1", tenant)
    assert [r["record_key"] for r in stored] == ["ok"]


async def test_unchanged_odata_records_report_their_id(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    items = [{"record_key": "SO-1", "attributes": {"amount": 1}}, {"record_key": "SO-2", "attributes": {"amount": 2}}]
    first = await ingest.client.post("/v1/odata/orders:batch", json={"items": items}, headers=ingest.key(key))
    ids = [r["id"] for r in first.json()["results"]]
    assert all(ids)
    again = await ingest.client.post(
        "/v1/odata/orders:batch", json={"items": [*items, items[0]]}, headers=ingest.key(key)
    )
    results = again.json()["results"]
    assert [r["status"] for r in results] == ["duplicate", "duplicate", "duplicate"]
    assert [r.get("id") for r in results] == [ids[0], ids[1], ids[0]]


async def test_a_naive_odata_time_is_utc(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"  # this process's local time is not UTC
    time.tzset()
    try:
        items = [{"record_key": "N-1", "occurred_at": "2026-01-01T00:00:00"}]
        response = await ingest.client.post("/v1/odata/orders:batch", json={"items": items}, headers=ingest.key(key))
        assert response.json()["results"][0]["status"] == "accepted", response.text
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
    stored = await ingest.sql("SELECT occurred_at FROM odata_records WHERE tenant_id = $1", tenant)
    assert stored[0]["occurred_at"] == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = await ingest.sql(
        "SELECT payload FROM outbox WHERE event_type = 'odata.upserted' AND tenant_id = $1", str(tenant)
    )
    event = events_pb2.Envelope.FromString(rows[0]["payload"]).odata_upserted
    assert event.occurred_at.ToDatetime(tzinfo=dt.UTC) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# -- field mappings ---------------------------------------------------------------------------------------------


def test_integer_ids_are_stringified_not_floats_or_booleans():
    mapping = FieldMapping(
        fields={
            "external_id": "id",
            "text": "t",
            "customer_key": "cust",
            "org_unit_id": "store",
            "agent_id": "agent",
            "product_sku": "sku",
            "touchpoint_id": "tp",
        },
        turns=TurnsMapping(path="msgs", agent_id="staff"),
    )
    payload = {
        "id": 1,
        "t": "x",
        "cust": 12345,
        "store": 7,
        "agent": 3,
        "sku": 1.5,
        "tp": True,
        "msgs": [{"speaker": "agent", "text": "hi", "staff": 42}, {"speaker": "agent", "text": "yo", "staff": 1.0}],
    }
    out = apply_mapping(mapping, payload)
    assert (out["external_id"], out["customer_key"], out["org_unit_id"], out["agent_id"]) == ("1", "12345", "7", "3")
    assert out["product_sku"] == 1.5 and out["touchpoint_id"] is True  # left for validation to reject
    assert [t["agent_id"] for t in out["turns"]] == ["42", 1.0]


async def test_mapping_test_accepts_numeric_ids(ingest):
    tenant = uuid.uuid4()
    pid, key = await ingest.partner(tenant)
    mapping = {
        "fields": {"external_id": "id", "customer_key": "cust", "org_unit_id": "store", "text": "body"},
        "turns": None,
    }
    saved = await ingest.client.put(f"/v1/partners/{pid}/mapping", json=mapping, headers=ingest.auth(tenant))
    assert saved.status_code == 200, saved.text
    sample = {"id": 1, "cust": 12345, "store": 7, "body": "好"}
    tried = await ingest.client.post(
        f"/v1/partners/{pid}/mapping:test", json={"sample": sample}, headers=ingest.auth(tenant)
    )
    assert tried.json()["ok"] is True, tried.json()
    assert tried.json()["mapped"]["customer_key"] == "12345"
    sent = await ingest.client.post("/v1/feedback:batch", json={"items": [sample]}, headers=ingest.key(key))
    result = sent.json()["results"][0]
    assert result["status"] == "accepted", result
    item = (await ingest.client.get(f"/v1/feedback/{result['id']}", headers=ingest.auth(tenant))).json()
    assert (item["customer_key"], item["org_unit_id"]) == ("12345", "7")
