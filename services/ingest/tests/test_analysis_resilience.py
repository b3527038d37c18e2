"""Exactly-once analysis when a worker dies mid-batch or loses its lease; nothing lost while NLP is down."""

import asyncio
import uuid

import pytest

from cx.events.v1 import events_pb2
from cx.nlp.v1 import nlp_pb2_grpc
from cx_common.grpc import insecure_channel
from cx_ingest.analysis.worker import AnalysisWorker


async def eventually(check, limit: float = 20.0):
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def push(ingest, key, n: int, prefix: str = "") -> None:
    items = [{"external_id": f"{prefix}{i}", "text": f"第{i}条：配送太慢"} for i in range(n)]
    response = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert response.json()["counts"]["accepted"] == n


async def exactly_once(ingest, n: int) -> None:
    rows = await ingest.sql("SELECT analysis_state, analysis_count FROM feedback_items")
    assert len(rows) == n
    assert {(r["analysis_state"], r["analysis_count"]) for r in rows} == {("done", 1)}
    events = await ingest.sql("SELECT payload FROM outbox WHERE event_type = 'feedback.analyzed'")
    ids = [events_pb2.Envelope.FromString(r["payload"]).feedback_analyzed.context.feedback_id for r in events]
    assert len(ids) == n
    assert len(set(ids)) == n


@pytest.fixture
def ingest_overrides():
    # The app's own worker is off: the test drives workers by hand to kill them at chosen points.
    return {
        "analysis_enabled": False,
        "analysis_batch_size": 5,
        "analysis_lease_s": 0.5,
        "analysis_backoff_base_s": 0.05,
        "analysis_backoff_max_s": 0.1,
    }


async def test_worker_killed_mid_batch_and_stale_worker_fenced(ingest, nlp_server):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push(ingest, key, 10)
    runtime = ingest.app.state.runtime
    channel = insecure_channel(nlp_server.target)
    stub = nlp_pb2_grpc.NlpServiceStub(channel)
    servicer = nlp_server.servicer
    try:
        # 1. Worker A claims 5 items and dies while NLP is working on them (its task is killed mid-RPC).
        servicer.gate = asyncio.Event()
        worker_a = AnalysisWorker(runtime.sessions, ingest.settings, stub)
        task_a = asyncio.create_task(worker_a.run_once())
        await asyncio.wait_for(servicer.entered.wait(), 10)
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'processing'")
        assert rows[0]["n"] == 5

        # 2. Worker C claims the other 5 and hangs in NLP past its lease.
        servicer.entered.clear()
        stuck_gate = servicer.gate
        worker_c = AnalysisWorker(runtime.sessions, ingest.settings, stub)
        task_c = asyncio.create_task(worker_c.run_once())
        await asyncio.wait_for(servicer.entered.wait(), 10)

        # 3. Worker B takes over every expired lease and finishes all 10.
        servicer.gate = None
        worker_b = AnalysisWorker(runtime.sessions, ingest.settings, stub)

        async def drained():
            await worker_b.run_once()
            rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'done'")
            return rows[0]["n"] == 10

        await eventually(drained)

        # 4. The stale worker C comes back: its token no longer matches, it writes nothing.
        stuck_gate.set()
        assert await asyncio.wait_for(task_c, 10) == 5
        await exactly_once(ingest, 10)
        rows = await ingest.sql("SELECT max(attempts) AS a FROM feedback_items")
        assert rows[0]["a"] == 2  # claimed twice, stored once
    finally:
        await channel.close()


async def test_poison_items_fail_after_bounded_attempts(ingest, nlp_server):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push(ingest, key, 2)
    # A codebook the NLP server refuses even after registration: every Analyze fails with FAILED_PRECONDITION.
    created = await ingest.client.post(
        "/v1/codebooks",
        json={"name": "x", "active": True, "nodes": [{"id": "a", "names": {"zh-Hans": "甲"}, "keywords": ["甲"]}]},
        headers=ingest.auth(tenant),
    )
    await ingest.client.post(f"/v1/codebooks/{created.json()['id']}/versions", json={}, headers=ingest.auth(tenant))

    servicer = nlp_server.servicer
    original = servicer.codebooks
    servicer.codebooks = _Forgetful()
    runtime = ingest.app.state.runtime
    channel = insecure_channel(nlp_server.target)
    worker = AnalysisWorker(runtime.sessions, ingest.settings, nlp_pb2_grpc.NlpServiceStub(channel))
    try:

        async def failed():
            await worker.run_once()
            rows = await ingest.sql("SELECT analysis_state, attempts, last_error FROM feedback_items")
            return all(r["analysis_state"] == "failed" for r in rows) and rows

        rows = await eventually(failed)
        assert {r["attempts"] for r in rows} == {ingest.settings.analysis_max_attempts}
        assert all("FAILED_PRECONDITION" in r["last_error"] for r in rows)
        assert worker.breaker.state == "closed"  # the NLP service answered: not an outage
    finally:
        servicer.codebooks = original
        await channel.close()


class _Forgetful(dict):
    def __setitem__(self, key, value):
        pass


async def test_a_poison_item_fails_alone_and_its_batch_mates_are_analysed(ingest, nlp_server):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    items = [{"external_id": str(i), "text": "☠ bad" if i == 3 else f"好评{i}"} for i in range(5)]
    await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    runtime = ingest.app.state.runtime
    channel = insecure_channel(nlp_server.target)
    worker = AnalysisWorker(runtime.sessions, ingest.settings, nlp_pb2_grpc.NlpServiceStub(channel))
    try:

        async def settled():
            await worker.run_once()
            rows = await ingest.sql("SELECT external_id, analysis_state, attempts FROM feedback_items")
            return all(r["analysis_state"] in ("done", "failed") for r in rows) and rows

        rows = await eventually(settled)
        states = {r["external_id"]: (r["analysis_state"], r["attempts"]) for r in rows}
        assert states.pop("3") == ("failed", ingest.settings.analysis_max_attempts)
        assert set(states.values()) == {("done", 1)}
    finally:
        await channel.close()


async def test_sigkilled_service_process_mid_batch(ingest, nlp_server, cx_nats_url, cx_events):
    """A real `cx-ingest serve` process claims a batch, is SIGKILLed while NLP works on it; afterwards every item is
    analysed and announced exactly once."""
    import os
    import signal
    import sys

    from cx_local.ports import free_port

    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push(ingest, key, 5)
    servicer = nlp_server.servicer
    servicer.gate = asyncio.Event()
    env = {
        **os.environ,
        "CX_INGEST_DATABASE_URL": ingest.db.url,
        "CX_INGEST_NATS_URL": cx_nats_url,
        "CX_INGEST_EVENTS_STREAM": cx_events.stream,
        "CX_INGEST_EVENTS_SUBJECT_PREFIX": cx_events.subject_prefix,
        "CX_INGEST_NLP_GRPC_TARGET": nlp_server.target,
        "CX_INGEST_ANALYSIS_LEASE_S": "0.5",
        "CX_INGEST_ANALYSIS_LINGER_S": "0",
        "CX_INGEST_CLUSTERING_INTERVAL_S": "0",
        "CX_INGEST_PORT": str(free_port()),
        "CX_INGEST_LOG_JSON": "false",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cx_ingest.cli",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(servicer.entered.wait(), 30)  # the process is inside Analyze with its claim
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    claimed = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'processing'")
    assert claimed[0]["n"] == 5
    servicer.gate.set()
    servicer.gate = None
    channel = insecure_channel(nlp_server.target)
    worker = AnalysisWorker(ingest.app.state.runtime.sessions, ingest.settings, nlp_pb2_grpc.NlpServiceStub(channel))
    try:

        async def drained():
            await worker.run_once()
            rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'done'")
            return rows[0]["n"] == 5

        await eventually(drained)
        await exactly_once(ingest, 5)
    finally:
        await channel.close()
