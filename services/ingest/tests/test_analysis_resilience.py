"""Exactly-once analysis when a worker dies mid-batch or loses its lease; nothing lost while NLP is down."""

import asyncio
import types
import uuid

import grpc
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


# -- NLP that fails on some texts: the real adapter behind a servicer that injects INTERNAL or a hang --------------


class PoisonedNlp(nlp_pb2_grpc.NlpServiceServicer):
    """Forwards to the real NLP adapter, except Analyze calls carrying a text with `poison` (every call once
    `everything` is set): answered with `code` at once, or left hanging past the caller's deadline (`hang`)."""

    def __init__(self, upstream: str, poison: str, code: grpc.StatusCode = grpc.StatusCode.INTERNAL) -> None:
        self.channel = insecure_channel(upstream)
        self.upstream = nlp_pb2_grpc.NlpServiceStub(self.channel)
        self.poison, self.code = poison, code
        self.hang = False
        self.everything = False

    async def Analyze(self, request, context):
        if self.everything or any(self.poison in item.text for item in request.items):
            if self.hang:
                await asyncio.sleep((context.time_remaining() or 0) + 1)
            await context.abort(self.code, "the model crashed on this text")
        return await self._forward(self.upstream.Analyze, request, context)

    async def Embed(self, request, context):
        return await self._forward(self.upstream.Embed, request, context)

    async def RegisterCodebook(self, request, context):
        return await self._forward(self.upstream.RegisterCodebook, request, context)

    @staticmethod
    async def _forward(method, request, context):
        try:
            return await method(request, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details())


@pytest.fixture
async def poisoned(nlp_server):
    """(servicer, target) of a PoisonedNlp in front of the real adapter; texts containing "POISON" fail."""
    servicer = PoisonedNlp(nlp_server.target, "POISON")
    server = grpc.aio.server()
    nlp_pb2_grpc.add_NlpServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, types.SimpleNamespace(target=f"127.0.0.1:{port}")
    await server.stop(grace=None)
    await servicer.channel.close()


async def push_texts(ingest, key, texts: list[str]) -> None:
    items = [{"external_id": str(i), "text": t} for i, t in enumerate(texts)]
    response = await ingest.client.post("/v1/feedback:batch", json={"items": items}, headers=ingest.key(key))
    assert response.json()["counts"]["accepted"] == len(texts)


async def settle(ingest, workers) -> dict[str, dict]:
    """Run the workers (concurrently, like lanes of several processes) until every item is done or failed."""

    async def settled():
        await asyncio.gather(*(w.run_once() for w in workers))
        rows = await ingest.sql(
            "SELECT external_id, analysis_state, attempts, analysis_count, last_error FROM feedback_items"
        )
        return all(r["analysis_state"] in ("done", "failed") for r in rows) and {r["external_id"]: r for r in rows}

    return await eventually(settled, 60, what="items did not settle")


async def test_an_item_that_makes_nlp_crash_fails_alone_and_the_breaker_stays_closed(ingest, poisoned):
    """NLP answers INTERNAL for a whole call because of one text: the batch is bisected (NLP analyses a canary
    text, so it is not down), the poison item is charged an attempt per claim and ends `failed` with NLP's reason,
    its batch-mates are analysed once, and the breaker never counts a failure."""
    _, target = poisoned
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push_texts(ingest, key, ["配送太慢", "店员态度很好", "POISON 价格一般", "停车太难", "很满意"])
    worker, channel = worker_on(ingest, target)
    failures = 0
    breaker_failure = worker.breaker.failure

    def counted_failure() -> None:
        nonlocal failures
        failures += 1
        breaker_failure()

    worker.breaker.failure = counted_failure
    try:
        rows = await settle(ingest, [worker])
    finally:
        await channel.close()
    bad = rows.pop("2")
    assert (bad["analysis_state"], bad["attempts"]) == ("failed", ingest.settings.analysis_max_attempts)
    assert bad["last_error"].startswith("INTERNAL: the model crashed on this text")
    assert {(r["analysis_state"], r["attempts"], r["analysis_count"]) for r in rows.values()} == {("done", 1, 1)}
    assert failures == 0 and worker.breaker.state == "closed"
    events = await ingest.sql("SELECT count(*) AS n FROM outbox WHERE event_type = 'feedback.analyzed'")
    assert events[0]["n"] == 4


async def test_nlp_crashing_on_every_call_is_an_outage_not_the_items_fault(ingest, poisoned):
    """Every Analyze answers INTERNAL, the canary's too: NLP is broken, not the items. Nothing is bisected or
    charged an attempt, and the breaker opens after its threshold of claims."""
    servicer, target = poisoned
    servicer.everything = True
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push_texts(ingest, key, [f"反馈{i}" for i in range(4)])
    worker, channel = worker_on(ingest, target)
    try:
        for _ in range(ingest.settings.breaker_failure_threshold):
            await ingest.sql("UPDATE feedback_items SET next_attempt_at = now()")  # no backoff wait
            assert await worker.run_once() == 4
    finally:
        await channel.close()
    assert worker.breaker.state == "open"
    rows = await ingest.sql("SELECT analysis_state, attempts, last_error FROM feedback_items")
    assert {(r["analysis_state"], r["attempts"]) for r in rows} == {("pending", 0)}
    assert all(r["last_error"].startswith("INTERNAL") for r in rows)


async def test_an_item_that_always_times_out_fails_alone_and_the_lease_is_kept_while_bisecting(ingest, poisoned):
    """NLP never answers a call carrying one text (DEADLINE_EXCEEDED): the canary shows NLP is up, so the batch
    is bisected; once the item is alone it is charged. Isolating it takes longer than the lease, which the worker
    renews before each call: a second worker polling all along never takes an item over (each is claimed once)."""
    servicer, target = poisoned
    servicer.code, servicer.hang = grpc.StatusCode.DEADLINE_EXCEEDED, True
    settings = ingest.settings.model_copy(
        update={"analysis_batch_size": 8, "nlp_timeout_s": 0.5, "analysis_lease_s": 1.5, "analysis_max_attempts": 2}
    )
    tenant = uuid.uuid4()
    _, key = await ingest.partner(tenant)
    await push_texts(ingest, key, ["POISON 配送太慢"] + [f"好评{i}" for i in range(1, 8)])
    channel = insecure_channel(target.target)
    stub = nlp_pb2_grpc.NlpServiceStub(channel)
    sessions = ingest.app.state.runtime.sessions
    first, second = AnalysisWorker(sessions, settings, stub), AnalysisWorker(sessions, settings, stub)
    stop = asyncio.Event()

    async def poll() -> None:  # the second worker claims whatever lease has expired
        while not stop.is_set():
            await second.run_once()
            await asyncio.sleep(0.05)

    started = asyncio.get_running_loop().time()
    bisecting = asyncio.create_task(first.run_once())
    await eventually(lambda: _equals(processing(ingest), 8))
    poller = asyncio.create_task(poll())
    try:
        assert await bisecting == 8  # 4 calls hang for 0.5 s each: 8 items, 4, 2, then the item alone
        assert asyncio.get_running_loop().time() - started > settings.analysis_lease_s
        stop.set()
        await poller
        rows = await settle(ingest, [first, second])
    finally:
        stop.set()
        await asyncio.gather(poller, return_exceptions=True)
        await channel.close()
    bad = rows.pop("0")
    assert (bad["analysis_state"], bad["attempts"]) == ("failed", 2)
    assert bad["last_error"].startswith("DEADLINE_EXCEEDED")
    assert {(r["analysis_state"], r["attempts"], r["analysis_count"]) for r in rows.values()} == {("done", 1, 1)}
    assert first.breaker.state == second.breaker.state == "closed"
