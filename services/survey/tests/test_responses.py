import asyncio
import csv
import io
import json
import uuid

import openpyxl
import pytest
from sqlalchemy import select
from survey_testkit import ALL_TYPES, GOOD, LOGIC

from cx.events.v1 import events_pb2
from cx_common.events import subject_for


async def outbox(svc):
    rows = await svc.sql("SELECT event_type, subject, payload FROM outbox ORDER BY created_at")
    return [(r["event_type"], r["subject"], events_pb2.Envelope.FromString(r["payload"])) for r in rows]


async def test_every_question_type_scores_and_outbox_event(svc):
    tenant = uuid.uuid4()
    tp = await svc.client.post(
        "/v1/touchpoints",
        json={"name": "门店收银", "stage_key": "in_sale", "channel": "store", "org_unit_id": "s1"},
        headers=svc.auth(tenant),
    )
    assert tp.status_code == 201, tp.text
    survey_id = await svc.create_published(tenant, ALL_TYPES)
    r = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses",
        json={
            "answers": GOOD,
            "hidden": {"customer_id": "C-42", "order_id": "O-1"},
            "touchpoint_id": tp.json()["id"],
            "submission_id": "sub-00000001",
        },
        headers={"Accept-Language": "zh-TW,zh;q=0.8"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["nps"], body["nps_category"], body["csat"], body["ces"]) == (3, "detractor", 2, 6)
    assert (body["journey_stage"], body["channel"], body["org_unit_id"]) == ("in_sale", "store", "s1")
    assert body["customer_key"] == "C-42"
    assert body["language"] == "zh-Hant"
    assert body["answers"]["rank"] == ["speed", "price", "service"]

    events = await outbox(svc)
    assert len(events) == 1
    event_type, subject, envelope = events[0]
    assert event_type == "survey.response.submitted"
    assert subject == subject_for("survey.response.submitted", svc.settings.events_subject_prefix)
    assert envelope.tenant_id == str(tenant)
    p = envelope.survey_response_submitted
    assert p.response_id == body["id"]
    assert (p.nps, p.csat, p.ces) == (3, 2.0, 6.0)
    assert p.touchpoint_id == tp.json()["id"]
    assert (p.journey_stage, p.channel, p.org_unit_id, p.customer_key) == ("in_sale", "store", "s1", "C-42")
    assert dict(p.hidden_fields) == {"customer_id": "C-42", "order_id": "O-1"}
    answers = {a.question_id: a for a in p.answers}
    assert len(answers) == len(GOOD)
    assert answers["why"].text_value == "排队太久了"
    assert answers["single"].other_text == "朋友推荐"
    assert list(answers["multi"].choice_ids) == ["x", "other"]
    assert dict(answers["grid"].matrix_values) == {"r1": "c2", "r2": "c1"}
    assert json.loads(answers["me"].text_value)["phone"] == "13800000000"

    # The same submission again: the first response, no second event.
    again = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", json={"answers": GOOD, "submission_id": "sub-00000001"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["duplicate"] is True
    assert len(await outbox(svc)) == 1


async def test_concurrent_double_submit_stores_once(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ALL_TYPES)
    body = {"answers": {"nps": 10, "csat": 5}, "submission_id": "double-click-1"}
    results = await asyncio.gather(
        *[svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json=body) for _ in range(4)]
    )
    assert sorted(r.status_code for r in results) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in results}) == 1
    assert len(await svc.sql("SELECT id FROM responses")) == 1
    assert len(await outbox(svc)) == 1


@pytest.mark.parametrize(
    ("answers", "fields"),
    [
        ({"nps": 11, "csat": 3}, ["answers.nps"]),
        ({"nps": "x", "csat": 0}, ["answers.nps", "answers.csat"]),
        ({"csat": 3}, ["answers.nps"]),
        ({"nps": 5, "csat": 3, "ghost": 1}, ["answers.ghost"]),
        ({"nps": 5, "csat": 3, "single": "c"}, ["answers.single"]),
        ({"nps": 5, "csat": 3, "single": {"choice": "other"}}, ["answers.single"]),
        ({"nps": 5, "csat": 3, "multi": ["x", "q"]}, ["answers.multi"]),
        ({"nps": 5, "csat": 3, "grid": {"r9": "c1"}}, ["answers.grid"]),
        ({"nps": 5, "csat": 3, "rank": ["price"]}, ["answers.rank"]),
        ({"nps": 5, "csat": 3, "why": "长" * 51}, ["answers.why"]),
        ({"nps": 5, "csat": 3, "age": 200}, ["answers.age"]),
        ({"nps": 5, "csat": 3, "age": 1.5}, ["answers.age"]),
        ({"nps": 5, "csat": 3, "day": "2026-13-01"}, ["answers.day"]),
        ({"nps": 5, "csat": 3, "me": {"email": "nope"}}, ["answers.me"]),
        ({"nps": 5, "csat": 3, "stars": 6}, ["answers.stars"]),
    ],
)
async def test_invalid_answers_are_422_naming_each_field(svc, answers, fields):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ALL_TYPES)
    r = await svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json={"answers": answers})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert sorted({e["field"] for e in r.json()["errors"]}) == sorted(fields)
    assert await svc.sql("SELECT id FROM outbox") == []


MORE_INVALID = [
    ({"nps": 5, "csat": 3, "ces": 8}, ["answers.ces"]),
    ({"nps": 5.5, "csat": 3}, ["answers.nps"]),
    ({"nps": True, "csat": 3}, ["answers.nps"]),
    ({"nps": 5, "csat": 3, "drop": "gz"}, ["answers.drop"]),
    ({"nps": 5, "csat": 3, "multi": {"choices": ["x", "other"]}}, ["answers.multi"]),
    ({"nps": 5, "csat": 3, "multi": "x,y"}, ["answers.multi"]),
    ({"nps": 5, "csat": 3, "grid": {"r1": "c9"}}, ["answers.grid"]),
    ({"nps": 5, "csat": 3, "rank": ["price", "price", "speed"]}, ["answers.rank"]),
    ({"nps": 5, "csat": 3, "why": 42}, ["answers.why"]),
    ({"nps": 5, "csat": 3, "day": "yesterday"}, ["answers.day"]),
    ({"nps": 5, "csat": 3, "me": {"phone": "call me"}}, ["answers.me"]),
    ({"nps": 5, "csat": 3, "me": {"fax": "1234567"}}, ["answers.me"]),
    ({"nps": 11, "csat": 9, "ghost": 1, "stars": 0}, ["answers.ghost"]),  # unknown ids are reported first
    ({"nps": 11, "csat": 9, "stars": 0}, ["answers.csat", "answers.nps", "answers.stars"]),
    ({"nps": "nan", "csat": 3}, ["answers.nps"]),
    ({"nps": 5, "csat": 3, "age": "-inf"}, ["answers.age"]),
    ({"nps": 5, "csat": "1e999"}, ["answers.csat"]),
]


async def test_every_type_refuses_its_own_kind_of_bad_answer(svc):
    """One survey, many bad submissions (the parametrized test above makes a database per case)."""
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ALL_TYPES)
    for answers, fields in MORE_INVALID:
        r = await svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json={"answers": answers})
        assert r.status_code == 422, (answers, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert sorted({e["field"] for e in r.json()["errors"]}) == sorted(fields), answers
    assert await svc.sql("SELECT id FROM outbox") == []


async def test_skip_logic_and_display_conditions(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, LOGIC)
    url = f"/v1/public/surveys/{survey_id}/responses"
    # Promoter jumps to the end: later required questions are not required and their answers are dropped.
    promoter = await svc.client.post(url, json={"answers": {"nps": 10, "more": "x"}})
    assert promoter.status_code == 201, promoter.text
    assert promoter.json()["answers"] == {"nps": 10}
    # Detractor must say why and answer p3; p2 only shows for the app channel.
    missing = await svc.client.post(url, json={"answers": {"nps": 3}})
    assert missing.status_code == 422
    assert sorted(e["field"] for e in missing.json()["errors"]) == ["answers.more", "answers.why_low"]
    ok = await svc.client.post(url, json={"answers": {"nps": 3, "why_low": "slow", "more": "x"}})
    assert ok.status_code == 201
    app = await svc.client.post(url, json={"answers": {"nps": 7, "more": "x"}, "hidden": {"channel": "app"}})
    assert app.status_code == 422
    assert [e["field"] for e in app.json()["errors"]] == ["answers.app"]
    # Hidden question answered anyway: dropped, not stored
    passive = await svc.client.post(url, json={"answers": {"nps": 8, "why_low": "??", "more": "x"}})
    assert passive.json()["answers"] == {"nps": 8, "more": "x"}
    assert passive.json()["nps_category"] == "passive"
    bad_hidden = await svc.client.post(url, json={"answers": {"nps": 10}, "hidden": {"secret": "1"}})
    assert bad_hidden.status_code == 422
    assert bad_hidden.json()["errors"][0]["field"] == "hidden.secret"


async def test_personal_tokens_single_use_and_expiry(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, LOGIC)
    inv = await svc.client.post(
        f"/v1/surveys/{survey_id}/invitations",
        json={"customer_key": "C-7", "hidden": {"order_id": "O-9"}},
        headers=svc.auth(tenant),
    )
    assert inv.status_code == 201, inv.text
    token = inv.json()["token"]
    assert f"/s/{survey_id}?t=" in inv.json()["url"]
    url = f"/v1/public/surveys/{survey_id}/responses"
    first = await svc.client.post(url, json={"answers": {"nps": 10}, "token": token})
    assert first.status_code == 201, first.text
    assert first.json()["customer_key"] == "C-7"
    assert first.json()["hidden"] == {"order_id": "O-9"}
    again = await svc.client.post(url, json={"answers": {"nps": 1, "why_low": "x", "more": "y"}, "token": token})
    assert again.status_code == 200  # the same double-submitted link answers with the first response
    assert again.json()["id"] == first.json()["id"]
    # a different submission through a used token is refused as reuse
    inv2 = (await svc.client.post(f"/v1/surveys/{survey_id}/invitations", json={}, headers=svc.auth(tenant))).json()
    await svc.sql(
        "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = $1", uuid.UUID(inv2["id"])
    )
    expired = await svc.client.post(url, json={"answers": {"nps": 10}, "token": inv2["token"]})
    assert expired.status_code == 410
    assert expired.json()["field"] == "token"
    inv3 = (await svc.client.post(f"/v1/surveys/{survey_id}/invitations", json={}, headers=svc.auth(tenant))).json()
    await svc.sql("UPDATE invitations SET used_at = now() WHERE id = $1", uuid.UUID(inv3["id"]))
    reused = await svc.client.post(url, json={"answers": {"nps": 10}, "token": inv3["token"]})
    assert reused.status_code == 409
    unknown = await svc.client.post(url, json={"answers": {"nps": 10}, "token": "nope"})
    assert unknown.status_code == 404


async def test_oversized_payload_is_413(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, LOGIC)
    big = {"answers": {"nps": 3, "why_low": "x" * 300_000, "more": "y"}}
    r = await svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json=big)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"


async def test_org_projection_scopes_lists_and_validates_touchpoints(svc):
    tenant = uuid.uuid4()
    await svc.publish_org(
        tenant, [("hq", "", []), ("east", "hq", ["hq"]), ("s1", "east", ["hq", "east"]), ("west", "hq", ["hq"])]
    )
    h = svc.auth(tenant)
    bad = await svc.client.post(
        "/v1/touchpoints",
        json={"name": "x", "stage_key": "post_sale", "channel": "hotline", "org_unit_id": "nowhere"},
        headers=h,
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "org_unit_id"
    bad_stage = await svc.client.post(
        "/v1/touchpoints", json={"name": "x", "stage_key": "later", "channel": "web"}, headers=h
    )
    assert bad_stage.json()["errors"][0]["field"] == "stage_key"
    survey_id = await svc.create_published(tenant, LOGIC)
    for unit in ("s1", "west"):
        tp = (
            await svc.client.post(
                "/v1/touchpoints",
                json={"name": unit, "stage_key": "post_sale", "channel": "delivery", "org_unit_id": unit},
                headers=h,
            )
        ).json()
        r = await svc.client.post(
            f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 10}, "touchpoint_id": tp["id"]}
        )
        assert r.status_code == 201, r.text

    async def visible(org):
        page = (await svc.client.get("/v1/responses", headers=svc.auth(tenant, org=org))).json()
        return sorted(i["org_unit_id"] for i in page["items"])

    assert await visible(None) == ["s1", "west"]
    assert await visible("hq") == ["s1", "west"]
    assert await visible("east") == ["s1"]
    assert await visible("west") == ["west"]
    stages = (await svc.client.get("/v1/journey-stages", headers=h)).json()
    assert [s["key"] for s in stages] == ["pre_sale", "in_sale", "post_sale"]
    # Tenant isolation
    other = uuid.uuid4()
    assert (await svc.client.get("/v1/responses", headers=svc.auth(other))).json()["items"] == []
    assert (await svc.client.get("/v1/touchpoints", headers=svc.auth(other))).json() == []


async def test_list_filters_export_and_privacy_deletion(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, ALL_TYPES)
    url = f"/v1/public/surveys/{survey_id}/responses"
    for i, score in enumerate([10, 3, 8]):
        r = await svc.client.post(url, json={"answers": {**GOOD, "nps": score}, "hidden": {"customer_id": f"C{i}"}})
        assert r.status_code == 201
    h = svc.auth(tenant)
    detractors = (await svc.client.get(f"/v1/responses?survey_id={survey_id}&nps_category=detractor", headers=h)).json()
    assert [i["customer_key"] for i in detractors["items"]] == ["C1"]
    p1 = (await svc.client.get("/v1/responses?limit=2", headers=h)).json()
    p2 = (await svc.client.get(f"/v1/responses?limit=2&cursor={p1['next_cursor']}", headers=h)).json()
    assert len(p1["items"]) == 2
    assert len(p2["items"]) == 1
    assert p2["next_cursor"] is None

    exported = await svc.client.get(f"/v1/responses/export?survey_id={survey_id}", headers=h)
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [r["nps"] for r in rows] == ["10", "3", "8"]
    assert rows[0]["q:why"] == "排队太久了"
    assert json.loads(rows[0]["q:grid"]) == {"r1": "c2", "r2": "c1"}
    xlsx = await svc.client.get(f"/v1/responses/export?survey_id={survey_id}&format=xlsx", headers=h)
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    table = list(sheet.values)
    assert table[0][0] == "response_id"
    assert len(table) == 4

    deleted = await svc.client.delete("/v1/customers/C1/responses", headers=h)
    assert deleted.json()["responses_deleted"] == 1
    left = (await svc.client.get("/v1/responses", headers=h)).json()["items"]
    assert sorted(i["customer_key"] for i in left) == ["C0", "C2"]
    assert (await svc.client.delete("/v1/customers/C0/responses", headers=svc.auth(uuid.uuid4()))).json()[
        "responses_deleted"
    ] == 0


async def test_relay_publishes_the_event_to_jetstream(svc):
    tenant = uuid.uuid4()
    bus = svc.app.state.runtime.bus
    subject = subject_for("survey.response.submitted", svc.settings.events_subject_prefix)
    sub = await bus.js.pull_subscribe(subject, durable=None, stream=svc.settings.events_stream)
    survey_id = await svc.create_published(tenant, LOGIC)
    r = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 2, "why_low": "差", "more": "退款"}}
    )
    assert r.status_code == 201
    msgs = await sub.fetch(1, timeout=10)
    envelope = events_pb2.Envelope.FromString(msgs[0].data)
    assert envelope.survey_response_submitted.response_id == r.json()["id"]
    assert envelope.survey_response_submitted.nps == 2
    assert msgs[0].headers["Nats-Msg-Id"] == envelope.event_id


async def test_partial_save_and_resume_through_the_api(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, LOGIC)
    base = f"/v1/public/surveys/{survey_id}"
    saved = await svc.client.post(f"{base}/partial", json={"answers": {"nps": 4}})
    assert saved.status_code == 200, saved.text
    resume_id = saved.json()["resume_id"]
    bad = await svc.client.post(f"{base}/partial", json={"answers": {"nps": 40}, "resume_id": resume_id})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "answers.nps"
    more = await svc.client.post(f"{base}/partial", json={"answers": {"why_low": "慢"}, "resume_id": resume_id})
    assert more.json()["answers"] == {"nps": 4, "why_low": "慢"}
    resumed = (await svc.client.get(f"{base}/partial/{resume_id}")).json()
    final = await svc.client.post(
        f"{base}/responses", json={"answers": {**resumed["answers"], "more": "x"}, "resume_id": resume_id}
    )
    assert final.status_code == 201
    assert final.json()["duration_ms"] is not None
    assert (await svc.client.get(f"{base}/partial/{resume_id}")).status_code == 404


async def test_a_tenants_own_journey_stage_is_carried_by_touchpoints_and_responses(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    stage = {"key": "after_care", "name": {"zh-Hans": "售后关怀", "en": "After care"}, "position": 3}
    created = await svc.client.post("/v1/journey-stages", json=stage, headers=h)
    assert created.status_code == 201, created.text
    again = await svc.client.post("/v1/journey-stages", json=stage, headers=h)
    assert (again.status_code, again.json()["field"]) == (409, "key")
    bad = await svc.client.post("/v1/journey-stages", json={**stage, "key": "After Care"}, headers=h)
    assert (bad.status_code, bad.json()["errors"][0]["field"]) == (422, "key")
    keys = [s["key"] for s in (await svc.client.get("/v1/journey-stages", headers=h)).json()]
    assert keys == ["pre_sale", "in_sale", "post_sale", "after_care"]
    assert [s["key"] for s in (await svc.client.get("/v1/journey-stages", headers=svc.auth(uuid.uuid4()))).json()] == [
        "pre_sale",
        "in_sale",
        "post_sale",
    ]
    tp = await svc.client.post(
        "/v1/touchpoints", json={"name": "400 热线回访", "stage_key": "after_care", "channel": "hotline"}, headers=h
    )
    assert tp.status_code == 201, tp.text
    survey_id = await svc.create_published(tenant, LOGIC, touchpoint_id=tp.json()["id"])
    r = await svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 10}})
    assert (r.json()["journey_stage"], r.json()["channel"], r.json()["touchpoint_id"]) == (
        "after_care",
        "hotline",
        tp.json()["id"],
    )
    listed = (await svc.client.get("/v1/responses?journey_stage=after_care", headers=h)).json()["items"]
    assert [i["id"] for i in listed] == [r.json()["id"]]


async def test_exports_stream_thousands_of_responses_in_chunks(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    survey_id = await svc.create_published(tenant, LOGIC)
    first = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 2, "why_low": "慢\x01\x1f", "more": "x"}}
    )
    assert first.status_code == 201, first.text
    await svc.sql(
        "INSERT INTO responses (id, tenant_id, survey_id, version, version_id, submission_key, language, answers, "
        "hidden, nps, nps_category, submitted_at, org_path) "
        "SELECT gen_random_uuid(), tenant_id, survey_id, version, version_id, 'gen-' || g, 'zh-Hans', "
        "jsonb_build_object('nps', 10, 'more', '排队太久' || md5(random()::text) || md5(random()::text) "
        "|| md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)), "
        "'{}', 10, 'promoter', now(), '{}' "
        "FROM responses, generate_series(1, 3000) AS g"
    )
    xlsx = await svc.client.get(f"/v1/responses/export?survey_id={survey_id}&format=xlsx", headers=h)
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    table = list(openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True).active.values)
    assert len(table) == 3002
    header = table[0]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in table[1:]}
    mine = by_id[first.json()["id"]]
    assert (mine["nps"], mine["nps_category"], mine["q:why_low"]) == (2, "detractor", "慢")  # numbers stay numbers
    assert sum(1 for row in by_id.values() if row["q:more"].startswith("排队太久")) == 3000

    # Both formats leave in pieces as the rows are read, not once all are.
    from cx_survey.responses import export
    from cx_survey.responses.models import Response

    query = select(Response).where(Response.tenant_id == tenant).order_by(Response.id)
    for stream in (export.stream_xlsx, export.stream_csv):
        async with svc.app.state.runtime.sessions() as session:
            chunks = [chunk async for chunk in stream(session, query, ["nps", "why_low", "more"])]
        assert len(chunks) > 3, stream.__name__
    csv_rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(csv_rows) == 3002
