"""The partner API: batches with per-record results, natural-key dedup with updates, Idempotency-Key, O-data,
PII redaction before storage, feedback.received in the outbox of the same transaction."""

import asyncio
import uuid

import asyncpg

from cx.events.v1 import events_pb2


def luhn_complete(body: str) -> str:
    for check in "0123456789":
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError


def id_card(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body17 + "10X98765432"[sum(int(d) * w for d, w in zip(body17, weights, strict=True)) % 11]


async def outbox_events(ingest, event_type: str) -> list:
    rows = await ingest.sql("SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [events_pb2.Envelope.FromString(r["payload"]) for r in rows]


async def test_batch_accepts_good_records_and_reports_bad_ones(ingest):
    tenant = uuid.uuid4()
    pid, key = await ingest.partner(tenant, default_channel="email")
    items = [
        {"external_id": "e1", "text": "物流很快，包装很好", "language": "zh-Hans", "customer_key": "C1"},
        {"external_id": "e2"},  # no text
        {"external_id": "e3", "text": "ok", "channel": "fax"},  # bad channel
        "not an object",
        {
            "external_id": "call-1",
            "channel": "hotline",
            "agent_id": "A-7",
            "occurred_at": "2026-11-20T09:00:00+08:00",
            "org_unit_id": "store-1",
            "touchpoint_id": "tp-delivery",
            "journey_stage": "after-sales",
            "product_sku": "SKU-1",
            "turns": [
                {"seq": 2, "speaker": "customer", "text": "我的电话是13812345678", "offset_ms": 9000},
                {"seq": 1, "speaker": "agent", "text": "您好，请问有什么可以帮您？", "offset_ms": 0},
            ],
        },
        {"external_id": "e1", "text": "same id again in this batch"},
    ]
    response = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["counts"] == {"total": 6, "accepted": 2, "duplicate": 1, "rejected": 3}
    statuses = [(r["index"], r["status"]) for r in body["results"]]
    assert statuses == [
        (0, "accepted"),
        (1, "rejected"),
        (2, "rejected"),
        (3, "rejected"),
        (4, "accepted"),
        (5, "duplicate"),
    ]
    assert body["results"][1]["reason"] == "record: text or turns is required"
    assert body["results"][2]["errors"][0]["field"] == "channel"
    assert body["results"][0]["action"] == "created"
    assert body["results"][5]["id"] == body["results"][0]["id"]
    assert body["results"][5]["reason"] == "external_id repeats record 0 of this batch"

    status = await ingest.client.get(f"/v1/imports/{body['import_id']}", headers=ingest.key(key))
    assert status.json() == body

    call = await ingest.client.get(f"/v1/feedback/{body['results'][4]['id']}", headers=ingest.auth(tenant))
    item = call.json()
    assert item["channel"] == "hotline"
    assert item["agent_id"] == "A-7"
    assert [(t["seq"], t["speaker"]) for t in item["turns"]] == [(0, "agent"), (1, "customer")]
    assert item["turns"][1]["text"] == "我的电话是[PHONE]"
    assert item["redactions"] == {"phone": 1}
    assert item["raw_text"] is None
    email = await ingest.client.get(f"/v1/feedback/{body['results'][0]['id']}", headers=ingest.auth(tenant))
    assert email.json()["channel"] == "email"  # the partner's default channel

    events = await outbox_events(ingest, "feedback.received")
    assert len(events) == 2
    by_id = {e.feedback_received.context.external_id: e.feedback_received for e in events}
    assert by_id["call-1"].is_conversation is True
    assert by_id["call-1"].context.agent_id == "A-7"
    assert by_id["call-1"].context.partner_id == pid
    assert by_id["call-1"].context.journey_stage == "after-sales"
    assert all(e.tenant_id == str(tenant) for e in events)


async def test_dedup_on_natural_key_with_update_semantics(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    first = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "r1", "text": "还行"}]}, headers=ingest.key(key)
    )
    same = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "r1", "text": "还行"}]}, headers=ingest.key(key)
    )
    changed = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "r1", "text": "其实很差"}]}, headers=ingest.key(key)
    )
    item_id = first.json()["results"][0]["id"]
    assert same.json()["results"][0] == {
        "index": 0,
        "external_id": "r1",
        "status": "duplicate",
        "id": item_id,
        "reason": "identical record already received",
        "errors": [],
    }
    assert changed.json()["results"][0]["action"] == "updated"
    assert changed.json()["results"][0]["id"] == item_id
    rows = await ingest.sql("SELECT text, revision, analysis_state FROM feedback_items")
    assert [(r["text"], r["revision"], r["analysis_state"]) for r in rows] == [("其实很差", 2, "pending")]
    assert len(await outbox_events(ingest, "feedback.received")) == 2

    # The same external id from another partner is another item.
    _, other = await ingest.partner(tenant)
    again = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "r1", "text": "还行"}]}, headers=ingest.key(other)
    )
    assert again.json()["results"][0]["action"] == "created"


async def test_idempotency_key_replays_and_refuses_other_bodies(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    headers = {**ingest.key(key), "Idempotency-Key": "batch-0001"}
    body = {"items": [{"external_id": f"i{i}", "text": f"第{i}条反馈"} for i in range(5)]}
    first = await ingest.client.post("/v1/feedback:batch", json=body, headers=headers)
    replay = await ingest.client.post("/v1/feedback:batch", json=body, headers=headers)
    assert first.status_code == replay.status_code == 200
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert (await ingest.sql("SELECT count(*) AS n FROM feedback_items"))[0]["n"] == 5
    assert (await ingest.sql("SELECT count(*) AS n FROM imports"))[0]["n"] == 1
    assert len(await outbox_events(ingest, "feedback.received")) == 5

    other = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "x", "text": "不同"}]}, headers=headers
    )
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert (await ingest.sql("SELECT count(*) AS n FROM feedback_items"))[0]["n"] == 5

    # Concurrent requests with one new key: one answer for both, the work done once (the loser rolls back).
    racing = {**ingest.key(key), "Idempotency-Key": "batch-0002"}
    body2 = {"items": [{"external_id": f"c{i}", "text": f"并发{i}"} for i in range(20)]}
    first_c, second_c = await asyncio.gather(
        ingest.client.post("/v1/feedback:batch", json=body2, headers=racing),
        ingest.client.post("/v1/feedback:batch", json=body2, headers=racing),
    )
    assert first_c.status_code == second_c.status_code == 200
    assert first_c.content == second_c.content
    assert (await ingest.sql("SELECT count(*) AS n FROM feedback_items"))[0]["n"] == 25
    assert (await ingest.sql("SELECT count(*) AS n FROM imports"))[0]["n"] == 2

    # Keys are per partner: another partner may use the same key.
    _, key2 = await ingest.partner(tenant)
    own = await ingest.client.post(
        "/v1/feedback:batch", json=body, headers={**ingest.key(key2), "Idempotency-Key": "batch-0001"}
    )
    assert own.json()["counts"]["accepted"] == 5


async def test_batch_limits_and_body_errors(ingest):
    _, key = await ingest.partner(uuid.uuid4())
    too_many = {"items": [{"external_id": str(i), "text": "x"} for i in range(1001)]}
    response = await ingest.client.post("/v1/feedback:batch", json=too_many, headers=ingest.key(key))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "items"
    empty = await ingest.client.post("/v1/feedback:batch", json={"items": []}, headers=ingest.key(key))
    assert empty.status_code == 422
    full = {"items": [{"external_id": str(i), "text": "好"} for i in range(1000)]}
    accepted = await ingest.client.post("/v1/feedback:batch", json=full, headers=ingest.key(key))
    assert accepted.json()["counts"]["accepted"] == 1000
    # The body is parsed by the endpoint itself (one pass from the bytes): the same problem+json as FastAPI's.
    as_json = {**ingest.key(key), "Content-Type": "application/json"}
    for broken, field in ((b'{"items": [', "body"), (b"[1, 2]", "body"), (b'{"items": 3}', "items")):
        refused = await ingest.client.post("/v1/feedback:batch", content=broken, headers=as_json)
        assert refused.status_code == 422, broken
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"][0]["field"] == field, refused.json()
    odata = await ingest.client.post("/v1/odata/orders:batch", content=b"not json", headers=as_json)
    assert odata.status_code == 422
    spec = (await ingest.client.get("/openapi.json")).json()
    for path in ("/v1/feedback:batch", "/v1/odata/{kind}:batch"):
        schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["items"]["maxItems"] == 1000


async def test_pii_is_redacted_and_raw_kept_only_when_the_tenant_says_so(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    card = luhn_complete("622202123456789012")
    ident = id_card("11010519491231002")
    text = (
        f"电话 138-1234-5678，座机 010-62345678，邮箱 li.lei@example.cn，身份证 {ident}，卡号 {card}，"
        "国际 +44 20 7946 0958，订单号 SO20261101001 会员号 VIP-778899"
    )
    put = await ingest.client.put(
        "/v1/privacy/settings",
        json={"keep_raw": True, "custom_patterns": [{"name": "member", "pattern": r"VIP-\d{6}"}]},
        headers=ingest.auth(tenant),
    )
    assert put.status_code == 200, put.text
    sent = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "p1", "text": text}]}, headers=ingest.key(key)
    )
    item = (
        await ingest.client.get(f"/v1/feedback/{sent.json()['results'][0]['id']}", headers=ingest.auth(tenant))
    ).json()
    assert item["text"] == (
        "电话 [PHONE]，座机 [PHONE]，邮箱 [EMAIL]，身份证 [ID_CARD]，卡号 [BANK_CARD]，"
        "国际 [PHONE]，订单号 SO20261101001 会员号 [MEMBER]"
    )
    assert item["redactions"] == {"phone": 3, "email": 1, "id_card": 1, "bank_card": 1, "member": 1}
    assert item["raw_text"] == text

    # Numbers that fail the checksums are not cards/IDs.
    bad_card = card[:-1] + str((int(card[-1]) + 1) % 10)
    probe = await ingest.client.post(
        "/v1/privacy/redact:test", json={"text": f"流水号 {bad_card}"}, headers=ingest.auth(tenant)
    )
    assert probe.json() == {"text": f"流水号 {bad_card}", "counts": {}}

    # Default: the raw original is not kept.
    other = uuid.uuid4()
    _, other_key = await ingest.partner(other)
    await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "p1", "text": text}]}, headers=ingest.key(other_key)
    )
    rows = await ingest.sql("SELECT raw_text, text FROM feedback_items WHERE tenant_id = $1", other)
    assert rows[0]["raw_text"] is None
    assert "13812345678" not in rows[0]["text"]
    assert "VIP-778899" in rows[0]["text"]  # that pattern belongs to the other tenant


async def test_bad_privacy_pattern_is_refused(ingest):
    tenant = uuid.uuid4()
    for pattern, message in (("(unclosed", "custom_patterns.0.pattern"), ("a*", "matches the empty string")):
        response = await ingest.client.put(
            "/v1/privacy/settings",
            json={"custom_patterns": [{"name": "x", "pattern": pattern}]},
            headers=ingest.auth(tenant),
        )
        assert response.status_code == 422
        assert message in response.json()["detail"]


async def test_mapped_partner_payloads_and_conversations(ingest):
    tenant = uuid.uuid4()
    pid, key = await ingest.partner(tenant, kind="chat", default_channel="chat")
    mapping = {
        "fields": {"external_id": "session.id", "customer_key": "visitor", "occurred_at": "started"},
        "turns": {
            "path": "messages",
            "speaker": "from",
            "text": "body",
            "offset_ms": "ms",
            "agent_id": "staff_id",
            "speaker_values": {"staff": "agent", "visitor": "customer"},
        },
    }
    saved = await ingest.client.put(f"/v1/partners/{pid}/mapping", json=mapping, headers=ingest.auth(tenant))
    assert saved.status_code == 200, saved.text
    payload = {
        "session": {"id": 991},
        "visitor": "V-1",
        "started": "2026-11-02T08:00:00Z",
        "messages": [
            {"from": "visitor", "body": "How do I return shoes?", "ms": 0},
            {"from": "staff", "body": "Happy to help", "ms": 1500, "staff_id": "S-3"},
        ],
    }
    response = await ingest.client.post("/v1/feedback:batch", json={"items": [payload]}, headers=ingest.key(key))
    result = response.json()["results"][0]
    assert result["status"] == "accepted", result
    item = (await ingest.client.get(f"/v1/feedback/{result['id']}", headers=ingest.auth(tenant))).json()
    assert item["external_id"] == "991"
    assert item["channel"] == "chat"
    assert item["agent_id"] == "S-3"
    assert [t["speaker"] for t in item["turns"]] == ["customer", "agent"]


async def test_odata_upsert_and_event(ingest):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    items = [
        {"record_key": "SO-1", "customer_key": "C1", "attributes": {"amount": 128.5, "status": "paid"}},
        {"record_key": "SO-2", "customer_key": "C2", "attributes": {"amount": 10}},
        {"customer_key": "C3"},
    ]
    first = await ingest.client.post("/v1/odata/orders:batch", json={"items": items}, headers=ingest.key(key))
    assert first.json()["counts"] == {"total": 3, "accepted": 2, "duplicate": 0, "rejected": 1}
    assert first.json()["results"][2]["errors"][0]["field"] == "record_key"
    again = await ingest.client.post(
        "/v1/odata/orders:batch",
        json={"items": [items[0], {**items[1], "attributes": {"amount": 12}}]},
        headers=ingest.key(key),
    )
    assert [(r["status"], r.get("action")) for r in again.json()["results"]] == [
        ("duplicate", None),
        ("accepted", "updated"),
    ]
    events = await outbox_events(ingest, "odata.upserted")
    assert [(e.odata_upserted.record_key, e.odata_upserted.attributes["amount"]) for e in events] == [
        ("SO-1", "128.5"),
        ("SO-2", "10"),
        ("SO-2", "12"),
    ]
    assert events[0].odata_upserted.kind == "orders"
    bad_kind = await ingest.client.post("/v1/odata/Bad-Kind:batch", json={"items": items}, headers=ingest.key(key))
    assert bad_kind.status_code == 422


async def test_partner_cannot_see_another_partners_import_or_tenant_data(ingest):
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    _, key_a = await ingest.partner(tenant_a)
    _, key_b = await ingest.partner(tenant_b)
    sent = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "1", "text": "a"}]}, headers=ingest.key(key_a)
    )
    import_id = sent.json()["import_id"]
    item_id = sent.json()["results"][0]["id"]
    assert (await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.key(key_b))).status_code == 404
    assert (await ingest.client.get(f"/v1/feedback/{item_id}", headers=ingest.auth(tenant_b))).status_code == 404
    listed = await ingest.client.get("/v1/feedback", headers=ingest.auth(tenant_b))
    assert listed.json()["items"] == []
    mine = await ingest.client.get("/v1/feedback?channel=crm", headers=ingest.auth(tenant_a))
    assert [i["id"] for i in mine.json()["items"]] == [item_id]


async def test_idempotency_keys_expire_after_their_retention(ingest):
    from cx_ingest.maintenance import purge_idempotency_keys

    _, key = await ingest.partner(uuid.uuid4())
    headers = {**ingest.key(key), "Idempotency-Key": "old"}
    await ingest.client.post("/v1/feedback:batch", json={"items": [{"external_id": "1", "text": "a"}]}, headers=headers)
    await ingest.sql("UPDATE idempotency_keys SET created_at = now() - interval '73 hours'")
    sessions = ingest.app.state.runtime.sessions
    assert await purge_idempotency_keys(sessions, ingest.settings.idempotency_ttl_hours) == 1
    reused = await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "2", "text": "b"}]}, headers=headers
    )
    assert reused.json()["counts"]["accepted"] == 1  # the key is free again


async def test_batch_whose_connection_dies_mid_request_answers_503(ingest):
    """Postgres drops the connection while a batch is being written (as on a restart): the request answers 503 with
    Retry-After (problem+json), never a 500, nothing of it is kept; sent again with its Idempotency-Key it is stored
    once."""
    _, key = await ingest.partner(uuid.uuid4())
    first = {"items": [{"external_id": "r0", "text": "第一版"}]}
    assert (await ingest.client.post("/v1/feedback:batch", json=first, headers=ingest.key(key))).status_code == 200
    admin_url = ingest.db.admin_url.replace("postgresql+asyncpg://", "postgresql://")
    blocker = await asyncpg.connect(admin_url)
    try:  # hold the row the next batch updates, so that batch is mid-transaction when its connection is killed
        await blocker.execute("BEGIN")
        await blocker.execute("SELECT 1 FROM ingest.feedback_items WHERE external_id = 'r0' FOR UPDATE")
        headers = {**ingest.key(key), "Idempotency-Key": "dies-mid-request"}
        body = {"items": [{"external_id": "r0", "text": "第二版"}, {"external_id": "r1", "text": "新的"}]}
        sent = asyncio.create_task(ingest.client.post("/v1/feedback:batch", json=body, headers=headers))

        async def waiting_on_the_lock():
            rows = await ingest.sql(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'cx-ingest-fast' "
                "AND wait_event_type = 'Lock'"
            )
            return rows[0]["n"] == 1

        deadline = asyncio.get_running_loop().time() + 20
        while not await waiting_on_the_lock():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await ingest.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cx-ingest-fast'"
        )
        answer = await asyncio.wait_for(sent, 20)
    finally:
        await blocker.close()
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["content-type"] == "application/problem+json"
    rows = await ingest.sql("SELECT external_id, text FROM feedback_items ORDER BY external_id")
    assert [(r["external_id"], r["text"]) for r in rows] == [("r0", "第一版")]

    again = await ingest.client.post("/v1/feedback:batch", json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert [r["action"] for r in again.json()["results"]] == ["updated", "created"]
    replay = await ingest.client.post("/v1/feedback:batch", json=body, headers=headers)
    assert replay.content == again.content
    rows = await ingest.sql("SELECT external_id, text, revision FROM feedback_items ORDER BY external_id")
    assert [(r["external_id"], r["text"], r["revision"]) for r in rows] == [("r0", "第二版", 2), ("r1", "新的", 1)]


async def test_batch_notifies_the_outbox_relay_only_when_it_stages_events(ingest):
    """The events, the imports row and the Idempotency-Key go in with one statement; its NOTIFY wakes the relay on
    commit, and a batch that stages no event (all duplicates) sends none."""
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    listener = await asyncpg.connect(ingest.db.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("cx_outbox", lambda *args: notified.put_nowait(args[2]))
    try:
        items = [{"external_id": "n1", "text": "送货很快"}, {"external_id": "n2", "text": "包装破损"}]
        headers = {**ingest.key(key), "Idempotency-Key": "notify-1"}
        first = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=headers)
        assert first.status_code == 200, first.text
        await asyncio.wait_for(notified.get(), timeout=5)
        assert len(await outbox_events(ingest, "feedback.received")) == 2
        stored = await ingest.sql("SELECT response FROM idempotency_keys WHERE key = 'notify-1'")
        assert [r["response"] for r in stored] == [first.text]

        again = await ingest.client.post(
            "/v1/feedback:batch", json={"items": items}, headers={**ingest.key(key), "Idempotency-Key": "notify-2"}
        )
        assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]
        imports = await ingest.sql("SELECT id FROM imports WHERE id = $1", uuid.UUID(again.json()["import_id"]))
        assert len(imports) == 1
        await asyncio.sleep(0.3)
        assert notified.empty()
    finally:
        await listener.close()
