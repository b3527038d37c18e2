import uuid


async def test_ops_endpoints(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}
    assert "cx_http_requests_total" in (await client.get("/metrics")).text
    spec = (await client.get("/openapi.json")).json()
    assert spec["info"]["title"] == "CX ingest service"
    assert "/v1/feedback:batch" in spec["paths"]
    assert "/v1/odata/{kind}:batch" in spec["paths"]


async def test_create_get_list_with_cursor(ingest):
    tenant = uuid.uuid4()
    ids = []
    for i in range(3):
        created = await ingest.client.post("/v1/partners", json={"title": f"CRM {i}"}, headers=ingest.auth(tenant))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    fetched = await ingest.client.get(f"/v1/partners/{ids[0]}", headers=ingest.auth(tenant))
    assert fetched.json()["title"] == "CRM 0"
    page1 = (await ingest.client.get("/v1/partners?limit=2", headers=ingest.auth(tenant))).json()
    page2 = (
        await ingest.client.get(f"/v1/partners?limit=2&cursor={page1['next_cursor']}", headers=ingest.auth(tenant))
    ).json()
    assert [s["id"] for s in page1["items"] + page2["items"]] == sorted(ids)
    assert page2["next_cursor"] is None


async def test_tenant_isolation(ingest):
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    pid, _ = await ingest.partner(tenant_a)
    assert (await ingest.client.get(f"/v1/partners/{pid}", headers=ingest.auth(tenant_b))).status_code == 404
    assert (await ingest.client.get("/v1/partners", headers=ingest.auth(tenant_b))).json()["items"] == []
    keys = await ingest.client.post(f"/v1/partners/{pid}/keys", json={}, headers=ingest.auth(tenant_b))
    assert keys.status_code == 404


BAD_PARTNERS = [
    ({"title": ""}, "title"),
    ({"title": "x", "default_language": "fr"}, "default_language"),
    ({}, "title"),
    ({"title": "x", "rate_limit_per_minute": 0}, "rate_limit_per_minute"),
]


async def test_bad_input_is_problem_json_naming_the_field(ingest):
    # One app for all cases (each app start/stop costs seconds).
    for body, field in BAD_PARTNERS:
        response = await ingest.client.post("/v1/partners", json=body, headers=ingest.auth(uuid.uuid4()))
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field, body


async def test_auth_required_and_scopes_enforced(ingest):
    missing = await ingest.client.get("/v1/partners")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    read_only = ingest.auth(uuid.uuid4(), scopes=("partners:read",))
    assert (await ingest.client.post("/v1/partners", json={"title": "x"}, headers=read_only)).status_code == 403


async def test_api_key_is_shown_once_stored_hashed_and_revocable(ingest):
    tenant = uuid.uuid4()
    pid, key = await ingest.partner(tenant)
    assert key.startswith("cxk_")
    listed = (await ingest.client.get(f"/v1/partners/{pid}/keys", headers=ingest.auth(tenant))).json()
    assert len(listed) == 1
    assert "key" not in listed[0]
    rows = await ingest.sql("SELECT prefix, key_hash FROM api_keys")
    assert key not in {rows[0]["key_hash"], rows[0]["prefix"]}
    assert len(rows[0]["key_hash"]) == 64

    ok = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))
    assert ok.status_code == 404  # authenticated; the import just does not exist
    also_ok = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers={"Authorization": f"ApiKey {key}"})
    assert also_ok.status_code == 404
    wrong = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key[:-2] + "xx"))
    assert wrong.status_code == 401
    assert wrong.headers["content-type"] == "application/problem+json"
    assert (await ingest.client.get(f"/v1/imports/{uuid.uuid4()}")).status_code == 401

    revoked = await ingest.client.delete(f"/v1/partners/{pid}/keys/{listed[0]['id']}", headers=ingest.auth(tenant))
    assert revoked.json()["revoked_at"] is not None
    after = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))
    assert after.status_code == 401
    assert after.json()["detail"] == "API key revoked"


async def test_rotation_with_overlap(ingest):
    tenant = uuid.uuid4()
    pid, old = await ingest.partner(tenant)
    rotated = await ingest.client.post(
        f"/v1/partners/{pid}/keys", json={"rotate_overlap_seconds": 3600}, headers=ingest.auth(tenant)
    )
    new = rotated.json()["key"]
    # During the overlap both keys work; the old one carries an expiry.
    for key in (old, new):
        assert (await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))).status_code == 404
    keys = (await ingest.client.get(f"/v1/partners/{pid}/keys", headers=ingest.auth(tenant))).json()
    expiring = [k for k in keys if k["expires_at"] is not None]
    assert [k["prefix"] for k in expiring] == [old.split("_")[1]]
    # Rotating with no overlap ends every other key at once.
    await ingest.client.post(
        f"/v1/partners/{pid}/keys", json={"rotate_overlap_seconds": 0}, headers=ingest.auth(tenant)
    )
    for key in (old, new):
        response = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))
        assert response.status_code == 401
        assert response.json()["detail"] == "API key expired"


async def test_disabled_partner_is_refused(ingest):
    tenant = uuid.uuid4()
    pid, key = await ingest.partner(tenant)
    await ingest.client.patch(f"/v1/partners/{pid}", json={"status": "disabled"}, headers=ingest.auth(tenant))
    assert (await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))).status_code == 403


async def test_rate_limit_answers_429_with_retry_after(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant, rate_limit_per_minute=6, rate_limit_burst=3)
    statuses = [
        (await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))).status_code for _ in range(4)
    ]
    assert statuses == [404, 404, 404, 429]
    limited = await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(key))
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    # Another partner has its own bucket.
    _, other = await ingest.partner(tenant)
    assert (await ingest.client.get(f"/v1/imports/{uuid.uuid4()}", headers=ingest.key(other))).status_code == 404


MAPPING = {
    "fields": {
        "external_id": "id",
        "text": "content.body",
        "occurred_at": "created_at",
        "customer_key": "customer.id",
        "scores.rating": "stars",
        "attributes.order_no": "order.no",
    },
    "constants": {"channel": "review", "language": "zh-Hans"},
}
SAMPLE = {
    "id": 42,
    "content": {"body": "配送太慢了"},
    "created_at": "2026-11-01T10:00:00+08:00",
    "customer": {"id": "C-9"},
    "stars": 2,
    "order": {"no": "SO-1"},
}


async def test_mapping_validated_on_save_and_testable(ingest):
    tenant = uuid.uuid4()
    pid, _ = await ingest.partner(tenant)
    saved = await ingest.client.put(f"/v1/partners/{pid}/mapping", json=MAPPING, headers=ingest.auth(tenant))
    assert saved.status_code == 200, saved.text
    assert saved.json()["field_mapping"]["fields"]["text"] == "content.body"

    tried = await ingest.client.post(
        f"/v1/partners/{pid}/mapping:test", json={"sample": SAMPLE}, headers=ingest.auth(tenant)
    )
    result = tried.json()
    assert result["ok"] is True, result
    assert result["mapped"] == {
        "external_id": "42",
        "text": "配送太慢了",
        "occurred_at": "2026-11-01T10:00:00+08:00",
        "customer_key": "C-9",
        "scores": {"rating": 2},
        "attributes": {"order_no": "SO-1"},
        "channel": "review",
        "language": "zh-Hans",
    }
    bad_sample = await ingest.client.post(
        f"/v1/partners/{pid}/mapping:test", json={"sample": {"id": 1}}, headers=ingest.auth(tenant)
    )
    assert bad_sample.json()["ok"] is False
    assert bad_sample.json()["errors"][0]["message"] == "text or turns is required"


BAD_MAPPINGS = [
    ({"fields": {"external_id": "id", "txt": "body"}}, "fields.txt"),
    ({"fields": {"external_id": "id", "text": "a..b"}}, "fields.text"),
    ({"fields": {"text": "body"}}, "fields.external_id"),
    ({"fields": {"external_id": "id"}}, "fields.text"),
    ({"fields": {"external_id": "id", "text": "t"}, "constants": {"channel": "fax"}}, "constants.channel"),
    (
        {"fields": {"external_id": "id"}, "turns": {"path": "msgs", "speaker_values": {"u": "robot"}}},
        "turns.speaker_values.u",
    ),
]


async def test_bad_mapping_is_refused_naming_the_field(ingest):
    tenant = uuid.uuid4()
    pid, _ = await ingest.partner(tenant)
    for mapping, field in BAD_MAPPINGS:
        response = await ingest.client.put(f"/v1/partners/{pid}/mapping", json=mapping, headers=ingest.auth(tenant))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field, mapping
    assert (await ingest.client.get(f"/v1/partners/{pid}", headers=ingest.auth(tenant))).json()["field_mapping"] is None
