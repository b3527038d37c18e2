"""Bad input, overload, deadlines, cancellation, health transitions, graceful shutdown and batching."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import grpc
import httpx
import pytest
from aiohttp import web
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cx.nlp.v1 import nlp_pb2 as pb
from cx.nlp.v1 import nlp_pb2_grpc
from cx_nlp.grpc_server import Capacity, GrpcApp

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def items(*texts: str) -> list[pb.TextInput]:
    return [pb.TextInput(id=f"t{i}", text=t) for i, t in enumerate(texts)]


async def expect_error(call, code: grpc.StatusCode, *fragments: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    for fragment in fragments:
        assert fragment in err.value.details()
    return err.value.details() or ""


@contextlib.asynccontextmanager
async def adapter(make_settings, upstream: str, **overrides):
    app = GrpcApp(make_settings(**overrides), upstream_url=upstream, host="127.0.0.1", port=0)
    await app.start()
    channel = aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield app, channel
    finally:
        await channel.close()
        await app.stop(grace=1)


async def wait_for_health(health, expected, service: str = "") -> None:
    for _ in range(600):  # bounded, not a timing assertion
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        if reply.status == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health never became {expected}")


# -- bad input ---------------------------------------------------------------------------------------------
async def test_empty_request(stub):
    await expect_error(stub.Analyze(pb.AnalyzeRequest(), timeout=10), INVALID, "items")
    await expect_error(stub.Embed(pb.EmbedRequest(), timeout=10), INVALID, "items")
    await expect_error(stub.Cluster(pb.ClusterRequest(), timeout=10), INVALID, "items")


async def test_empty_text_names_the_item(stub):
    request = pb.AnalyzeRequest(items=[*items("fine", "also fine"), pb.TextInput(id="blank", text="  \n ")])
    await expect_error(stub.Analyze(request, timeout=10), INVALID, "items[2]", "empty", "blank")
    await expect_error(stub.Embed(pb.EmbedRequest(items=items("ok", "")), timeout=10), INVALID, "items[1]")


async def test_too_many_items(stub):
    await expect_error(stub.Analyze(pb.AnalyzeRequest(items=items(*["x"] * 33)), timeout=10), INVALID, "33 items", "32")
    await expect_error(stub.Embed(pb.EmbedRequest(items=items(*["x"] * 40)), timeout=10), INVALID, "limit is 32")


async def test_unknown_task(stub):
    await expect_error(
        stub.Analyze(pb.AnalyzeRequest(items=items("x"), tasks=[pb.TASK_SENTIMENT, 42]), timeout=10),
        INVALID,
        "tasks[1]",
        "42",
    )
    await expect_error(
        stub.Analyze(pb.AnalyzeRequest(items=items("x"), tasks=[pb.TASK_UNSPECIFIED]), timeout=10),
        INVALID,
        "TASK_UNSPECIFIED",
    )


async def test_aspects_without_codebook(stub):
    await expect_error(
        stub.Analyze(pb.AnalyzeRequest(items=items("x"), tasks=[pb.TASK_ASPECTS]), timeout=10), INVALID, "codebook"
    )


async def test_negative_numbers(stub):
    await expect_error(
        stub.Analyze(pb.AnalyzeRequest(items=items("x"), max_keywords=-1), timeout=10), INVALID, "max_keywords"
    )
    await expect_error(
        stub.Cluster(pb.ClusterRequest(items=items("a", "b"), min_cluster_size=-2), timeout=10),
        INVALID,
        "min_cluster_size",
    )


async def test_overlong_text_is_truncated_and_flagged(stub):
    long_text = "排队太久了，服务很差。" * 60  # 600 characters > 300
    reply = await stub.Analyze(pb.AnalyzeRequest(items=items("short", long_text)), timeout=30)
    assert [r.truncated for r in reply.results] == [False, True]
    assert reply.results[1].sentiment.label == pb.SENTIMENT_NEGATIVE
    embedded = await stub.Embed(pb.EmbedRequest(items=items(long_text)), timeout=30)
    assert embedded.embeddings[0].truncated


async def test_overlong_text_can_be_rejected(make_settings, http_url):
    async with adapter(make_settings, http_url, overlong_text="reject") as (app, channel):
        assert await app.adapter.wait_ready(30)
        stub = nlp_pb2_grpc.NlpServiceStub(channel)
        await expect_error(
            stub.Analyze(pb.AnalyzeRequest(items=items("ok", "y" * 301)), timeout=10), INVALID, "items[1]", "301"
        )


async def test_bad_codebooks_name_the_node(stub):
    def node(node_id, level, parent="", name="n"):
        return pb.CodebookNode(id=node_id, parent_id=parent, level=level, names={"en": name})

    cases = [
        ([], "nodes must not be empty"),
        ([node("a", 1), node("a", 1)], "nodes[1]"),
        ([node("a", 1), node("b", 2, parent="missing")], "nodes[1] (b): parent_id 'missing'"),
        ([node("a", 1), node("b", 3, parent="a")], "nodes[1] (b)"),
        ([node("a", 4)], "level must be 1, 2 or 3"),
        ([node("a", 1, name=" ")], "names"),
    ]
    for nodes, fragment in cases:
        request = pb.RegisterCodebookRequest(tenant_id="t", codebook_id="bad", version=1, nodes=nodes)
        await expect_error(stub.RegisterCodebook(request, timeout=10), INVALID, fragment)
    await expect_error(
        stub.RegisterCodebook(pb.RegisterCodebookRequest(codebook_id="c", nodes=[node("a", 1)]), timeout=10),
        INVALID,
        "tenant_id",
    )


async def test_server_survives_bad_input(stub):
    reply = await stub.Analyze(pb.AnalyzeRequest(items=items("still alive?")), timeout=30)
    assert reply.results[0].id == "t0"


# -- deadlines, cancellation, overload ---------------------------------------------------------------------
async def test_deadline_exceeded_and_the_slot_is_freed(stub, grpc_app):
    texts = ["排队等了四十分钟，服务员态度还很差，再也不来了。" * 10] * 32
    await expect_error(
        stub.Cluster(pb.ClusterRequest(items=items(*texts)), timeout=0.01), grpc.StatusCode.DEADLINE_EXCEEDED
    )
    for _ in range(400):
        if grpc_app.adapter.capacity.requests == 0:
            break
        await asyncio.sleep(0.05)
    assert grpc_app.adapter.capacity.requests == 0 and grpc_app.adapter.capacity.texts == 0
    reply = await stub.Analyze(pb.AnalyzeRequest(items=items("ok")), timeout=30)
    assert len(reply.results) == 1


async def test_cancelled_call_frees_its_slot(stub, grpc_app):
    texts = [f"退款太慢了，客服也不理人，第{i}次投诉。" * 40 for i in range(32)]
    cancelled = 0
    for _ in range(5):  # a call that finished before the cancel could reach it proves nothing: try again
        call = stub.Cluster(pb.ClusterRequest(items=items(*texts)), timeout=60)
        for _ in range(4000):
            if grpc_app.adapter.capacity.requests or call.done():
                break
            await asyncio.sleep(0.001)
        if not grpc_app.adapter.capacity.requests:
            await call
            continue
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        cancelled += 1
        break
    assert cancelled, "no Cluster call was still in flight when cancelled"
    for _ in range(400):
        if grpc_app.adapter.capacity.requests == 0:
            break
        await asyncio.sleep(0.05)
    assert grpc_app.adapter.capacity.requests == 0


async def test_overload_is_resource_exhausted(make_settings, http_url):
    async with adapter(make_settings, http_url, max_concurrent_requests=2, max_inflight_items=64) as (app, ch):
        assert await app.adapter.wait_ready(30)
        stub = nlp_pb2_grpc.NlpServiceStub(ch)
        request = pb.AnalyzeRequest(items=items(*["服务员态度很差，排队也很久"] * 32))
        results = await asyncio.gather(*(stub.Analyze(request, timeout=60) for _ in range(12)), return_exceptions=True)
        codes = [r.code() if isinstance(r, grpc.aio.AioRpcError) else grpc.StatusCode.OK for r in results]
        assert grpc.StatusCode.OK in codes
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        rejected = next(r for r in results if isinstance(r, grpc.aio.AioRpcError))
        assert "overloaded" in (rejected.details() or "")
        # nothing queued behind the refusals: the service answers normally again
        assert app.adapter.capacity.requests == 0
        reply = await stub.Analyze(pb.AnalyzeRequest(items=items("ok")), timeout=30)
        assert len(reply.results) == 1


# -- health ------------------------------------------------------------------------------------------------
async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_health_follows_the_upstream_and_shutdown_drains(make_settings, http_url):
    """NOT_SERVING while the upstream is unreachable, SERVING once it answers /readyz, NOT_SERVING when it goes
    away, and NOT_SERVING during graceful shutdown, which still finishes the call in flight."""
    upstream_port = int(http_url.rsplit(":", 1)[1])
    tasks: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        pair = (asyncio.create_task(_forward(reader, up_writer)), asyncio.create_task(_forward(up_reader, writer)))
        tasks.update(pair)
        await asyncio.gather(*pair)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with adapter(make_settings, f"http://127.0.0.1:{port}") as (app, channel):
        health = health_pb2_grpc.HealthStub(channel)
        stub = nlp_pb2_grpc.NlpServiceStub(channel)
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        serving = health_pb2.HealthCheckResponse.SERVING
        await wait_for_health(health, not_serving)
        await expect_error(stub.Analyze(pb.AnalyzeRequest(items=items("x")), timeout=10), grpc.StatusCode.UNAVAILABLE)

        relay_server = await asyncio.start_server(relay, "127.0.0.1", port)  # the upstream "comes up"
        await wait_for_health(health, serving)
        await wait_for_health(health, serving, "cx.nlp.v1.NlpService")
        assert (await stub.Analyze(pb.AnalyzeRequest(items=items("ok")), timeout=30)).results

        relay_server.close()  # the upstream "goes away"
        for task in tasks:
            task.cancel()
        await relay_server.wait_closed()
        await app.adapter.close()  # drop pooled connections through the relay, then watch again
        await app.adapter.start()
        await wait_for_health(health, not_serving)

        relay_server = await asyncio.start_server(relay, "127.0.0.1", port)
        await wait_for_health(health, serving)
        in_flight = asyncio.ensure_future(
            stub.Cluster(pb.ClusterRequest(items=items(*["物流太慢，客服不回复"] * 32)), timeout=60)
        )
        for _ in range(400):
            if app.adapter.capacity.requests:
                break
            await asyncio.sleep(0.005)
        await app.health.enter_graceful_shutdown()
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == not_serving
        await app.server.stop(10)  # drains: the call in flight completes
        result = await in_flight
        assert sum(c.size for c in result.clusters) + len(result.noise_ids) == 32
        relay_server.close()
        for task in tasks:
            task.cancel()


# -- batching ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coalescing", [True, False], ids=["adapter-coalescing", "one-request-per-rpc"])
async def test_concurrent_calls_reach_the_model_as_fewer_larger_batches(
    coalescing, stub, make_settings, http_url, read_metric
):
    """With the adapter sharing requests between concurrent RPCs (the default) and without (then what batches them
    is BentoML's adaptive batching alone)."""
    async with contextlib.AsyncExitStack() as stack:
        if not coalescing:
            app, channel = await stack.enter_async_context(adapter(make_settings, http_url, upstream_inflight=0))
            assert await app.adapter.wait_ready(30)
            stub = nlp_pb2_grpc.NlpServiceStub(channel)
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=http_url))

        async def snapshot() -> dict[str, float]:
            return read_metric((await client.get("/metrics")).text, "cx_nlp_batch_texts", endpoint="analyze")

        before = await snapshot()
        calls = 64
        replies = await asyncio.gather(
            *(
                stub.Analyze(
                    pb.AnalyzeRequest(items=items(f"第{i}次排队等了很久"), tasks=[pb.TASK_SENTIMENT]), timeout=60
                )
                for i in range(calls)
            )
        )
        after = await snapshot()
    assert all(len(r.results) == 1 for r in replies)
    texts = after["cx_nlp_batch_texts_sum"] - before.get("cx_nlp_batch_texts_sum", 0.0)
    batches = after["cx_nlp_batch_texts_count"] - before.get("cx_nlp_batch_texts_count", 0.0)
    singles = after["cx_nlp_batch_texts_bucket[le=1.0]"] - before.get("cx_nlp_batch_texts_bucket[le=1.0]", 0.0)
    assert texts == calls  # every text reached the model exactly once ...
    assert batches < calls  # ... in fewer model calls than RPCs
    assert singles < batches or batches == 1  # and some calls carried more than one text


async def test_metrics_are_exposed(http_url, grpc_app, stub):
    from prometheus_client import generate_latest

    await stub.Analyze(pb.AnalyzeRequest(items=items("排队太久"), tasks=[pb.TASK_SENTIMENT]), timeout=60)  # a batch
    text = httpx.get(f"{http_url}/metrics").text
    for name in (
        "cx_nlp_batch_texts_bucket",
        "cx_nlp_batch_duration_seconds",
        "cx_nlp_task_duration_seconds",
        "cx_nlp_model_load_seconds",
        "cx_nlp_model_ready",
        "cx_nlp_batch_queue_seconds_bucket",
        "cx_nlp_batch_queue_depth",
        "bentoml_service_adaptive_batch_size",
    ):
        assert name in text, name
    adapter_text = generate_latest().decode()
    for name in (
        "cx_nlp_grpc_request_duration_seconds",
        "cx_nlp_grpc_task_duration_seconds",
        "cx_nlp_grpc_queue_depth",
        "cx_nlp_grpc_rejected_total",
        "cx_nlp_grpc_upstream_request_texts_bucket",
        "cx_nlp_grpc_upstream_request_rpcs_bucket",
    ):
        assert name in adapter_text, name


# -- a misbehaving upstream --------------------------------------------------------------------------------
class BrokenUpstream:
    """An HTTP upstream that is ready but answers /analyze as `mode` says: malformed JSON, BentoML's 504 or too
    few results."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_get("/readyz", lambda _: web.Response(text="ok"))
        app.router.add_post("/info", lambda _: web.json_response({"model": "broken"}))
        app.router.add_post("/analyze", self.analyze)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def analyze(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)  # long enough for concurrent calls to share a request
        if self.mode == "malformed":
            return web.Response(text="<html>bad gateway</html>", content_type="application/json")
        if self.mode == "504":
            return web.Response(status=504, text="Not able to process the request in 90 seconds")
        return web.json_response([])  # "short": no result at all


@pytest.mark.parametrize("coalescing", [True, False], ids=["shared-requests", "one-request-per-rpc"])
@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("malformed", grpc.StatusCode.INTERNAL),
        ("short", grpc.StatusCode.INTERNAL),
        ("504", grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
async def test_a_broken_upstream_answer_fails_every_call_and_frees_its_slot(make_settings, mode, code, coalescing):
    """Every caller gets a clear status (none waits forever), and the capacity is whole again afterwards."""
    async with (
        BrokenUpstream(mode) as url,
        adapter(make_settings, url, upstream_inflight=1 if coalescing else 0) as (app, ch),
    ):
        assert await app.adapter.wait_ready(30)
        stub = nlp_pb2_grpc.NlpServiceStub(ch)
        request = pb.AnalyzeRequest(items=items("送货太慢"))
        calls = [stub.Analyze(request, timeout=30) for _ in range(4)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)] == [code] * 4
        assert (app.adapter.capacity.requests, app.adapter.capacity.texts) == (0, 0)


def test_a_call_bigger_than_the_text_bound_runs_alone() -> None:
    capacity = Capacity(max_requests=8, max_texts=100)
    assert capacity.try_acquire(250) is None  # idle: admitted, or it could never run
    assert capacity.try_acquire(1) is not None  # nothing else beside it
    capacity.release(250)
    assert capacity.try_acquire(60) is None
    assert capacity.try_acquire(250) is not None  # not beside other work: retry later
    assert capacity.try_acquire(40) is None


async def test_a_codebook_with_more_nodes_than_the_text_bound_registers(make_settings, http_url):
    async with adapter(make_settings, http_url, max_inflight_items=4) as (app, ch):
        assert await app.adapter.wait_ready(30)
        stub = nlp_pb2_grpc.NlpServiceStub(ch)
        nodes = [pb.CodebookNode(id=f"n{i}", level=1, names={"en": f"Topic {i}"}) for i in range(10)]
        request = pb.RegisterCodebookRequest(tenant_id="t", codebook_id="big", version=1, nodes=nodes)
        reply = await stub.RegisterCodebook(request, timeout=60)
        assert reply.node_count == 10
