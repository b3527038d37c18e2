"""Durable SLA timers: rows in `sla_timers`, polled by every running instance. A due timer is claimed with
`FOR UPDATE SKIP LOCKED`, applied and marked fired in one transaction, so it fires once even with several
instances, and a timer that came due while no instance ran fires at the next start. The timer is claimed together
with its ticket (both `SKIP LOCKED`): requests lock the ticket first and then its timers, so the scheduler never waits
for a request and the two cannot deadlock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_alerts.context import Ctx
from cx_alerts.signals import service as signals
from cx_alerts.sla.models import SlaTimer
from cx_alerts.tickets import service as tickets
from cx_alerts.tickets.models import Ticket
from cx_common.logging import get_logger

log = get_logger(__name__)

FIRED = Counter("cx_alerts_sla_timers_fired_total", "SLA timers fired", ["kind"])


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ctx: Ctx,
        *,
        poll_s: float = 1.0,
        retention: dt.timedelta = dt.timedelta(days=35),
    ) -> None:
        self.sessions = sessions
        self.ctx = ctx
        self.poll_s = poll_s
        self.retention = retention
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._last_prune: dt.datetime | None = None

    async def fire_one(self) -> bool:
        """Claim and apply one due timer; False when none is due (or every due one's ticket is busy right now)."""
        now = self.ctx.now()
        async with self.sessions() as session, session.begin():
            # The timer and its ticket are locked together, skipping busy ones: a request that holds the ticket
            # (and will update its timers) is never waited for, so the two can never deadlock; the timer is
            # simply taken at the next poll if it is still due then.
            claimed = (
                await session.execute(
                    select(SlaTimer, Ticket)
                    .join(Ticket, Ticket.id == SlaTimer.ticket_id)
                    .where(SlaTimer.fired_at.is_(None), SlaTimer.cancelled_at.is_(None), SlaTimer.due_at <= now)
                    .order_by(SlaTimer.due_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if claimed is None:
                return False
            timer, ticket = claimed
            outcome = await tickets.on_timer(session, self.ctx, timer, ticket)
            timer.fired_at = now
            timer.outcome = outcome[:200]
        FIRED.labels(timer.kind).inc()
        log.info("sla_timer_fired", timer_id=str(timer.id), kind=timer.kind, outcome=outcome)
        return True

    async def run_due(self, limit: int = 1000) -> int:
        fired = 0
        while fired < limit and await self.fire_one():
            fired += 1
        return fired

    async def next_due(self) -> dt.datetime | None:
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(SlaTimer.due_at)
                    .where(SlaTimer.fired_at.is_(None), SlaTimer.cancelled_at.is_(None))
                    .order_by(SlaTimer.due_at)
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def _prune(self) -> None:
        now = self.ctx.now()
        if self._last_prune is not None and now - self._last_prune < dt.timedelta(hours=1):
            return
        self._last_prune = now
        async with self.sessions() as session, session.begin():
            await signals.prune(session, now - self.retention)

    async def run(self) -> None:
        log.info("sla_scheduler_started", poll_s=self.poll_s)
        while not self._stopping.is_set():
            delay = self.poll_s
            try:
                fired = await self.run_due()
                await self._prune()
                upcoming = await self.next_due()
                if upcoming is not None:  # wake exactly when the next deadline is due (to the second)
                    wait = (upcoming - self.ctx.now()).total_seconds()
                    # overdue but not claimable (its ticket is held by a request): retry shortly, do not spin
                    delay = min(self.poll_s, wait) if wait > 0 else (0.0 if fired else min(self.poll_s, 0.1))
            except Exception as exc:
                log.warning("sla_scheduler_error", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
