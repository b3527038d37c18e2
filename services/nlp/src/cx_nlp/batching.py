"""How BentoML's adaptive batching releases a batch: greedy dispatch (the default) or BentoML's own cork.

BentoML's `CorkDispatcher` holds queued requests back while `n × (newest request's wait + a) ≤ 0.95 × mean wait`,
where the mean wait is that of the last 50 batches before they started. Under load that mean is the time requests
queued behind a busy model, and it includes the cork's own holding, so it feeds itself: after a burst a lone request
is held for tens of milliseconds waiting for company that does not come, while the model idles (measured with the
default model on 2 CPU cores: p50 of one short text 4 ms before a burst, 22 ms after). On a CPU, where batching saves
only the fixed cost of a forward pass (~7 ms for MiniLM in bfloat16; batches of 32 run ~1.8x the texts/s of single
texts), idling the model for company does not pay back: under load the queue fills while a batch runs anyway.

`GreedyDispatcher` keeps everything else of BentoML's batching (the queue, `max_batch_size`, splitting of
oversized requests, one batch at a time per worker, `max_latency_ms` refusals) and changes only the release rule:
whenever the model is free, everything queued (up to `max_batch_size`) goes at once. Under load requests pile up
while a batch runs, so batches still grow with the load; with no load a request runs at once. That is the dynamic
batching of inference servers such as Triton with no queue delay.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import structlog
from bentoml._internal.marshal.dispatcher import CorkDispatcher

from cx_nlp.metrics import queue_metrics

log = structlog.stdlib.get_logger("cx_nlp.batching")

Policy = Literal["greedy", "cork"]
_REQUIRED = ("_queue", "_sema", "_wake_event", "_get_inputs", "outbound_call", "max_latency")


class GreedyDispatcher(CorkDispatcher[Any, Any]):
    """Release whatever is queued as soon as the previous batch of this worker is done."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model_free = asyncio.Event()  # set while no batch of this worker runs
        self._model_free.set()

    async def inbound_call(self, data: Any) -> Any:
        queue_metrics().depth.set(len(self._queue) + 1)  # this request joins the queue
        return await super().inbound_call(data)

    async def outbound_call(self, inputs_info: tuple[Any, ...], training: bool = False) -> None:
        try:
            await super().outbound_call(inputs_info, training)
        finally:  # the base class released the semaphore
            self._model_free.set()

    def _refuse_expired(self) -> None:
        """Requests that waited the whole latency budget get BentoML's fallback (503), as with the cork."""
        now = time.time()
        while self._queue and now - self._queue[0].enqueue_time >= self.max_latency:
            self._queue.popleft().future.cancel()

    def _report(self, dispatched: tuple[Any, ...]) -> None:
        metrics = queue_metrics()
        now = time.time()
        for job in dispatched:
            metrics.wait_seconds.observe(now - job.enqueue_time)
        metrics.depth.set(len(self._queue))

    async def controller(self) -> None:
        free = self._model_free
        while True:
            try:
                async with self._wake_event:  # block until a request is queued
                    await self._wake_event.wait_for(self._queue.__len__)
                if self._sema.is_locked():  # type: ignore[no-untyped-call]  # a batch is running: wait for it, not on a timer
                    free.clear()
                    await free.wait()
                    continue
                self._refuse_expired()
                if not self._queue:
                    continue
                self._sema.acquire()  # type: ignore[no-untyped-call]
                inputs_info = tuple(self._get_inputs())
                self._report(inputs_info)
                self._loop.create_task(self.outbound_call(inputs_info))
            except asyncio.CancelledError:
                raise
            except Exception:  # like BentoML's controller: a failed dispatch must not stop the loop
                log.exception("batch_dispatch_failed")


def install(policy: Policy) -> bool:
    """Make BentoML build `policy`'s dispatcher for the batchable endpoints; call before the service app is built
    (importing `cx_nlp.service` does). Returns whether the greedy dispatcher is in use."""
    if policy != "greedy":
        return False
    from _bentoml_impl.server import app as bentoml_app

    probe: CorkDispatcher[Any, Any] = CorkDispatcher(max_latency_in_ms=1000, max_batch_size=2, fallback=lambda: None)
    known = set(dir(CorkDispatcher)) | set(vars(probe))
    missing = [name for name in _REQUIRED if name not in known]
    if missing or not hasattr(bentoml_app, "CorkDispatcher"):  # a BentoML whose batching internals moved
        log.warning("greedy_batching_unavailable", missing=missing, fallback="cork")
        return False
    bentoml_app.CorkDispatcher = GreedyDispatcher
    return True
