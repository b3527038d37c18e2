"""The gRPC client helper against a real grpc.aio server on an ephemeral port."""

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cx_common.context import bind_request_context
from cx_common.grpc import ServerContextInterceptor, insecure_channel


class RecordingHealth(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.calls = 0
        self.fail_first = 0

    async def Check(self, request, context):
        self.calls += 1
        self.metadata.append(dict(context.invocation_metadata()))
        if self.calls <= self.fail_first:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


@pytest.fixture
async def server():
    servicer = RecordingHealth()
    srv = aio.server(interceptors=[ServerContextInterceptor()])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield servicer, f"127.0.0.1:{port}"
    await srv.stop(grace=None)


async def test_trace_metadata_and_default_deadline(server):
    servicer, target = server
    bind_request_context(request_id="rid-9", trace_id="a" * 32)
    async with insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    seen = servicer.metadata[0]
    assert seen["x-request-id"] == "rid-9"
    assert seen["traceparent"].split("-")[1] == "a" * 32
    assert "grpc-timeout" not in seen or seen["grpc-timeout"]


async def test_bounded_retries_on_unavailable(server):
    servicer, target = server
    servicer.fail_first = 1
    async with insecure_channel(target, max_attempts=3) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert servicer.calls == 2  # one failure, retried once

    servicer.calls, servicer.fail_first = 0, 10
    async with insecure_channel(target, max_attempts=3) as channel:
        with pytest.raises(aio.AioRpcError) as info:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert 2 <= servicer.calls <= 3  # never more than max_attempts (the retry budget may stop it earlier)
        # the budget is spent: while calls keep failing, each call is tried once (no retry storm)
        servicer.calls = 0
        for _ in range(5):
            with pytest.raises(aio.AioRpcError):
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert servicer.calls == 5


async def test_standard_health_servicer_available():
    srv = aio.server()
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    async with insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await srv.stop(grace=None)
