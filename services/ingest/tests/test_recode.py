"""Re-coding backfill after a codebook publish misses nothing: an item in flight at that moment is analysed again
against the new version (the stale in-flight result goes nowhere), and a row locked while the backfill passes is
re-queued once its lock is released (the backfill never waits for a lock, and its cursor does not skip the row)."""

import asyncio
import uuid

import asyncpg
import pytest

from cx.events.v1 import events_pb2
from cx.nlp.v1 import nlp_pb2_grpc
from cx_common.grpc import insecure_channel
from cx_ingest.analysis.worker import AnalysisWorker
from cx_ingest.codebooks import recode
from cx_ingest.settings import SCHEMA
from cx_local.pytest_plugin import eventually

TREE = [
    {"id": "product", "names": {"zh-Hans": "商品", "en": "Product"}},
    {"id": "quality", "parent_id": "product", "names": {"zh-Hans": "质量", "en": "Quality"}},
    {"id": "defect", "parent_id": "quality", "names": {"zh-Hans": "瑕疵"}, "keywords": ["破损", "瑕疵"]},
]


async def active_codebook(ingest, tenant) -> str:
    """An active codebook with version 1 published."""
    headers = ingest.auth(tenant)
    created = await ingest.client.post(
        "/v1/codebooks", json={"name": "cb", "nodes": TREE, "active": True}, headers=headers
    )
    assert created.status_code == 201, created.text
    cb_id = created.json()["id"]
    published = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=headers)
    assert published.json()["version"] == 1
    return cb_id


async def publish(ingest, tenant, cb_id) -> int:
    published = await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=ingest.auth(tenant))
    assert published.status_code == 201, published.text
    return published.json()["version"]


async def push(ingest, key, texts: dict[str, str]) -> None:
    items = [{"external_id": ext, "text": t} for ext, t in texts.items()]
    sent = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert sent.json()["counts"]["accepted"] == len(items)


async def latest_job(ingest, tenant, cb_id) -> dict:
    return (await ingest.client.get(f"/v1/codebooks/{cb_id}/recodes", headers=ingest.auth(tenant))).json()[0]


async def job_completed(ingest, tenant, cb_id) -> dict:
    async def completed():
        job = await latest_job(ingest, tenant, cb_id)
        return job["status"] == "completed" and job

    return await eventually(completed, what="the re-coding job did not complete")


async def states(ingest) -> dict[str, tuple[str, int, int]]:
    """external_id -> (analysis_state, analysis_count, codebook_version of the stored analysis)."""
    rows = await ingest.sql(
        "SELECT external_id, analysis_state, analysis_count, "
        "coalesce((analysis->>'codebook_version')::int, 0) AS version FROM feedback_items"
    )
    return {r["external_id"]: (r["analysis_state"], r["analysis_count"], r["version"]) for r in rows}


async def analyzed_versions(ingest) -> list[tuple[str, int]]:
    rows = await ingest.sql("SELECT payload FROM outbox WHERE event_type = 'feedback.analyzed'")
    events = [events_pb2.Envelope.FromString(r["payload"]).feedback_analyzed for r in rows]
    return sorted((e.context.external_id, e.codebook_version) for e in events)


async def test_an_item_in_flight_when_a_version_is_published_is_coded_against_the_new_one(ingest, nlp_server):
    tenant = uuid.uuid4()
    cb_id = await active_codebook(ingest, tenant)
    _, key = await ingest.partner(tenant)
    channel = insecure_channel(nlp_server.target)
    worker = AnalysisWorker(ingest.app.state.runtime.sessions, ingest.settings, nlp_pb2_grpc.NlpServiceStub(channel))
    try:
        await push(ingest, key, {"a": "商品破损", "b": "质量不错"})
        assert await worker.run_once() == 2  # coded against version 1
        await push(ingest, key, {"c": "包装有瑕疵"})
        nlp_server.pause()  # "c" is claimed and its Analyze call (with version 1) hangs: it is in flight
        in_flight = asyncio.create_task(worker.run_once())
        await eventually(lambda: _in_flight(ingest))

        assert await publish(ingest, tenant, cb_id) == 2
        job = await job_completed(ingest, tenant, cb_id)
        assert (job["total"], job["queued"]) == (3, 3)
        assert (await states(ingest))["c"] == ("pending", 0, 0)

        nlp_server.resume()  # the stale worker gets its answer: its claim was reset, it stores and announces nothing
        assert await asyncio.wait_for(in_flight, 60) == 1
        assert (await states(ingest))["c"] == ("pending", 0, 0)
        assert await analyzed_versions(ingest) == [("a", 1), ("b", 1)]

        assert await worker.run_once() == 3
    finally:
        await channel.close()
    assert await states(ingest) == {"a": ("done", 2, 2), "b": ("done", 2, 2), "c": ("done", 1, 2)}
    assert await analyzed_versions(ingest) == [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 2)]
    assert (await latest_job(ingest, tenant, cb_id))["recoded"] == 3


async def _in_flight(ingest) -> bool:
    rows = await ingest.sql("SELECT analysis_state FROM feedback_items WHERE external_id = 'c'")
    return rows[0]["analysis_state"] == "processing"


async def test_a_row_locked_while_the_backfill_passes_is_requeued_once_released(ingest, monkeypatch):
    """Another transaction holds one stale row (as a partner re-sending an identical record does for a moment:
    ON CONFLICT DO UPDATE locks the row even when it changes nothing). The backfill re-queues the others, keeps its
    committed cursor before the locked row (a restart would try it again) and re-queues it once it is free."""
    monkeypatch.setattr(recode, "CHUNK", 2)
    tenant = uuid.uuid4()
    cb_id = await active_codebook(ingest, tenant)
    _, key = await ingest.partner(tenant)
    await push(ingest, key, {f"r{i}": f"商品破损{i}" for i in range(5)})
    await ingest.sql(  # as if analysed against version 1
        "UPDATE feedback_items SET analysis_state = 'done', analysis = jsonb_build_object('codebook_id', $1::text, "
        "'codebook_version', 1)",
        cb_id,
    )
    locked = (await ingest.sql("SELECT id, external_id FROM feedback_items ORDER BY id OFFSET 2 LIMIT 1"))[0]
    locked_id, others = locked["id"], {f"r{i}" for i in range(5)} - {locked["external_id"]}
    holder = await asyncpg.connect(ingest.db.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await holder.execute(f"SET search_path = {SCHEMA}")
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT 1 FROM feedback_items WHERE id = $1 FOR UPDATE", locked_id)

        assert await publish(ingest, tenant, cb_id) == 2

        async def others_requeued():
            found = await states(ingest)
            return all(found[ext][0] == "pending" for ext in others)

        await eventually(others_requeued)
        # A worker claims the re-queued rows (still coded against version 1 until it stores): while the backfill
        # keeps trying the locked row, it does not reset them again.
        _, claimed = await AnalysisWorker(ingest.app.state.runtime.sessions, ingest.settings, None).claim()
        assert {r["external_id"] for r in claimed} == others
        await asyncio.sleep(4 * recode.LOCKED_RETRY_S)
        assert {ext: s for ext, (s, _, _) in (await states(ingest)).items() if ext in others} == dict.fromkeys(
            others, "processing"
        )
        job = await latest_job(ingest, tenant, cb_id)
        assert (job["status"], job["total"], job["queued"]) == ("running", 5, 4)
        cursor = (await ingest.sql("SELECT cursor FROM recode_jobs WHERE id = $1", uuid.UUID(job["id"])))[0]
        assert cursor["cursor"] < locked_id
        assert (await states(ingest))[locked["external_id"]][0] == "done"
        await lock.commit()
    finally:
        await holder.close()
    job = await job_completed(ingest, tenant, cb_id)
    assert (job["total"], job["queued"]) == (5, 5)
    final = await states(ingest)
    assert final.pop(locked["external_id"])[0] == "pending"
    assert {s for s, _, _ in final.values()} == {"processing"}  # the claim taken meanwhile stands


@pytest.fixture
def ingest_overrides():
    return {"analysis_enabled": False, "analysis_backoff_base_s": 0.05, "analysis_backoff_max_s": 0.1}
