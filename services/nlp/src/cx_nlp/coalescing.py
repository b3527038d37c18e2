"""Concurrent RPCs share HTTP requests to the model service.

The adapter forwards `Analyze` and `Embed` items to BentoML's batchable endpoints. One HTTP request per RPC costs
both processes a request's worth of work each time (aiohttp here; routing, JSON and the batch queue's bookkeeping
in BentoML), and when callers send one text per RPC that overhead is most of the CPU spent per text. So per
endpoint at most `max_inflight` requests are in flight; RPCs that arrive while they are all busy wait, and the next
request carries all of them. Nothing waits for company: a request goes as soon as a slot is free, so a lone call
is sent at once, from its own task (the same greedy rule as the worker's batching, `cx_nlp.batching`), and
BentoML still batches across requests and splits what exceeds its `max_batch_size`.

One exception to "at once" (`hold_fraction`): the last free slot. A request sent there can only queue at the model
behind the ones in flight, so it is sent when the oldest of them has run `hold_fraction` of the recent request
time, and carries whatever arrived meanwhile (bigger model batches). Nothing is held while no request is in flight,
while more than one slot is free, or once a full request waits; when a request answers, what waits goes at once.

A request shared by several RPCs:
- is sent with the latest of their deadlines and the trace headers of the first;
- is cancelled only when every RPC in it is (a cancelled RPC just stops waiting for its part);
- on INVALID_ARGUMENT from the upstream (which would name an index of the merged list), is sent again RPC by RPC,
  so each caller gets the answer its own request deserves;
- fails every RPC in it alike on any other error (overload, upstream down, deadline, a malformed answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from cx_nlp.rpc_errors import RpcError

# (path, payload, timeout seconds, headers) -> the decoded JSON answer; raises RpcError.
Post = Callable[[str, dict[str, Any], float, dict[str, str]], Awaitable[Any]]
# Called with (path, items in the request, RPCs in the request) for every request sent.
Observer = Callable[[str, int, int], None]


@dataclass(eq=False)
class _Part:
    """One RPC's items waiting for their answers."""

    items: list[Any]
    timeout_s: float
    headers: dict[str, str]
    future: asyncio.Future[list[Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _Endpoint:
    waiting: list[_Part] = field(default_factory=list)
    inflight: int = 0
    started: list[float] = field(default_factory=list)  # loop times the requests in flight were sent
    latency_s: float = 0.0  # moving average of a request's time, send to answer (0: none answered yet)
    timer: asyncio.TimerHandle | None = None  # sends the held slot's request


LATENCY_WEIGHT = 0.2  # of the newest request in the moving average


class Coalescer:
    def __init__(
        self,
        post: Post,
        *,
        max_inflight: int,
        max_items: int,
        hold_fraction: float = 0.0,
        observe: Observer | None = None,
    ) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self._post = post
        self.max_inflight = max_inflight
        self.max_items = max_items
        self.hold_fraction = hold_fraction
        self._observe = observe
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(
        self, path: str, field_name: str, items: list[Any], timeout_s: float, headers: dict[str, str]
    ) -> Any:
        """POST `{field_name: items}` to `path`, possibly together with other calls; answers this call's list."""
        key = (path, field_name)
        endpoint = self._endpoints.setdefault(key, _Endpoint())
        if (
            endpoint.inflight < self.max_inflight
            and not _live_waiting(endpoint)
            and self._hold_until(endpoint, len(items)) is None
        ):
            return await self._alone(key, endpoint, items, timeout_s, headers)
        part = _Part(items, timeout_s, headers)
        endpoint.waiting.append(part)
        self._send_waiting(key, endpoint)
        return await part.future  # cancelling the caller cancels the future: its request sees that

    async def _alone(
        self, key: tuple[str, str], endpoint: _Endpoint, items: list[Any], timeout_s: float, headers: dict[str, str]
    ) -> Any:
        """A free slot and nobody waiting: the request is this call's alone, sent from the caller's own task (no
        hand-off to a sender task; cancelling the caller cancels the request)."""
        started = self._begin(endpoint)
        try:
            return await self._request(key, items, 1, timeout_s, headers)
        finally:
            self._end(endpoint, started)
            self._send_waiting(key, endpoint)

    def _begin(self, endpoint: _Endpoint) -> float:
        started = asyncio.get_running_loop().time()
        endpoint.inflight += 1
        endpoint.started.append(started)
        return started

    def _end(self, endpoint: _Endpoint, started: float) -> None:
        took = asyncio.get_running_loop().time() - started
        endpoint.inflight -= 1
        endpoint.started.remove(started)
        w = LATENCY_WEIGHT if endpoint.latency_s else 1.0
        endpoint.latency_s = (1 - w) * endpoint.latency_s + w * took

    def _hold_until(self, endpoint: _Endpoint, waiting_items: int) -> float | None:
        """When the last free slot may be used: a request sent there waits at the model behind the ones in flight
        anyway, so it goes shortly before the oldest of them is due to answer and carries what arrived meanwhile.
        None: at once (no hold configured, no request in flight, more than one slot free, nothing measured yet,
        or a full request already waiting)."""
        if (
            self.hold_fraction <= 0
            or endpoint.inflight == 0
            or endpoint.inflight < self.max_inflight - 1
            or not endpoint.latency_s
            or waiting_items >= self.max_items
        ):
            return None
        return min(endpoint.started) + self.hold_fraction * endpoint.latency_s

    async def close(self) -> None:
        """Cancel every request in flight and every call still waiting."""
        for endpoint in self._endpoints.values():
            if endpoint.timer is not None:
                endpoint.timer.cancel()
                endpoint.timer = None
            for part in endpoint.waiting:
                part.future.cancel()
            endpoint.waiting.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _send_waiting(self, key: tuple[str, str], endpoint: _Endpoint, *, held: bool = False) -> None:
        """Send what waits, as far as slots allow; `held`: the timer of a held slot fired (send now)."""
        if endpoint.timer is not None and not held:
            endpoint.timer.cancel()
        endpoint.timer = None
        while endpoint.inflight < self.max_inflight and (waiting := _live_waiting(endpoint)):
            loop = asyncio.get_running_loop()
            until = None if held else self._hold_until(endpoint, sum(len(p.items) for p in waiting))
            if until is not None and loop.time() < until:
                endpoint.timer = loop.call_at(until, lambda: self._send_waiting(key, endpoint, held=True))
                return
            held = False
            parts = [waiting.pop(0)]  # the first always goes, even when it alone exceeds max_items
            count = len(parts[0].items)
            while waiting and count + len(waiting[0].items) <= self.max_items:
                count += len(waiting[0].items)
                parts.append(waiting.pop(0))
            task = asyncio.create_task(
                self._send(key, endpoint, parts, self._begin(endpoint)), name=f"cx-nlp-upstream{key[0]}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            for part in parts:
                part.future.add_done_callback(_cancel_when_all_cancelled(task, parts))

    async def _request(
        self, key: tuple[str, str], items: list[Any], calls: int, timeout_s: float, headers: dict[str, str]
    ) -> list[Any]:
        path, field_name = key
        if self._observe is not None:
            self._observe(path, len(items), calls)
        answer = await self._post(path, {field_name: items}, timeout_s, headers)
        if not isinstance(answer, list) or len(answer) != len(items):
            raise RpcError(grpc.StatusCode.INTERNAL, f"{path}: the model answered {len(items)} items wrongly")
        return answer

    async def _send(self, key: tuple[str, str], endpoint: _Endpoint, parts: list[_Part], started: float) -> None:
        try:
            await self._deliver(key, parts)
        except asyncio.CancelledError:
            for part in parts:  # every caller had gone, or the adapter is closing
                part.future.cancel()
            raise
        finally:
            self._end(endpoint, started)
            self._send_waiting(key, endpoint)

    async def _deliver(self, key: tuple[str, str], parts: list[_Part]) -> None:
        items = [item for part in parts for item in part.items]
        timeout_s = max(part.timeout_s for part in parts)
        try:
            answer = await self._request(key, items, len(parts), timeout_s, parts[0].headers)
        except RpcError as exc:
            if exc.code == grpc.StatusCode.INVALID_ARGUMENT and len(parts) > 1:
                alone = [self._deliver(key, [part]) for part in parts if not part.future.done()]
                await asyncio.gather(*alone)
                return
            _fail(parts, exc)
            return
        except Exception as exc:  # a bug: every caller of the request gets it (the adapter answers INTERNAL)
            _fail(parts, exc)
            return
        start = 0
        for part in parts:
            end = start + len(part.items)
            if not part.future.done():
                part.future.set_result(answer[start:end])
            start = end


def _fail(parts: list[_Part], exc: BaseException) -> None:
    for part in parts:
        if not part.future.done():
            part.future.set_exception(exc)


def _live_waiting(endpoint: _Endpoint) -> list[_Part]:
    """The endpoint's waiting calls without those cancelled before they were sent (deadline, caller gone)."""
    endpoint.waiting = [part for part in endpoint.waiting if not part.future.done()]
    return endpoint.waiting


def _cancel_when_all_cancelled(
    task: asyncio.Task[None], parts: list[_Part]
) -> Callable[[asyncio.Future[list[Any]]], None]:
    """A done callback: once every RPC of a request is cancelled, the request is cancelled too (frees the work)."""

    def check(_: asyncio.Future[list[Any]]) -> None:
        if all(part.future.cancelled() for part in parts) and not task.done():
            task.cancel()

    return check
