"""What the domain services need from the running process: the clock and where events go."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from cx_alerts.clock import Clock
from cx_common.events import add_event

SOURCE = "alerts"


@dataclass(frozen=True)
class Ctx:
    clock: Clock
    subject_prefix: str = "cx"

    def now(self) -> dt.datetime:
        return self.clock.now()

    async def emit(self, session: AsyncSession, tenant_id: uuid.UUID, event_type: str, payload: Message) -> None:
        await add_event(
            session,
            tenant_id=tenant_id,
            event_type=event_type,
            payload=payload,
            source=SOURCE,
            subject_prefix=self.subject_prefix,
            occurred_at=self.now(),
        )


async def request_ctx(request: Request) -> Ctx:
    ctx: Ctx = request.app.state.runtime.extras["ctx"]
    return ctx


CtxDep = Annotated[Ctx, Depends(request_ctx)]
