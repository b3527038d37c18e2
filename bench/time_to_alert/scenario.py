"""What the run does against the live services: a tenant with an org tree (published on NATS as the gateway does),
touchpoints per store, a published survey and alert rules (all through the services' HTTP APIs); then a steady,
open-loop stream of responses submitted to the survey API, and a watcher that sees each ticket appear in the alerts
schema with its SLA deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import nats

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope

REGIONS = ("east", "south")
STORES_PER_REGION = 4


def t(text: str) -> dict[str, str]:
    return {"zh-Hans": text, "zh-Hant": text, "en": text}


DEFINITION = {
    "title": t("门店体验"),
    "hidden_fields": ["customer_id"],
    "pages": [
        {
            "id": "p1",
            "questions": [
                {"id": "nps", "type": "nps", "title": t("推荐意愿"), "required": True},
                {"id": "why", "type": "text", "title": t("原因"), "validation": {"max_length": 500}},
            ],
        }
    ],
}
NEGATIVE = [
    "排队太久了，收银台只开了一个，体验很差。",
    "店员态度很差，我要投诉。",
    "东西坏了也没人管，非常失望。",
    "Delivery was late and the box was damaged, very disappointed.",
    "The staff were rude and nobody helped me.",
]
POSITIVE = [
    "店员很热情，环境也很干净，很满意。",
    "Great service, friendly staff, I will come back.",
    "服务很好，速度很快。",
]
SCORE_RULES = [
    {
        "name": "Detractor (NPS ≤ 6)",
        "enabled": True,
        "definition": {
            "trigger": "survey.response.submitted",
            "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 6},
            "actions": {"severity": "critical", "open_ticket": {"priority": "P2"}, "notify": {"notify_owner": True}},
            "grouping_window_minutes": 60,
        },
    },
    {
        "name": "Complaint keyword",
        "enabled": True,
        "definition": {
            "trigger": "survey.response.submitted",
            "condition": {"type": "keywords", "any_of": ["投诉", "complain"]},
            "actions": {"severity": "warning", "notify": {"notify_owner": True}},
        },
    },
]
NLP_RULES = [
    {
        "name": "Negative open answer",
        "enabled": True,
        "definition": {
            "trigger": "feedback.analyzed",
            "condition": {
                "type": "any",
                "conditions": [
                    {"type": "sentiment", "label": "negative", "min_confidence": 0.6},
                    {"type": "intent", "intent": "complaint", "min_score": 0.7},
                ],
            },
            "actions": {"severity": "warning", "open_ticket": {"priority": "P3"}, "notify": {"notify_owner": True}},
            "grouping_window_minutes": 60,
        },
    }
]


@dataclass
class Tenant:
    tenant_id: uuid.UUID
    survey_id: str
    touchpoints: list[str]
    headers: dict[str, str]


def org_tree() -> tuple[list[events_pb2.UserChanged], list[events_pb2.OrgUnitChanged]]:
    users = [events_pb2.UserChanged(user_id="u-hq", org_unit_id="hq", role="manager", display_name="HQ", active=True)]
    units = [events_pb2.OrgUnitChanged(org_unit_id="hq", name="HQ", kind="hq", manager_user_id="u-hq")]
    for region in REGIONS:
        users.append(events_pb2.UserChanged(user_id=f"u-{region}", org_unit_id=region, role="manager", active=True))
        units.append(
            events_pb2.OrgUnitChanged(
                org_unit_id=region, parent_id="hq", ancestor_ids=["hq"], kind="region", manager_user_id=f"u-{region}"
            )
        )
        for n in range(STORES_PER_REGION):
            store = f"{region}-s{n}"
            users.append(events_pb2.UserChanged(user_id=f"u-{store}", org_unit_id=store, role="manager", active=True))
            units.append(
                events_pb2.OrgUnitChanged(
                    org_unit_id=store,
                    parent_id=region,
                    ancestor_ids=["hq", region],
                    kind="store",
                    timezone="Asia/Shanghai",
                    manager_user_id=f"u-{store}",
                )
            )
    for unit in units:
        unit.name = unit.name or unit.org_unit_id.upper()
        unit.timezone = unit.timezone or "Asia/Shanghai"
    return users, units


async def publish_org(nats_url: str, prefix: str, tenant_id: uuid.UUID) -> int:
    """The gateway's org events, on the subjects and in the envelope it uses (users before units)."""
    users, units = org_tree()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for event_type, payloads in (("org.user.upserted", users), ("org.unit.upserted", units)):
            for payload in payloads:
                envelope = build_envelope(tenant_id=tenant_id, event_type=event_type, payload=payload, source="gateway")
                await js.publish(
                    f"{prefix}.{event_type}", envelope.SerializeToString(), headers={"Nats-Msg-Id": envelope.event_id}
                )
    finally:
        await nc.close()
    return len(units)


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def setup_tenant(
    nats_url: str,
    prefix: str,
    survey_url: str,
    alerts_url: str,
    token: Callable[[uuid.UUID], str],
    rules: list[dict[str, Any]],
) -> Tenant:
    tenant_id = uuid.uuid4()
    headers = {"Authorization": f"Bearer {token(tenant_id)}"}
    expected = await publish_org(nats_url, prefix, tenant_id)
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:

        async def projected() -> bool:
            r = await client.get(f"{alerts_url}/v1/org-units")
            return r.status_code == 200 and len(r.json()) == expected

        await _until(projected, "the org tree in alerts")
        touchpoints: list[str] = []
        for region in REGIONS:
            for n in range(STORES_PER_REGION):
                body = {"name": f"{region}-s{n}", "stage_key": "post_sale", "channel": "store"}
                body["org_unit_id"] = f"{region}-s{n}"
                created: list[httpx.Response] = []

                async def made(body: dict[str, str] = body, created: list[httpx.Response] = created) -> bool:
                    r = await client.post(f"{survey_url}/v1/touchpoints", json=body)  # 422 until survey has the unit
                    if r.status_code == 201:
                        created.append(r)
                    return r.status_code == 201

                await _until(made, "the org tree in survey")
                touchpoints.append(created[0].json()["id"])
        r = await client.post(f"{survey_url}/v1/surveys", json={"title": "bench", "definition": DEFINITION})
        r.raise_for_status()
        survey_id = r.json()["id"]
        (await client.post(f"{survey_url}/v1/surveys/{survey_id}/publish")).raise_for_status()
        for rule in rules:
            (await client.post(f"{alerts_url}/v1/rules", json=rule)).raise_for_status()
    return Tenant(tenant_id, survey_id, touchpoints, headers)


# -- the load and its observation --------------------------------------------------------------------------


@dataclass
class Sample:
    response_id: str
    acked: float  # monotonic time of the 201
    seen: float | None = None


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    submitted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    offered_rate: float = 0.0
    seconds: float = 0.0

    @property
    def latencies_ms(self) -> list[float]:
        return sorted((s.seen - s.acked) * 1000 for s in self.samples if s.seen is not None)

    @property
    def missing(self) -> int:
        return sum(1 for s in self.samples if s.seen is None)

    def percentile(self, q: float) -> float:
        data = self.latencies_ms
        return data[min(len(data) - 1, int(len(data) * q))] if data else float("nan")


class TicketWatcher:
    """Sees tickets commit: every commit that writes an outbox row also NOTIFYs `cx_outbox`, so the watcher queries
    the tickets of the responses it waits for on each notification (and every `fallback_s` in any case)."""

    def __init__(self, admin_url: str, source_type: str, fallback_s: float = 0.02) -> None:
        self.admin_url = admin_url
        self.source_type = source_type
        self.fallback_s = fallback_s
        self.pending: dict[str, Sample] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._all_seen = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._listen: asyncpg.Connection | None = None

    async def __aenter__(self) -> TicketWatcher:
        self._conn = await asyncpg.connect(self.admin_url)
        self._listen = await asyncpg.connect(self.admin_url)
        await self._listen.add_listener("cx_outbox", lambda *_: self._wake.set())
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        for conn in (self._listen, self._conn):
            if conn is not None:
                await conn.close()

    def expect(self, sample: Sample) -> None:
        self.pending[sample.response_id] = sample
        self._all_seen.clear()
        self._wake.set()

    async def _run(self) -> None:
        assert self._conn is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.fallback_s)
            self._wake.clear()
            if not self.pending:
                continue
            rows = await self._conn.fetch(
                "SELECT source_response_id FROM alerts.tickets WHERE source_type = $1 "
                "AND source_response_id = ANY($2::text[]) "
                "AND first_response_due IS NOT NULL AND resolution_due IS NOT NULL",
                self.source_type,
                list(self.pending),
            )
            now = time.monotonic()
            for row in rows:
                sample = self.pending.pop(row["source_response_id"], None)
                if sample is not None:
                    sample.seen = now
            if not self.pending:
                self._all_seen.set()

    async def drain(self, limit: float) -> None:
        if self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_seen.wait(), timeout=limit)


Body = Callable[[int], tuple[dict[str, Any], bool]]  # n -> (request body, whether a ticket is expected)


async def steady_load(
    survey_url: str,
    tenant: Tenant,
    body: Body,
    *,
    rate: float,
    seconds: float,
    watcher: TicketWatcher | None = None,
    drain_s: float = 20.0,
) -> Outcome:
    """Open loop: request i is sent at start + i/rate whatever the earlier ones are doing (a steady arrival rate)."""
    outcome = Outcome(offered_rate=rate)
    url = f"{survey_url}/v1/public/surveys/{tenant.survey_id}/responses"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(n: int) -> None:
            payload, expect_ticket = body(n)
            try:
                r = await client.post(url, json=payload)
            except httpx.HTTPError as exc:
                outcome.errors[type(exc).__name__] = outcome.errors.get(type(exc).__name__, 0) + 1
                return
            acked = time.monotonic()
            if r.status_code != 201:
                outcome.errors[str(r.status_code)] = outcome.errors.get(str(r.status_code), 0) + 1
                return
            outcome.submitted += 1
            if expect_ticket and watcher is not None:
                sample = Sample(r.json()["id"], acked)
                outcome.samples.append(sample)
                watcher.expect(sample)

        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        n = 0
        while (due := start + n / rate) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(one(n)))
            n += 1
        await asyncio.gather(*tasks)
        outcome.seconds = time.monotonic() - start
    if watcher is not None:
        await watcher.drain(drain_s)
    return outcome


def score_body(tenant: Tenant) -> Body:
    """NPS 0..10 in turn (7 of 11 are detractors, each a new customer: every detractor opens its own ticket)."""

    def body(n: int) -> tuple[dict[str, Any], bool]:
        nps = n % 11
        text = NEGATIVE[n % len(NEGATIVE)] if nps <= 6 else POSITIVE[n % len(POSITIVE)]
        return {
            "answers": {"nps": nps, "why": text},
            "hidden": {"customer_id": f"c-{uuid.uuid4().hex[:12]}"},
            "touchpoint_id": tenant.touchpoints[n % len(tenant.touchpoints)],
            "submission_id": f"tta-{uuid.uuid4().hex}",
        }, nps <= 6

    return body


def nlp_body(tenant: Tenant) -> Body:
    """Promoter scores (no score rule could fire) with an open answer; 5 of 8 answers are negative."""

    def body(n: int) -> tuple[dict[str, Any], bool]:
        negative = n % 8 < 5
        text = NEGATIVE[n % len(NEGATIVE)] if negative else POSITIVE[n % len(POSITIVE)]
        return {
            "answers": {"nps": 9 + n % 2, "why": text},
            "hidden": {"customer_id": f"c-{uuid.uuid4().hex[:12]}"},
            "touchpoint_id": tenant.touchpoints[n % len(tenant.touchpoints)],
            "submission_id": f"tta-{uuid.uuid4().hex}",
        }, negative

    return body


async def server_side_gaps(admin_url: str, response_ids: list[str], source_type: str) -> dict[str, float]:
    """Median milliseconds of the server-side steps, from the services' own timestamps (one host clock):
    survey commit (submitted_at) → ticket opened by alerts (opened_at)."""
    conn = await asyncpg.connect(admin_url)
    try:
        rows = await conn.fetch(
            "SELECT r.submitted_at, t.opened_at FROM survey.responses r JOIN alerts.tickets t "
            "ON t.source_response_id = r.id::text AND t.source_type = $2 WHERE r.id::text = ANY($1::text[])",
            response_ids,
            source_type,
        )
    finally:
        await conn.close()
    gaps = sorted((r["opened_at"] - r["submitted_at"]) / dt.timedelta(milliseconds=1) for r in rows)
    return {"submitted_to_opened_p50_ms": gaps[len(gaps) // 2] if gaps else float("nan")}
