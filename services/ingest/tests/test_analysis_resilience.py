"""Exactly-once analysis when a worker dies mid-batch or loses its lease; nothing lost while NLP is down."""

import asyncio
import uuid

import pytest

from cx.events.v1 import events_pb2
from cx.nlp.v1 import nlp_pb2_grpc
from cx_common.grpc import insecure_channel
from cx_ingest.analysis.worker import AnalysisWorker
from cx_local.pytest_plugin import eventually


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


async def processing(ingest) -> int:
    return (await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'processing'"))[0]["n"]


def worker_on(ingest, server) -> tuple[AnalysisWorker, object]:
    channel = insecure_channel(server.target)
    return AnalysisWorker(
        ingest.app.state.runtime.sessions, ingest.settings, nlp_pb2_grpc.NlpServiceStub(channel)
    ), channel


async def test_worker_killed_mid_batch_and_stale_worker_fenced(ingest, nlp_servers):
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push(ingest, key, 10)
    stuck, healthy = await nlp_servers(), await nlp_servers()
    stuck.pause()  # calls to this adapter hang: its callers stay mid-batch
    worker_a, channel_a = worker_on(ingest, stuck)
    worker_c, channel_c = worker_on(ingest, stuck)
    worker_b, channel_b = worker_on(ingest, healthy)
    try:
        # 1. Worker A claims 5 items and dies while NLP is working on them (its task is killed mid-call).
        task_a = asyncio.create_task(worker_a.run_once())
        await eventually(lambda: _equals(processing(ingest), 5))
        await asyncio.sleep(0.3)
        assert not task_a.done()
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        assert await processing(ingest) == 5

        # 2. Worker C claims the other 5 and hangs in NLP past its lease.
        task_c = asyncio.create_task(worker_c.run_once())
        await eventually(lambda: _equals(processing(ingest), 10))

        # 3. Worker B (another NLP adapter) takes over every expired lease and finishes all 10.
        async def drained():
            await worker_b.run_once()
            rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'done'")
            return rows[0]["n"] == 10

        await eventually(drained, 60)

        # 4. The stale worker C gets its answer at last: its token no longer matches, it writes nothing.
        stuck.resume()
        assert await asyncio.wait_for(task_c, 60) == 5
        await exactly_once(ingest, 10)
        rows = await ingest.sql("SELECT max(attempts) AS a FROM feedback_items")
        assert rows[0]["a"] == 2  # claimed twice, stored once
    finally:
        for channel in (channel_a, channel_b, channel_c):
            await channel.close()


async def _equals(value, expected) -> bool:
    return await value == expected


async def test_a_poison_item_fails_alone_after_bounded_attempts(ingest, nlp_server):
    """NLP refuses a whole call because of one text (longer than it accepts): the batch is bisected, the
    poison item fails after `analysis_max_attempts` attempts with NLP's reason, its batch-mates are analysed once,
    and the breaker stays closed (NLP answered: not an outage)."""
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    poison = "配送太慢了，" * (nlp_server.max_text // 6 + 10)
    items = [{"external_id": str(i), "text": poison if i == 3 else f"好评{i}"} for i in range(5)]
    sent = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert sent.json()["counts"]["accepted"] == 5
    worker, channel = worker_on(ingest, nlp_server)
    try:

        async def settled():
            await worker.run_once()
            rows = await ingest.sql("SELECT external_id, analysis_state, attempts, last_error FROM feedback_items")
            return all(r["analysis_state"] in ("done", "failed") for r in rows) and rows

        rows = await eventually(settled, 60)
        states = {r["external_id"]: r for r in rows}
        bad = states.pop("3")
        assert (bad["analysis_state"], bad["attempts"]) == ("failed", ingest.settings.analysis_max_attempts)
        assert bad["last_error"].startswith("INVALID_ARGUMENT")
        assert {(r["analysis_state"], r["attempts"]) for r in states.values()} == {("done", 1)}
        assert worker.breaker.state == "closed"
    finally:
        await channel.close()


async def test_sigkilled_service_process_mid_batch(ingest, nlp_server, cx_nats_url, cx_events):
    """A real `cx-ingest serve` process claims a batch and is SIGKILLed while its NLP call is in flight; afterwards
    every item is analysed and announced exactly once."""
    import os
    import signal
    import sys

    from cx_local.ports import free_port

    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push(ingest, key, 5)
    nlp_server.pause()
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
    try:  # the process has claimed the batch and waits on NLP (paused): it is mid-batch
        await eventually(lambda: _equals(processing(ingest), 5), 60)
        await asyncio.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert await processing(ingest) == 5
    nlp_server.resume()
    worker, channel = worker_on(ingest, nlp_server)
    try:

        async def drained():
            await worker.run_once()
            rows = await ingest.sql("SELECT count(*) AS n FROM feedback_items WHERE analysis_state = 'done'")
            return rows[0]["n"] == 5

        await eventually(drained, 60)
        await exactly_once(ingest, 5)
    finally:
        await channel.close()
