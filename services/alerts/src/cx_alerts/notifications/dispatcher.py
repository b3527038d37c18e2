"""Delivers queued e-mails (SMTP) and chat webhooks (HMAC-signed) with retries and exponential backoff.

Webhook requests carry `X-CX-Timestamp`, `X-CX-Delivery` and `X-CX-Signature: sha256=<hex>` where the hex digest is
HMAC-SHA256(secret, "<timestamp>." + body). Receivers recompute it and reject stale timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_alerts.context import Ctx
from cx_alerts.notifications.models import Delivery, NotificationChannel
from cx_common.logging import get_logger

log = get_logger(__name__)

BACKOFF_S = (10, 30, 120, 600, 1800)
MAX_ATTEMPTS = len(BACKOFF_S) + 1


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "cx-alerts@localhost"
    username: str | None = None
    password: str | None = None
    starttls: bool = False


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def render(fmt: str, message: dict[str, Any]) -> dict[str, Any]:
    """The chat tool's own message shape."""
    text = f"**{message['title']}**\n{message.get('body') or ''}".strip()
    if fmt == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if fmt == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": message["title"], "text": text}}
    if fmt == "slack":
        return {"text": text.replace("**", "*")}
    return message


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ctx: Ctx,
        *,
        smtp: SmtpConfig | None,
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.ctx = ctx
        self.smtp = smtp
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self._stopping = asyncio.Event()

    async def deliver_due(self, limit: int = 20) -> int:
        now = self.ctx.now()
        async with self.sessions() as session, session.begin():
            due = list(
                (
                    await session.execute(
                        select(Delivery)
                        .where(
                            Delivery.status == "pending",
                            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
                        )
                        .order_by(Delivery.created_at)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                for delivery in due:
                    if delivery.channel == "email" and self.smtp is None:
                        delivery.status = "failed"
                        delivery.last_error = "SMTP is not configured (CX_ALERTS_SMTP_HOST)"
                        continue
                    try:
                        if delivery.channel == "webhook":
                            await self._webhook(session, client, delivery, now)
                        else:
                            await self._email(delivery)
                    except Exception as exc:
                        self._failed(delivery, now, str(exc))
                    else:
                        delivery.status = "delivered"
                        delivery.delivered_at = now
                    delivery.attempts += 1
        return len(due)

    def _failed(self, delivery: Delivery, now: dt.datetime, error: str) -> None:
        delivery.last_error = error[:1000]
        if delivery.attempts + 1 >= MAX_ATTEMPTS:
            delivery.status = "failed"
            log.warning("notification_delivery_failed", delivery_id=str(delivery.id), error=error)
        else:
            delivery.next_attempt_at = now + dt.timedelta(seconds=BACKOFF_S[delivery.attempts])

    async def _webhook(
        self, session: AsyncSession, client: httpx.AsyncClient, delivery: Delivery, now: dt.datetime
    ) -> None:
        channel = await session.get(NotificationChannel, delivery.channel_id) if delivery.channel_id else None
        if channel is None:
            raise RuntimeError("webhook channel was removed")
        body = json.dumps(render(channel.format, delivery.body), ensure_ascii=False).encode()
        timestamp = str(int(now.timestamp()))
        response = await client.post(
            delivery.target,
            content=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "X-CX-Timestamp": timestamp,
                "X-CX-Delivery": str(delivery.id),
                "X-CX-Signature": sign(channel.secret, timestamp, body),
            },
        )
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered {response.status_code}")

    async def _email(self, delivery: Delivery) -> None:
        if self.smtp is None:
            raise RuntimeError("SMTP is not configured (CX_ALERTS_SMTP_HOST)")
        smtp = self.smtp
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = delivery.target
        message["Subject"] = delivery.subject
        message.set_content(f"{delivery.body.get('title', '')}\n\n{delivery.body.get('body', '')}")

        def send() -> None:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=self.timeout_s) as server:
                if smtp.starttls:
                    server.starttls()
                if smtp.username:
                    server.login(smtp.username, smtp.password or "")
                server.send_message(message)

        await asyncio.to_thread(send)

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = await self.deliver_due()
            except Exception as exc:
                log.warning("notification_dispatch_error", error=str(exc))
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_s)

    def stop(self) -> None:
        self._stopping.set()
