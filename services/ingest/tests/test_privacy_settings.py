"""PUT /v1/privacy/settings: tenant replacements are literal text end to end (saved, then applied by the batch API),
and a pattern that could only fail later is refused when saved, as problem+json naming the field."""

import uuid

REPLACEMENTS = [r"[VIP\d]", r"\1", r"\g<x>", r"C:\x"]


async def test_replacements_with_backslashes_are_saved_and_applied_as_written(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    patterns = [
        {"name": f"p{i}", "pattern": rf"VIP{i}-(?P<x>\d{{6}})", "replacement": replacement}
        for i, replacement in enumerate(REPLACEMENTS)
    ]
    put = await ingest.client.put(
        "/v1/privacy/settings", json={"custom_patterns": patterns}, headers=ingest.auth(tenant)
    )
    assert put.status_code == 200, put.text
    assert [p["replacement"] for p in put.json()["custom_patterns"]] == REPLACEMENTS

    text = "会员 VIP0-778899 VIP1-778899 VIP2-778899 VIP3-778899 电话+86 13812345678"
    want = r"会员 [VIP\d] \1 \g<x> C:\x 电话[PHONE]"
    probe = await ingest.client.post("/v1/privacy/redact:test", json={"text": text}, headers=ingest.auth(tenant))
    assert probe.status_code == 200, probe.text
    assert probe.json() == {"text": want, "counts": {"p0": 1, "p1": 1, "p2": 1, "p3": 1, "phone": 1}}

    sent = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "p1", "text": text}]}, headers=ingest.key(key)
    )
    assert sent.status_code == 200, sent.text
    rows = await ingest.sql("SELECT text FROM feedback_items WHERE tenant_id = $1", tenant)
    assert [r["text"] for r in rows] == [want]


async def test_patterns_that_would_fail_later_are_refused_when_saved(ingest):
    tenant = uuid.uuid4()
    for pattern in ("(?a)(?u)x", "(?R)?^"):  # incompatible flags; a pattern that times out on every text
        response = await ingest.client.put(
            "/v1/privacy/settings",
            json={"custom_patterns": [{"name": "ok", "pattern": r"VIP-\d{6}"}, {"name": "bad", "pattern": pattern}]},
            headers=ingest.auth(tenant),
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["detail"].startswith("custom_patterns.1.pattern: ")
        assert body["errors"][0]["field"] == "custom_patterns.1.pattern"
    settings = await ingest.client.get("/v1/privacy/settings", headers=ingest.auth(tenant))
    assert settings.json()["custom_patterns"] == []
