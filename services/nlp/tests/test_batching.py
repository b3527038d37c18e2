"""The greedy release rule of `cx_nlp.batching` on BentoML's dispatcher: batches form while the model is busy, a lone
request is not held back, `max_batch_size` and the latency budget still hold."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from _bentoml_impl.server import app as bentoml_app
from bentoml._internal.marshal.dispatcher import CorkDispatcher

from cx_nlp import batching
from cx_nlp.batching import GreedyDispatcher


class GatedModel:
    """A batch callback that records each batch and, while `gate` is clear, blocks in it (a busy model)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.entered.set()
        await self.gate.wait()
        return [i * 10 for i in items]


def dispatcher(model: GatedModel, *, max_batch_size: int = 64, max_latency_ms: int = 10_000) -> Any:
    d = GreedyDispatcher(
        max_latency_in_ms=max_latency_ms,
        max_batch_size=max_batch_size,
        fallback=lambda: "refused",
        get_batch_size=lambda _: 1,
    )
    return d(model)


async def queue_behind_busy_model(
    model: GatedModel, call: Any, n: int
) -> tuple[asyncio.Future[Any], list[asyncio.Future[Any]]]:
    """One call that occupies the model, then `n` more that queue behind it."""
    model.gate.clear()
    first = asyncio.ensure_future(call(0))
    await model.entered.wait()
    queued = [asyncio.ensure_future(call(i)) for i in range(1, n + 1)]
    await asyncio.sleep(0.05)  # all of them reach the queue
    return first, queued


async def test_requests_queued_while_the_model_is_busy_go_as_one_batch() -> None:
    model = GatedModel()
    call = dispatcher(model)
    first, queued = await queue_behind_busy_model(model, call, 5)
    model.gate.set()
    assert await first == 0
    assert await asyncio.gather(*queued) == [10, 20, 30, 40, 50]
    assert model.batches == [[0], [1, 2, 3, 4, 5]]


async def test_queue_waits_and_depth_are_reported() -> None:
    from prometheus_client import REGISTRY

    def waits() -> float:
        return REGISTRY.get_sample_value("cx_nlp_batch_queue_seconds_count") or 0.0

    before = waits()
    model = GatedModel()
    call = dispatcher(model)
    first, queued = await queue_behind_busy_model(model, call, 2)
    late = asyncio.ensure_future(call(9))  # arrives while the dispatcher waits for the running batch
    await asyncio.sleep(0.05)
    assert REGISTRY.get_sample_value("cx_nlp_batch_queue_depth") == 3  # waiting behind the running batch
    model.gate.set()
    await asyncio.gather(first, *queued, late)
    assert waits() - before == 4  # one observation per dispatched request
    assert REGISTRY.get_sample_value("cx_nlp_batch_queue_depth") == 0


async def test_batches_respect_max_batch_size() -> None:
    model = GatedModel()
    call = dispatcher(model, max_batch_size=4)
    first, queued = await queue_behind_busy_model(model, call, 10)
    model.gate.set()
    await asyncio.gather(first, *queued)
    assert [len(b) for b in model.batches] == [1, 4, 4, 2]
    assert sorted(i for b in model.batches for i in b) == list(range(11))


async def test_a_lone_request_is_not_held_back_for_company() -> None:
    """BentoML's cork holds a request while n × (its wait + a) ≤ 0.95 × the mean wait of recent batches; with that
    mean at 30 s it would hold this request ~28 s. The greedy rule sends it at once."""
    model = GatedModel()
    d = GreedyDispatcher(max_latency_in_ms=60_000, max_batch_size=64, fallback=lambda: None, get_batch_size=lambda _: 1)
    d.optimizer.wait = 30
    call = d(model)
    assert await asyncio.wait_for(call(7), timeout=10) == 70
    assert model.batches == [[7]]


async def test_requests_that_waited_the_whole_latency_budget_are_refused() -> None:
    model = GatedModel()
    call = dispatcher(model, max_latency_ms=50)
    first, queued = await queue_behind_busy_model(model, call, 2)
    await asyncio.sleep(0.1)  # the queued ones are past the 50 ms budget before the model frees
    model.gate.set()
    assert await first == 0
    assert await asyncio.gather(*queued) == ["refused", "refused"]  # BentoML's fallback (a 503 in the service)
    assert model.batches == [[0]]


async def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs() -> None:
    calls = 0

    async def flaky(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model error")
        return list(items)

    d = GreedyDispatcher(max_latency_in_ms=10_000, max_batch_size=8, fallback=lambda: None, get_batch_size=lambda _: 1)
    call = d(flaky)
    with pytest.raises(RuntimeError, match="model error"):
        await call(1)
    assert await call(2) == 2


def test_install_replaces_the_dispatcher_bentoml_builds_only_for_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bentoml_app, "CorkDispatcher", CorkDispatcher)
    assert batching.install("cork") is False
    assert bentoml_app.CorkDispatcher is CorkDispatcher
    assert batching.install("greedy") is True
    assert bentoml_app.CorkDispatcher is GreedyDispatcher
