"""Concurrent RPCs sharing upstream requests (cx_nlp.coalescing).

The scheduling rules are tested against an upstream whose answers the test releases one by one (an asyncio
function standing in for the HTTP call, so each rule can be observed at the moment it applies); then end to end,
through the real adapter and the real BentoML service, that every caller gets exactly its own answers."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from cx.nlp.v1 import nlp_pb2 as pb
from cx.nlp.v1 import nlp_pb2_grpc
from cx_nlp.coalescing import Coalescer
from cx_nlp.grpc_server import GrpcApp
from cx_nlp.rpc_errors import RpcError


class Upstream:
    """Records every request; each answers (its items, upper-cased) when the test releases it."""

    def __init__(self) -> None:
        self.requests: list[tuple[list[str], float, dict[str, str]]] = []
        self.gates: list[asyncio.Event] = []
        self.failures: dict[int, Exception] = {}  # request number -> error to raise
        self.reject_items: set[str] = set()  # an item that makes any request holding it INVALID_ARGUMENT
        self.cancelled = 0

    async def post(self, path: str, payload: dict[str, Any], timeout_s: float, headers: dict[str, str]) -> Any:
        items: list[str] = payload["texts"]
        number = len(self.requests)
        self.requests.append((items, timeout_s, headers))
        gate = asyncio.Event()
        self.gates.append(gate)
        try:
            await gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if number in self.failures:
            raise self.failures[number]
        if bad := [i for i, item in enumerate(items) if item in self.reject_items]:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"texts[{bad[0]}] is not acceptable")
        return [item.upper() for item in items]

    def release(self, number: int) -> None:
        self.gates[number].set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def occupied(max_items: int = 100) -> tuple[Upstream, Coalescer, asyncio.Task[Any]]:
    """A coalescer with one slot, held by a call of item "x" until the test releases request 0."""
    up = Upstream()
    co = Coalescer(up.post, max_inflight=1, max_items=max_items)
    busy = start(co, "x")
    await settle()
    return up, co, busy


def start(coalescer: Coalescer, *items: str, timeout_s: float = 10.0, trace: str = "") -> asyncio.Task[Any]:
    return asyncio.ensure_future(coalescer.call("/embed", "texts", list(items), timeout_s, {"traceparent": trace}))


async def test_a_lone_call_goes_at_once_and_alone() -> None:
    up = Upstream()
    co = Coalescer(up.post, max_inflight=2, max_items=100)
    call = start(co, "a", "b")
    await settle()
    assert [r[0] for r in up.requests] == [["a", "b"]]
    up.release(0)
    assert await call == ["A", "B"]


async def test_calls_arriving_while_every_slot_is_busy_share_the_next_request() -> None:
    seen: list[tuple[str, int, int]] = []
    up = Upstream()
    co = Coalescer(up.post, max_inflight=2, max_items=100, observe=lambda *a: seen.append(a))
    first, second = start(co, "a"), start(co, "b")
    await settle()
    assert [r[0] for r in up.requests] == [["a"], ["b"]]  # two slots: both go at once
    waiting = [start(co, "c", timeout_s=1.0, trace="t-c"), start(co, "d", "e", timeout_s=5.0), start(co, "f")]
    await settle()
    assert len(up.requests) == 2  # nothing more is sent while both slots are busy
    up.release(1)
    assert await second == ["B"]
    await settle()
    items, timeout_s, headers = up.requests[2]
    assert items == ["c", "d", "e", "f"]  # the three waiting calls, in arrival order, in one request
    assert timeout_s == 10.0  # the latest deadline of the calls in it
    assert headers == {"traceparent": "t-c"}  # the first call's trace
    up.release(2)
    assert [await w for w in waiting] == [["C"], ["D", "E"], ["F"]]  # each gets exactly its own answers
    up.release(0)
    assert await first == ["A"]
    assert seen == [("/embed", 1, 1), ("/embed", 1, 1), ("/embed", 4, 3)]


async def test_a_shared_request_holds_at_most_max_items() -> None:
    up, co, busy = await occupied(max_items=3)
    waiting = [start(co, "a", "b"), start(co, "c"), start(co, "d", "e", "f", "g")]
    await settle()
    up.release(0)
    await settle()
    assert up.requests[1][0] == ["a", "b", "c"]
    up.release(1)
    await settle()
    assert up.requests[2][0] == ["d", "e", "f", "g"]  # a call bigger than the cap still goes, alone
    up.release(2)
    assert [await w for w in waiting] == [["A", "B"], ["C"], ["D", "E", "F", "G"]]
    assert await busy == ["X"]


async def test_an_invalid_shared_request_is_resent_call_by_call() -> None:
    up, co, busy = await occupied()
    up.reject_items = {"bad"}
    good, bad, other = start(co, "g"), start(co, "ok", "bad"), start(co, "o")
    await settle()
    up.release(0)
    await settle()
    assert up.requests[1][0] == ["g", "ok", "bad", "o"]
    up.release(1)  # INVALID_ARGUMENT naming index 2 of the shared list: meaningless to each caller
    await settle()
    assert sorted(tuple(r[0]) for r in up.requests[2:]) == [("g",), ("o",), ("ok", "bad")]
    for number in range(2, 5):
        up.release(number)
    assert await good == ["G"] and await other == ["O"]
    with pytest.raises(RpcError) as err:
        await bad
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "texts[1]" in err.value.message
    assert await busy == ["X"]


@pytest.mark.parametrize(
    "failure",
    [
        RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
        ValueError("Expecting value: line 1 column 1"),  # not only RpcError: a bug, a malformed answer
    ],
    ids=["rpc-error", "unexpected"],
)
async def test_any_other_failure_fails_every_call_of_the_request(failure: Exception) -> None:
    """Every call waiting on the request gets its failure (none is left hanging), and the slot is free again."""
    up, co, busy = await occupied()
    up.failures[1] = failure
    a, b = start(co, "a"), start(co, "b")
    await settle()
    up.release(0)
    await settle()
    up.release(1)
    for call in (a, b):
        with pytest.raises(type(failure)) as err:
            await asyncio.wait_for(call, 5)
        assert err.value is failure
    assert len(up.requests) == 2  # not retried: the caller decides
    assert await busy == ["X"]
    later = start(co, "c")
    await settle()
    up.release(2)
    assert await later == ["C"]


async def test_cancelled_calls_free_their_work() -> None:
    up, co, busy = await occupied()
    gone, stays, shared_gone = start(co, "gone"), start(co, "s"), start(co, "t")
    await settle()
    gone.cancel()  # cancelled while waiting: never sent
    await settle()
    up.release(0)
    await settle()
    assert up.requests[1][0] == ["s", "t"]
    shared_gone.cancel()  # one caller of a shared request leaves: the request goes on for the other
    await settle()
    assert up.cancelled == 0
    up.release(1)
    assert await stays == ["S"]
    assert await busy == ["X"]
    alone = start(co, "alone")
    await settle()
    alone.cancel()  # every caller of a request left: the request itself is cancelled
    await settle()
    assert up.cancelled == 1
    after = start(co, "after")  # and its slot is free again
    await settle()
    up.release(3)
    assert await after == ["AFTER"]


async def test_close_cancels_waiting_and_shared_calls() -> None:
    up = Upstream()
    co = Coalescer(up.post, max_inflight=1, max_items=100)
    lone = start(co, "a")  # a lone call's request runs in the caller's own task: it ends with the caller
    await settle()
    shared, waiting = [start(co, "b"), start(co, "c")], start(co, "d")
    await settle()
    up.release(0)
    assert await lone == ["A"]
    await settle()
    assert up.requests[1][0] == ["b", "c", "d"]
    late = start(co, "e")
    await settle()
    await co.close()
    for call in (*shared, waiting, late):
        with pytest.raises(asyncio.CancelledError):
            await call
    assert up.cancelled == 1


async def seeded(max_inflight: int, max_items: int = 100) -> tuple[Upstream, Coalescer]:
    """A coalescer that holds its last free slot (hold_fraction 0.8) and has seen one request of ~50 ms."""
    up = Upstream()
    co = Coalescer(up.post, max_inflight=max_inflight, max_items=max_items, hold_fraction=0.8)
    first = start(co, "seed")
    await settle()
    await asyncio.sleep(0.05)
    up.release(0)
    assert await first == ["SEED"]
    return up, co


async def test_the_last_free_slot_waits_for_the_request_in_flight() -> None:
    up, co = await seeded(max_inflight=2)
    running = start(co, "x")  # nothing in flight: at once
    await settle()
    assert up.requests[1][0] == ["x"]
    held = [start(co, "a"), start(co, "b")]  # the last slot: its texts would wait behind "x" at the model anyway
    await settle()
    assert len(up.requests) == 2
    up.release(1)  # the request in flight answers: what waits goes at once, together
    assert await running == ["X"]
    await settle()
    assert up.requests[2][0] == ["a", "b"]
    up.release(2)
    assert [await h for h in held] == [["A"], ["B"]]


async def test_a_held_slot_is_used_shortly_before_the_request_in_flight_is_due() -> None:
    up, co = await seeded(max_inflight=2)
    running = start(co, "x")
    await settle()
    held = start(co, "a")
    await settle()
    assert len(up.requests) == 2
    for _ in range(400):  # sent by its timer (0.8 x ~50 ms after "x"), while "x" is still running
        if len(up.requests) == 3:
            break
        await asyncio.sleep(0.005)
    assert up.requests[2][0] == ["a"]
    assert not running.done()
    up.release(1)
    up.release(2)
    assert await running == ["X"] and await held == ["A"]


async def test_no_hold_with_more_than_one_slot_free_or_a_full_request_waiting() -> None:
    up, co = await seeded(max_inflight=3, max_items=2)
    running = start(co, "x")
    await settle()
    second = start(co, "y")  # two slots free: at once
    await settle()
    assert up.requests[2][0] == ["y"]
    full = start(co, "a", "b")  # the last slot, but a full request is waiting: at once
    await settle()
    assert up.requests[3][0] == ["a", "b"]
    for number in (1, 2, 3):
        up.release(number)
    assert [await c for c in (running, second, full)] == [["X"], ["Y"], ["A", "B"]]


# -- end to end: the real adapter and the real BentoML service ------------------------------------------------
def upstream_rpcs_sum(path: str) -> float:
    value = REGISTRY.get_sample_value("cx_nlp_grpc_upstream_request_rpcs_sum", {"path": path})
    return value or 0.0


def upstream_requests(path: str) -> float:
    value = REGISTRY.get_sample_value("cx_nlp_grpc_upstream_request_rpcs_count", {"path": path})
    return value or 0.0


async def test_concurrent_rpcs_share_requests_and_each_gets_its_own_answer(stub, grpc_app: GrpcApp) -> None:
    texts = [f"第{i}单：物流太慢了，客服也不回复 order {i} arrived late" for i in range(30)]
    alone = await stub.Embed(pb.EmbedRequest(items=[pb.TextInput(id=str(i), text=t) for i, t in enumerate(texts)]))
    expected = {e.id: np.asarray(e.values) for e in alone.embeddings}
    rpcs0, requests0 = upstream_rpcs_sum("/embed"), upstream_requests("/embed")
    replies = await asyncio.gather(
        *(stub.Embed(pb.EmbedRequest(items=[pb.TextInput(id=str(i), text=t)]), timeout=60) for i, t in enumerate(texts))
    )
    for i, reply in enumerate(replies):
        assert [e.id for e in reply.embeddings] == [str(i)]
        np.testing.assert_allclose(np.asarray(reply.embeddings[0].values), expected[str(i)], atol=1e-5)
    rpcs, requests = upstream_rpcs_sum("/embed") - rpcs0, upstream_requests("/embed") - requests0
    assert rpcs == len(texts)  # every RPC went upstream exactly once ...
    assert requests < len(texts)  # ... in fewer HTTP requests than RPCs


async def test_coalescing_can_be_switched_off(make_settings, http_url: str) -> None:
    app = GrpcApp(make_settings(upstream_inflight=0), upstream_url=http_url, host="127.0.0.1", port=0)
    await app.start()
    try:
        assert await app.adapter.wait_ready(30)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = nlp_pb2_grpc.NlpServiceStub(channel)
            before = upstream_requests("/embed")
            replies = await asyncio.gather(
                *(stub.Embed(pb.EmbedRequest(items=[pb.TextInput(id="x", text=f"text {i}")])) for i in range(8))
            )
        assert all(len(r.embeddings) == 1 for r in replies)
        assert upstream_requests("/embed") == before  # one plain request per RPC, none through the coalescer
    finally:
        await app.stop(grace=1)
