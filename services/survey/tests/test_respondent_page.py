import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit

from survey_testkit import LOGIC, t


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


async def test_page_by_page_with_resume_progress_and_thanks(svc):
    tenant = uuid.uuid4()
    definition = {**LOGIC, "thank_you": {"zh-Hans": "谢谢", "zh-Hant": "謝謝", "en": "Thanks a lot"}}
    survey_id = await svc.create_published(tenant, definition)
    page = await svc.client.get(f"/s/{survey_id}?lang=en&customer_id=C-1&store=S9")
    assert page.status_code == 200
    html = page.text
    assert '<html lang="en">' in html
    assert "Progress 1/2" in html  # p2 hidden (no app channel), jump not taken yet
    assert 'name="q_nps"' in html
    assert 'name="q_why_low"' in html  # same-page condition: rendered, decided on submit
    fields = form_fields(html)
    assert fields["h_customer_id"] == "C-1"

    # Required follow-up on the same page is enforced server-side.
    bad = await svc.client.post(f"/s/{survey_id}", data={**fields, "q_nps": "2"})
    assert bad.status_code == 422
    assert 'aria-invalid="true"' in bad.text
    assert "This question is required" in bad.text

    nxt = await svc.client.post(f"/s/{survey_id}", data={**fields, "q_nps": "2", "q_why_low": "太慢"})
    assert nxt.status_code == 303
    location = nxt.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["page"] == ["p3"]
    assert query["customer_id"] == ["C-1"]
    # Resume: the saved answers come back with the resume link.
    resumed = await svc.client.get(location)
    assert "Progress 2/2" in resumed.text
    fields2 = form_fields(resumed.text)
    back_to_p1 = await svc.client.get(f"/s/{survey_id}?r={query['r'][0]}&page=p1&lang=en")
    assert 'value="2" checked' in back_to_p1.text
    assert "太慢" in back_to_p1.text

    done = await svc.client.post(f"/s/{survey_id}", data={**fields2, "q_more": "加快速度"})
    assert done.status_code == 303, done.text
    thanks = await svc.client.get(done.headers["location"])
    assert "Thanks a lot" in thanks.text
    rows = await svc.sql("SELECT answers, customer_key, hidden, nps, duration_ms FROM responses")
    assert len(rows) == 1
    assert rows[0]["customer_key"] == "C-1"
    assert rows[0]["nps"] == 2
    assert rows[0]["duration_ms"] is not None
    assert len(await svc.sql("SELECT 1 FROM outbox")) == 1
    assert await svc.sql("SELECT 1 FROM partial_responses") == []

    # Pressing submit twice lands on the same thank-you page, no second response.
    twice = await svc.client.post(f"/s/{survey_id}", data={**fields2, "q_more": "加快速度"})
    assert twice.headers["location"] == done.headers["location"]
    assert len(await svc.sql("SELECT 1 FROM responses")) == 1


async def test_language_from_browser_and_link_errors(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, {"title": t("問卷"), "pages": LOGIC["pages"][:1]})
    page = await svc.client.get(f"/s/{survey_id}", headers={"Accept-Language": "zh-TW,zh;q=0.9"})
    assert '<html lang="zh-Hant">' in page.text
    assert "下一頁" in page.text or "提交" in page.text
    page = await svc.client.get(f"/s/{survey_id}", headers={"Accept-Language": "zh-CN"})
    assert '<html lang="zh-Hans">' in page.text

    inv = (await svc.client.post(f"/v1/surveys/{survey_id}/invitations", json={}, headers=svc.auth(tenant))).json()
    await svc.sql("UPDATE invitations SET expires_at = now() - interval '1 minute'")
    expired = await svc.client.get(f"/s/{survey_id}?t={inv['token']}&lang=en")
    assert expired.status_code == 410
    assert "expired" in expired.text

    draft = (
        await svc.client.post("/v1/surveys", json={"title": "d", "template": "nps"}, headers=svc.auth(tenant))
    ).json()
    not_published = await svc.client.get(f"/s/{draft['id']}?lang=en")
    assert not_published.status_code == 409
    missing = await svc.client.get(f"/s/{uuid.uuid4()}?lang=en")
    assert missing.status_code == 404


async def test_clearing_an_answer_on_a_page_is_saved(svc):
    tenant = uuid.uuid4()
    definition = {
        "title": t("x"),
        "pages": [
            {"id": "p1", "questions": [{"id": "note", "type": "text", "title": t("note")}]},
            {"id": "p2", "questions": [{"id": "nps", "type": "nps", "title": t("nps"), "required": True}]},
        ],
    }
    survey_id = await svc.create_published(tenant, definition)
    fields = form_fields((await svc.client.get(f"/s/{survey_id}?lang=en")).text)
    first = await svc.client.post(f"/s/{survey_id}", data={**fields, "q_note": "hello"})
    resume = parse_qs(urlsplit(first.headers["location"]).query)["r"][0]
    cleared = await svc.client.post(f"/s/{survey_id}", data={**fields, "_r": resume, "q_note": ""})
    assert cleared.status_code == 303
    rows = await svc.sql("SELECT answers FROM partial_responses WHERE id = $1", resume)
    assert rows[0]["answers"] == "{}"


async def test_a_public_link_for_one_touchpoint_attributes_its_responses(svc):
    """The QR code at one store's checkout: `/s/<survey>?touchpoint=<id>` → the response carries that touchpoint,
    its stage, channel and org unit; a link naming no touchpoint of the tenant still takes the answer."""
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    one_page = {**LOGIC, "pages": LOGIC["pages"][:1]}
    survey_id = await svc.create_published(tenant, one_page)
    tp = await svc.client.post(
        "/v1/touchpoints",
        json={"name": "静安店收银台", "stage_key": "in_sale", "channel": "store", "org_unit_id": "s-jingan"},
        headers=h,
    )
    foreign = await svc.client.post(
        "/v1/touchpoints", json={"name": "x", "stage_key": "in_sale", "channel": "web"}, headers=svc.auth(uuid.uuid4())
    )
    for link_touchpoint in (tp.json()["id"], foreign.json()["id"], "not-a-touchpoint"):
        page = await svc.client.get(f"/s/{survey_id}?touchpoint={link_touchpoint}&lang=en")
        fields = form_fields(page.text)
        assert fields["h_touchpoint"] == link_touchpoint
        done = await svc.client.post(f"/s/{survey_id}", data={**fields, "q_nps": "10"})
        assert done.status_code == 303, done.text
    rows = await svc.sql("SELECT touchpoint_id, journey_stage, channel, org_unit_id, hidden FROM responses")
    attributed = [(str(r["touchpoint_id"]), r["journey_stage"], r["channel"], r["org_unit_id"]) for r in rows]
    assert sorted(attributed, key=str) == sorted(
        [(tp.json()["id"], "in_sale", "store", "s-jingan"), ("None", None, None, None), ("None", None, None, None)],
        key=str,
    )
    assert sorted(json.loads(r["hidden"])["touchpoint"] for r in rows) == sorted(
        [tp.json()["id"], foreign.json()["id"], "not-a-touchpoint"]
    )
