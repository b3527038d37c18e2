"""Concurrent RPCs share HTTP requests to the model service.

The adapter forwards `Analyze` and `Embed` items to BentoML's batchable endpoints. One HTTP request per RPC costs
both processes a request's worth of work each time (aiohttp here; routing, JSON and the batch queue's bookkeeping
in BentoML), and when callers send one text per RPC that overhead is most of the CPU spent per text. So per
endpoint at most `max_inflight` requests are in flight; RPCs that arrive while they are all busy wait, and the next
request carries all of them. Nothing waits for company: a request goes as soon as a slot is free, so a lone call
is sent at once, from its own task (the same greedy rule as the worker's batching, `cx_nlp.batching`), and
BentoML still batches across requests and splits what exceeds its `max_batch_size`.

A request shared by several RPCs:
- is sent with the latest of their deadlines and the trace headers of the first;
- is cancelled only when every RPC in it is (a cancelled RPC just stops waiting for its part);
- on INVALID_ARGUMENT from the upstream (which would name an index of the merged list), is sent again RPC by RPC,
  so each caller gets the answer its own request deserves;
- fails every RPC in it alike on any other error (overload, upstream down, deadline).
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


class Coalescer:
    def __init__(self, post: Post, *, max_inflight: int, max_items: int, observe: Observer | None = None) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self._post = post
        self.max_inflight = max_inflight
        self.max_items = max_items
        self._observe = observe
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(
        self, path: str, field_name: str, items: list[Any], timeout_s: float, headers: dict[str, str]
    ) -> Any:
        """POST `{field_name: items}` to `path`, possibly together with other calls; answers this call's list."""
        key = (path, field_name)
        endpoint = self._endpoints.setdefault(key, _Endpoint())
        if endpoint.inflight < self.max_inflight and not any(not p.future.done() for p in endpoint.waiting):
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
        endpoint.inflight += 1
        try:
            return await self._request(key, items, 1, timeout_s, headers)
        finally:
            endpoint.inflight -= 1
            self._send_waiting(key, endpoint)

    async def close(self) -> None:
        """Cancel every request in flight and every call still waiting."""
        for endpoint in self._endpoints.values():
            for part in endpoint.waiting:
                part.future.cancel()
            endpoint.waiting.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _send_waiting(self, key: tuple[str, str], endpoint: _Endpoint) -> None:
        while endpoint.inflight < self.max_inflight:
            parts: list[_Part] = []
            count = 0
            while endpoint.waiting:
                part = endpoint.waiting[0]
                if part.future.done():  # cancelled (deadline, caller gone) before it was sent
                    endpoint.waiting.pop(0)
                    continue
                if parts and count + len(part.items) > self.max_items:
                    break
                parts.append(endpoint.waiting.pop(0))
                count += len(part.items)
            if not parts:
                return
            endpoint.inflight += 1
            task = asyncio.create_task(self._send(key, endpoint, parts), name=f"cx-nlp-upstream{key[0]}")
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

    async def _send(self, key: tuple[str, str], endpoint: _Endpoint, parts: list[_Part]) -> None:
        path, field_name = key
        try:
            await self._deliver(path, field_name, parts)
        except asyncio.CancelledError:
            for part in parts:  # every caller had gone, or the adapter is closing
                part.future.cancel()
            raise
        finally:
            endpoint.inflight -= 1
            self._send_waiting(key, endpoint)

    async def _deliver(self, path: str, field_name: str, parts: list[_Part]) -> None:
        items = [item for part in parts for item in part.items]
        timeout_s = max(part.timeout_s for part in parts)
        try:
            answer = await self._request((path, field_name), items, len(parts), timeout_s, parts[0].headers)
        except RpcError as exc:
            if exc.code == grpc.StatusCode.INVALID_ARGUMENT and len(parts) > 1:
                alone = [self._deliver(path, field_name, [part]) for part in parts if not part.future.done()]
                await asyncio.gather(*alone)
                return
            for part in parts:
                if not part.future.done():
                    part.future.set_exception(exc)
            return
        start = 0
        for part in parts:
            end = start + len(part.items)
            if not part.future.done():
                part.future.set_result(answer[start:end])
            start = end


def _cancel_when_all_cancelled(
    task: asyncio.Task[None], parts: list[_Part]
) -> Callable[[asyncio.Future[list[Any]]], None]:
    """A done callback: once every RPC of a request is cancelled, the request is cancelled too (frees the work)."""

    def check(_: asyncio.Future[list[Any]]) -> None:
        if all(part.future.cancelled() for part in parts) and not task.done():
            task.cancel()

    return check
