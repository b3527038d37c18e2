"""Helpers of the alerts tests (a unique module name: test suites of several services share one run)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from fastapi import FastAPI
from google.protobuf.message import Message

from cx.events.v1 import events_pb2
from cx_alerts.clock import ManualClock
from cx_alerts.main import create_app
from cx_alerts.settings import Settings
from cx_common.events import build_envelope
from cx_local.pytest_plugin import TokenMinter
from cx_local.pytest_plugin import eventually as poll

SERVICE_DIR = Path(__file__).resolve().parents[1]
# a Monday, 09:00 in Shanghai
START = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)


@dataclass
class Env:
    settings: Settings
    db: Any
    tokens: TokenMinter
    nats_url: str
    clock: ManualClock = field(default_factory=lambda: ManualClock(START))

    def app(self) -> FastAPI:
        return create_app(self.settings, clock=self.clock)

    def headers(
        self,
        tenant: uuid.UUID,
        *,
        user: str = "admin-1",
        role: str = "admin",
        scopes: tuple[str, ...] = ("*",),
        org: str | None = None,
    ) -> dict[str, str]:
        token = self.tokens.mint(tenant, user_id=user, role=role, scopes=scopes, org_unit_id=org)
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, tenant: uuid.UUID, event_type: str, payload: Message) -> events_pb2.Envelope:
        envelope = build_envelope(
            tenant_id=tenant, event_type=event_type, payload=payload, source="test", occurred_at=self.clock.now()
        )
        nc = await nats.connect(self.nats_url)
        try:
            await nc.jetstream().publish(
                f"{self.settings.events_subject_prefix}.{event_type}",
                envelope.SerializeToString(),
                headers={"Nats-Msg-Id": envelope.event_id},
            )
        finally:
            await nc.close()
        return envelope


async def eventually(check: Callable[[], Awaitable[Any]], *, limit: float = 15.0) -> Any:
    """Poll until `check()` returns something truthy (no timing assertion: only a generous upper bound)."""
    return await poll(check, limit)


# -- an org tree: HQ → East region → Store 1 / Store 2 -------------------------------------------

TREE = [
    ("hq", "", [], "hq", "Asia/Shanghai", "u-ceo"),
    ("east", "hq", ["hq"], "region", "Asia/Shanghai", "u-east"),
    ("s1", "east", ["hq", "east"], "store", "Asia/Shanghai", "u-s1"),
    ("s2", "east", ["hq", "east"], "store", "Asia/Shanghai", ""),
]
USERS = [("u-ceo", "hq", "zh-Hant"), ("u-east", "east", "en"), ("u-s1", "s1", ""), ("u-agent", "s1", "")]


async def seed_org(env: Env, client: httpx.AsyncClient, tenant: uuid.UUID) -> None:
    """Users first, units last: one consumer applies them in stream order, so all units present ⇒ all users too."""
    for user_id, unit, locale in USERS:
        await env.publish(
            tenant,
            "org.user.upserted",
            events_pb2.UserChanged(
                user_id=user_id, org_unit_id=unit, role="manager", display_name=user_id, active=True, locale=locale
            ),
        )
    for unit_id, parent, ancestors, kind, tz, manager in TREE:
        await env.publish(
            tenant,
            "org.unit.upserted",
            events_pb2.OrgUnitChanged(
                org_unit_id=unit_id,
                parent_id=parent,
                name=unit_id.upper(),
                kind=kind,
                ancestor_ids=ancestors,
                timezone=tz,
                manager_user_id=manager,
            ),
        )
    headers = env.headers(tenant)

    async def projected() -> bool:
        units = (await client.get("/v1/org-units", headers=headers)).json()
        return len(units) == len(TREE)

    await eventually(projected)


def response_event(
    *, nps: int | None = None, csat: float | None = None, store: str = "s1", customer: str = "c-1", text: str = ""
) -> events_pb2.SurveyResponseSubmitted:
    msg = events_pb2.SurveyResponseSubmitted(
        response_id=f"r-{uuid.uuid4().hex[:8]}",
        survey_id="sv-1",
        survey_version=1,
        touchpoint_id="tp-checkout",
        channel="web",
        org_unit_id=store,
        customer_key=customer,
        language="zh-Hans",
    )
    if nps is not None:
        msg.nps = nps
        msg.answers.append(events_pb2.Answer(question_id="q1", question_type="nps", number_value=nps))
    if csat is not None:
        msg.csat = csat
    if text:
        msg.answers.append(events_pb2.Answer(question_id="q2", question_type="text", text_value=text))
    return msg


def feedback_event(
    *,
    text: str = "",
    sentiment: str = "negative",
    score: float = 0.9,
    aspects: list[tuple[list[str], str, float]] = (),  # type: ignore[assignment]
    intents: dict[str, float] | None = None,
    store: str = "s1",
    customer: str = "c-9",
    channel: str = "hotline",
    turns: list[tuple[str, str]] = (),  # type: ignore[assignment]
    agent: str = "",
) -> events_pb2.FeedbackAnalyzed:
    msg = events_pb2.FeedbackAnalyzed(
        context=events_pb2.FeedbackContext(
            feedback_id=f"f-{uuid.uuid4().hex[:8]}",
            channel=channel,
            org_unit_id=store,
            customer_key=customer,
            language="zh-Hans",
            agent_id=agent,
            touchpoint_id="tp-hotline",
        ),
        text=text,
        sentiment=sentiment,
        sentiment_score=score,
    )
    for path, polarity, conf in aspects:
        msg.aspects.append(events_pb2.AspectSignal(path=path, polarity=polarity, confidence=conf))
    for name, value in (intents or {}).items():
        msg.intents.append(events_pb2.IntentSignal(intent=name, score=value))
    for seq, (speaker, said) in enumerate(turns):
        msg.turns.append(events_pb2.Turn(seq=seq, speaker=speaker, text=said))
    return msg


NPS_RULE = {
    "name": "Detractor",
    "enabled": True,
    "definition": {
        "trigger": "survey.response.submitted",
        "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 6},
        "actions": {"severity": "critical", "open_ticket": {"priority": "P2"}, "notify": {"user_ids": ["u-east"]}},
        "grouping_window_minutes": 60,
    },
}


# -- real network peers for outbound notifications: a tiny HTTP receiver and a tiny SMTP server -------------


@dataclass
class HttpReceiver:
    """Answers each request with the next status of `statuses` (the last one repeats) and records it."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    server: Any = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.statuses[min(len(self.requests), len(self.statuses) - 1)]
        self.requests.append((headers, body))
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> HttpReceiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


@dataclass
class SmtpSink:
    messages: list[tuple[str, list[str], str]] = field(default_factory=list)
    port: int = 0
    server: Any = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def send(line: str) -> None:
            writer.write(f"{line}\r\n".encode())

        send("220 sink ready")
        sender, rcpts = "", []
        while line := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                send("250 sink")
            elif verb == "MAIL":
                sender = line.split(":", 1)[1].strip(" <>")
                send("250 ok")
            elif verb == "RCPT":
                rcpts.append(line.split(":", 1)[1].strip(" <>"))
                send("250 ok")
            elif verb == "DATA":
                send("354 go on")
                data = (await reader.readuntil(b"\r\n.\r\n")).decode("utf-8", "replace")
                self.messages.append((sender, rcpts, data))
                sender, rcpts = "", []
                send("250 queued")
            elif verb == "QUIT":
                send("221 bye")
                await writer.drain()
                break
            else:
                send("250 ok")
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> SmtpSink:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
