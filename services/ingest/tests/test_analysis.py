"""The analysis pipeline against the real NLP service (tiny model, real gRPC adapter): micro-batches, codebook
registration on FAILED_PRECONDITION (again after NLP restarts), what is stored and announced, re-analysis of
updates, clustering of unmatched items and promotion into the codebook, re-coding after a new codebook version."""

import asyncio
import uuid

import pytest

from cx.events.v1 import events_pb2
from cx.nlp.v1 import nlp_pb2, nlp_pb2_grpc
from cx_common.grpc import insecure_channel
from cx_ingest.codebooks import service as codebooks
from cx_local.pytest_plugin import eventually

FAST = {
    "analysis_enabled": True,
    "analysis_batch_size": 8,
    "analysis_linger_s": 0.05,
    "analysis_poll_interval_s": 0.2,
    "analysis_backoff_base_s": 0.05,
    "analysis_backoff_max_s": 0.2,
    "breaker_failure_threshold": 2,
    "breaker_cooldown_s": 0.3,
    "nlp_timeout_s": 30.0,
}

CODEBOOK = {
    "name": "零售",
    "primary_language": "zh-Hans",
    "active": True,
    "nodes": [
        {"id": "svc", "names": {"zh-Hans": "服务", "en": "Service"}},
        {"id": "delivery", "parent_id": "svc", "names": {"zh-Hans": "配送", "en": "Delivery"}},
        {
            "id": "speed",
            "parent_id": "delivery",
            "names": {"zh-Hans": "配送速度", "en": "Delivery speed"},
            "keywords": ["配送", "delivery"],
            "examples": ["配送太慢了"],
        },
        {"id": "staff", "parent_id": "svc", "names": {"zh-Hans": "店员", "en": "Staff"}},
        {
            "id": "attitude",
            "parent_id": "staff",
            "names": {"zh-Hans": "服务态度", "en": "Attitude"},
            "keywords": ["态度", "attitude"],
        },
    ],
}


async def state_counts(ingest) -> dict[str, int]:
    rows = await ingest.sql("SELECT analysis_state, count(*) AS n FROM feedback_items GROUP BY 1")
    return {r["analysis_state"]: r["n"] for r in rows}


async def analyzed_events(ingest) -> list[events_pb2.Envelope]:
    rows = await ingest.sql("SELECT payload FROM outbox WHERE event_type = 'feedback.analyzed' ORDER BY id")
    return [events_pb2.Envelope.FromString(r["payload"]) for r in rows]


async def publish_codebook(ingest, tenant) -> str:
    created = await ingest.client.post("/v1/codebooks", json=CODEBOOK, headers=ingest.auth(tenant))
    assert created.status_code == 201, created.text
    cb_id = created.json()["id"]
    published = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=ingest.auth(tenant))
    assert published.status_code == 201, published.text
    return cb_id


@pytest.fixture
def ingest_overrides(nlp_server):
    return {**FAST, "nlp_grpc_target": nlp_server.target}


async def test_items_are_analysed_against_the_tenant_codebook(ingest, nlp_server):
    tenant = uuid.uuid4()
    cb_id = await publish_codebook(ingest, tenant)
    _, key = await ingest.partner(tenant)
    items = [
        {"external_id": "1", "text": "配送太慢了，打电话13812345678也没人接"},
        {"external_id": "2", "text": "店员态度很好"},
        {"external_id": "3", "text": "价格一般"},
        {
            "external_id": "call-1",
            "channel": "hotline",
            "agent_id": "A1",
            "turns": [
                {"speaker": "agent", "text": "您好"},
                {"speaker": "customer", "text": "我要投诉，配送太差"},
            ],
        },
    ]
    sent = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert sent.json()["counts"]["accepted"] == 4

    async def all_done():
        return (await state_counts(ingest)) == {"done": 4}

    await eventually(all_done)
    # The codebook was unknown to NLP at first: registered once, then every call used it.
    assert nlp_server.calls("RegisterCodebook") == 1

    by_ext = {}
    for result in sent.json()["results"]:
        item = await ingest.client.get(f"/v1/feedback/{result['id']}", headers=ingest.auth(tenant))
        by_ext[result["external_id"]] = item.json()
    first = by_ext["1"]
    assert first["sentiment"] == "negative"
    assert first["analysis"]["aspects"][0]["path"] == ["服务", "配送", "配送速度"]
    assert first["analysis"]["aspects"][0]["node_id"] == "speed"
    assert first["analysis"]["codebook_id"] == cb_id
    assert first["analysis"]["codebook_version"] == 1
    assert first["analysis"]["need_layer"] == "pain"
    assert first["analysis"]["language"] == "zh-Hans"
    assert first["analysis"]["model_version"]
    assert by_ext["2"]["sentiment"] == "positive"
    assert by_ext["2"]["analysis"]["aspects"][0]["node_id"] == "attitude"
    assert by_ext["3"]["unmatched"] is True
    assert by_ext["3"]["analysis"]["aspects"] == []
    top_intent = max(by_ext["call-1"]["analysis"]["intents"], key=lambda i: i["score"])
    assert top_intent["intent"] == "complaint"
    assert by_ext["call-1"]["analysis"]["keywords"]

    events = await analyzed_events(ingest)
    assert len(events) == 4
    by_id = {e.feedback_analyzed.context.external_id: e.feedback_analyzed for e in events}
    assert "13812345678" not in by_id["1"].text  # NLP and consumers only ever see redacted text
    assert "[PHONE]" in by_id["1"].text
    assert [list(a.path) for a in by_id["1"].aspects] == [["服务", "配送", "配送速度"]]
    assert by_id["call-1"].context.agent_id == "A1"
    assert [(t.seq, t.speaker) for t in by_id["call-1"].turns] == [(0, "agent"), (1, "customer")]
    assert max(by_id["call-1"].intents, key=lambda i: i.score).intent == "complaint"
    assert by_id["3"].unmatched is True
    assert all(e.feedback_analyzed.codebook_version == 1 for e in events)
    rows = await ingest.sql("SELECT analysis_count, embedding FROM feedback_items")
    assert {r["analysis_count"] for r in rows} == {1}
    for row in rows:  # an L2-normalised embedding per item, from NLP Embed
        assert len(row["embedding"]) > 8
        assert abs(sum(v * v for v in row["embedding"]) - 1.0) < 1e-3

    # An update re-queues the item; its new version is analysed once more.
    await ingest.client.post(
        "/v1/feedback:batch",
        json={"items": [{"external_id": "3", "text": "店员态度太差"}]},
        headers=ingest.key(key),
    )

    async def reanalysed():
        rows = await ingest.sql(
            "SELECT analysis_count, analysis_state, sentiment FROM feedback_items WHERE external_id = '3'"
        )
        return rows[0]["analysis_state"] == "done" and rows[0]["analysis_count"] == 2 and rows[0]

    row = await eventually(reanalysed)
    assert row["sentiment"] == "negative"
    assert len(await analyzed_events(ingest)) == 5

    # NLP restarts (its codebook registry is gone): the worker registers the codebook again and carries on.
    await nlp_server.stop()
    await nlp_server.start()
    await ingest.client.post(
        "/v1/feedback:batch", json={"items": [{"external_id": "4", "text": "配送很快"}]}, headers=ingest.key(key)
    )

    async def fourth_done():
        rows = await ingest.sql("SELECT analysis->'aspects'->0->>'node_id' AS node FROM feedback_items "
                                "WHERE external_id = '4' AND analysis_state = 'done'")  # fmt: skip
        return rows and rows[0]

    assert (await eventually(fourth_done, 60))["node"] == "speed"
    assert nlp_server.calls("RegisterCodebook") == 1


async def test_unmatched_items_are_clustered_and_a_cluster_promoted(ingest, nlp_server):
    tenant = uuid.uuid4()
    cb_id = await publish_codebook(ingest, tenant)
    _, key = await ingest.partner(tenant)
    texts = ["停车位太少", "停车收费贵", "停车场很乱", "价格偏高", "价格不透明", "洗手间脏", "店员态度好"]
    items = [{"external_id": str(i), "text": t} for i, t in enumerate(texts)]
    await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))

    async def all_done():
        return (await state_counts(ingest)) == {"done": 7}

    await eventually(all_done)
    run = await ingest.client.post("/v1/clusters/runs", json={"min_cluster_size": 2}, headers=ingest.auth(tenant))
    assert run.status_code == 201, run.text
    body = run.json()
    assert body["item_count"] == 6  # "店员态度好" matched the codebook
    assert [(c["rank"], c["size"]) for c in body["clusters"]] == [(0, 3), (1, 2)]  # ranked by size
    assert body["noise_count"] == 1
    assert {r["text"] for r in body["clusters"][0]["representatives"]} == {"停车位太少", "停车收费贵", "停车场很乱"}
    assert {r["text"] for r in body["clusters"][1]["representatives"]} == {"价格偏高", "价格不透明"}
    assert "价格" in [k["text"] for k in body["clusters"][1]["keywords"]]

    promoted = await ingest.client.post(
        f"/v1/clusters/{body['clusters'][0]['id']}:promote",
        json={
            "codebook_id": cb_id,
            "parent_id": "svc",
            "names": {"zh-Hans": "停车", "en": "Parking"},
            "keywords": ["停车"],
        },
        headers=ingest.auth(tenant),
    )
    assert promoted.status_code == 200, promoted.text
    node = next(n for n in promoted.json()["draft_nodes"] if n["names"].get("en") == "Parking")
    assert node["level"] == 2
    assert node["keywords"] == ["停车"]
    assert len(node["examples"]) == 3
    again = await ingest.client.get(f"/v1/clusters/runs/{body['id']}", headers=ingest.auth(tenant))
    assert again.json()["clusters"][0]["promoted_node_id"] == node["id"]
    other = await ingest.client.get(f"/v1/clusters/runs/{body['id']}", headers=ingest.auth(uuid.uuid4()))
    assert other.status_code == 404


async def test_new_codebook_version_triggers_a_recoding_backfill(ingest, nlp_server):
    tenant = uuid.uuid4()
    cb_id = await publish_codebook(ingest, tenant)
    _, key = await ingest.partner(tenant)
    items = [{"external_id": str(i), "text": t} for i, t in enumerate(["停车太难", "配送太慢", "价格一般"])]
    await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))

    async def all_done():
        return (await state_counts(ingest)) == {"done": 3}

    await eventually(all_done)
    node = {"id": "parking", "parent_id": "svc", "names": {"zh-Hans": "停车"}, "keywords": ["停车"]}
    added = await ingest.client.post(f"/v1/codebooks/{cb_id}/nodes", json=node, headers=ingest.auth(tenant))
    assert added.status_code == 201, added.text
    v2 = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=ingest.auth(tenant))
    assert v2.json()["version"] == 2

    async def recoded():
        jobs = (await ingest.client.get(f"/v1/codebooks/{cb_id}/recodes", headers=ingest.auth(tenant))).json()
        return jobs[0]["status"] == "completed" and jobs[0]["recoded"] == 3 and jobs[0]

    job = await eventually(recoded)
    assert (job["version"], job["total"], job["queued"]) == (2, 3, 3)
    rows = await ingest.sql(
        "SELECT external_id, analysis_count, analysis->'aspects'->0->'path' AS path FROM feedback_items "
        "ORDER BY external_id"
    )
    assert [r["analysis_count"] for r in rows] == [2, 2, 2]
    assert rows[0]["path"] == '["服务", "停车"]'  # newly coded against version 2
    events = await analyzed_events(ingest)
    assert sorted(e.feedback_analyzed.codebook_version for e in events) == [1, 1, 1, 2, 2, 2]


async def test_scheduled_clustering_runs_for_tenants_with_new_unmatched_items(ingest, nlp_server):
    from cx_ingest.clusters.schedule import run_schedule_once

    tenant = uuid.uuid4()
    await publish_codebook(ingest, tenant)
    _, key = await ingest.partner(tenant)
    items = [{"external_id": str(i), "text": t} for i, t in enumerate(["停车难", "停车贵", "价格高"])]
    await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))

    async def all_done():
        return (await state_counts(ingest)) == {"done": 3}

    await eventually(all_done)
    runtime = ingest.app.state.runtime
    assert await run_schedule_once(runtime.sessions, runtime.extras["nlp_stub"]) == 1
    assert await run_schedule_once(runtime.sessions, runtime.extras["nlp_stub"]) == 0  # nothing new since
    runs = (await ingest.client.get("/v1/clusters/runs", headers=ingest.auth(tenant))).json()
    assert [(r["trigger"], r["item_count"]) for r in runs] == [("schedule", 3)]


async def test_lanes_that_meet_an_unknown_codebook_together_register_it_once(ingest, nlp_server):
    tenant = uuid.uuid4()
    cb_id = await publish_codebook(ingest, tenant)
    runtime = ingest.app.state.runtime
    worker = runtime.extras["analysis_worker"]
    async with runtime.sessions() as session:
        active = await codebooks.active_version(session, tenant)
    request = nlp_pb2.AnalyzeRequest(
        items=[nlp_pb2.TextInput(id="a", text="配送太慢了")],
        codebook=nlp_pb2.CodebookRef(tenant_id=str(tenant), codebook_id=cb_id, version=1),
    )
    before = nlp_server.calls("RegisterCodebook")
    # Four lanes' Analyze calls all go out before anyone has registered the version.
    responses = await asyncio.gather(*(worker._call_analyze(request, active, tenant) for _ in range(4)))
    assert nlp_server.calls("RegisterCodebook") - before == 1
    assert all(r.results[0].id == "a" for r in responses)


async def test_a_codebook_reaches_every_nlp_replica_behind_round_robin(ingest, nlp_server, nlp_servers):
    """The registration goes to one replica, the retried Analyze may reach another: the worker registers on all of
    them, so no item is charged for NLP's FAILED_PRECONDITION."""
    other = await nlp_servers()
    tenant = uuid.uuid4()
    cb_id = await publish_codebook(ingest, tenant)
    worker = ingest.app.state.runtime.extras["analysis_worker"]
    async with ingest.app.state.runtime.sessions() as session:
        active = await codebooks.active_version(session, tenant)
    channel = insecure_channel(f"ipv4:{nlp_server.target},{other.target}")  # round-robin over both replicas
    worker.stub = nlp_pb2_grpc.NlpServiceStub(channel)
    try:
        for i in range(6):
            request = nlp_pb2.AnalyzeRequest(
                items=[nlp_pb2.TextInput(id=str(i), text="配送太慢了")],
                codebook=nlp_pb2.CodebookRef(tenant_id=str(tenant), codebook_id=cb_id, version=1),
            )
            response = await worker._call_analyze(request, active, tenant)
            assert response.results[0].id == str(i)
        assert nlp_server.calls("RegisterCodebook") >= 1 and other.calls("RegisterCodebook") >= 1
    finally:
        await channel.close()
