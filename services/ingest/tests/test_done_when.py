"""Issue 6, "done when", end to end on real Postgres, NATS JetStream and the real NLP service (tiny model): a partner
is registered, pushes a batch and a CSV with some bad rows and sees per-record results; its items are analysed
against the tenant's codebook; clustering shows ranked groups; feedback.received and feedback.analyzed reach
JetStream once per item version (Nats-Msg-Id = event id)."""

import csv
import io
import uuid

import pytest

from cx.events.v1 import events_pb2
from cx_local.pytest_plugin import eventually as poll

CODEBOOK = {
    "name": "门店",
    "active": True,
    "nodes": [
        {"id": "svc", "names": {"zh-Hans": "服务", "en": "Service"}},
        {"id": "delivery", "parent_id": "svc", "names": {"zh-Hans": "配送", "en": "Delivery"}},
        {
            "id": "speed",
            "parent_id": "delivery",
            "names": {"zh-Hans": "配送速度", "en": "Delivery speed"},
            "keywords": ["配送", "delivery"],
        },
    ],
}


@pytest.fixture
def ingest_overrides(nlp_server, tmp_path):
    return {
        "analysis_enabled": True,
        "nlp_grpc_target": nlp_server.target,
        "analysis_batch_size": 8,
        "analysis_linger_s": 0.05,
        "analysis_poll_interval_s": 0.2,
        "import_dir": str(tmp_path / "imports"),
    }


async def eventually(check):
    return await poll(check, 60.0, interval=0.1)


async def test_partner_batch_and_csv_analysed_against_the_codebook_clustered_and_announced(ingest, nlp_server):
    tenant = uuid.uuid4()
    admin = ingest.auth(tenant)
    created = await ingest.client.post("/v1/codebooks", json=CODEBOOK, headers=admin)
    await ingest.client.post(f"/v1/codebooks/{created.json()['id']}/versions", json={}, headers=admin)
    _, key = await ingest.partner(tenant, kind="review", default_channel="review")

    # A batch with two bad records: the good ones are stored, each bad one is reported with its field.
    items = [
        {"external_id": "b1", "text": "配送太慢了，等了三天"},
        {"external_id": "b2", "text": "停车位太少"},
        {"external_id": "b3", "text": "停车收费贵"},
        {"external_id": "b4"},
        {"external_id": "b5", "text": "不错", "channel": "fax"},
        {"external_id": "b6", "text": "价格偏高"},
    ]
    batch = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert batch.status_code == 200, batch.text
    answer = batch.json()
    assert answer["counts"] == {"total": 6, "accepted": 4, "duplicate": 0, "rejected": 2}
    rejected = {r["external_id"]: r["errors"][0]["field"] for r in answer["results"] if r["status"] == "rejected"}
    assert rejected == {"b4": "record", "b5": "channel"}
    status = await ingest.client.get(f"/v1/imports/{answer['import_id']}", headers=ingest.key(key))
    assert status.json()["results"] == answer["results"]

    # A CSV with two bad rows: streamed in the background, progress and an error report.
    buffer = io.StringIO()
    rows = [
        ["id", "comment", "when"],
        ["c1", "配送员很快就送到了", "2026-11-01T10:00:00+08:00"],
        ["c2", "停车场很乱", ""],
        ["", "没有编号", ""],
        ["c4", "价格不透明", "yesterday"],
        ["c5", "delivery was late", ""],
    ]
    csv.writer(buffer).writerows(rows)
    upload = await ingest.client.post(
        "/v1/feedback:import",
        files={"file": ("reviews.csv", buffer.getvalue().encode(), "text/csv")},
        data={"columns": '{"external_id": "id", "text": "comment", "occurred_at": "when"}'},
        headers=ingest.key(key),
    )
    assert upload.status_code == 202, upload.text
    import_id = upload.json()["import_id"]

    async def imported():
        body = (await ingest.client.get(f"/v1/imports/{import_id}", headers=ingest.key(key))).json()
        return body["status"] == "completed" and body

    done = await eventually(imported)
    assert (done["processed_rows"], done["counts"]["accepted"], done["counts"]["rejected"]) == (5, 3, 2)
    report = await ingest.client.get(f"/v1/imports/{import_id}/errors.csv", headers=ingest.key(key))
    lines = report.text.lstrip("\ufeff").splitlines()
    assert lines[0] == "row,external_id,reason"
    assert [line.split(",")[0] for line in lines[1:]] == ["3", "4"]
    assert "occurred_at" in lines[2]

    # Every accepted item is analysed once, against the tenant's codebook.
    async def analysed():
        rows = await ingest.sql("SELECT external_id, analysis_state, analysis FROM feedback_items")
        return len(rows) == 7 and all(r["analysis_state"] == "done" for r in rows) and rows

    stored = {r["external_id"]: r for r in await eventually(analysed)}
    for ext in ("b1", "c1", "c5"):
        assert '"配送速度"' in stored[ext]["analysis"] or "Delivery speed" in stored[ext]["analysis"], ext
    feedback = (await ingest.client.get("/v1/feedback", headers=admin)).json()["items"]
    by_ext = {f["external_id"]: f for f in feedback}
    assert by_ext["b1"]["analysis"]["aspects"][0]["path"] == ["服务", "配送", "配送速度"]
    assert by_ext["b2"]["unmatched"] is True

    # Clustering of what matched no codebook node: ranked groups with representatives.
    run = await ingest.client.post("/v1/clusters/runs", json={"min_cluster_size": 2}, headers=admin)
    assert run.status_code == 201, run.text
    clusters = run.json()["clusters"]
    assert clusters
    assert [c["rank"] for c in clusters] == list(range(len(clusters)))
    assert [c["size"] for c in clusters] == sorted((c["size"] for c in clusters), reverse=True)
    assert {r["text"] for r in clusters[0]["representatives"]} >= {"停车位太少", "停车收费贵"}

    # The relay put both events of every item on JetStream, once each.
    bus = ingest.app.state.runtime.bus
    prefix = ingest.settings.events_subject_prefix
    sub = await bus.js.pull_subscribe(f"{prefix}.feedback.>", durable=None, stream=ingest.settings.events_stream)
    seen: dict[str, list[events_pb2.Envelope]] = {"feedback.received": [], "feedback.analyzed": []}

    async def all_published():
        try:
            for msg in await sub.fetch(50, timeout=1):
                envelope = events_pb2.Envelope.FromString(msg.data)
                assert msg.headers["Nats-Msg-Id"] == envelope.event_id
                seen[envelope.type].append(envelope)
                await msg.ack()
        except TimeoutError:
            pass
        return len(seen["feedback.received"]) >= 7 and len(seen["feedback.analyzed"]) >= 7

    await eventually(all_published)
    received = {e.feedback_received.context.external_id for e in seen["feedback.received"]}
    analyzed = [e.feedback_analyzed.context.external_id for e in seen["feedback.analyzed"]]
    assert received == set(stored) and sorted(analyzed) == sorted(stored)
    assert all(e.tenant_id == str(tenant) and e.source == "ingest" for e in seen["feedback.received"])
