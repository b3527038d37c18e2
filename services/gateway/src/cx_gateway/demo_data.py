"""Sample data of the demo tenant, loaded into the other services through their real APIs (internal HTTP):

- survey: a journey (touchpoints per store on the default stages), two published surveys (NPS, CSAT/CES), responses
  with open answers in Chinese and English (each one `survey.response.submitted` → alerts rules, ingest, analytics);
- ingest: a CRM partner with an API key, feedback items in Chinese and English through the partner batch API
  (`feedback.received` → NLP → `feedback.analyzed`), O-data (customers with segments, orders with values);
- alerts: an SLA policy, rules (detractor → ticket, negative service aspect → alert), open tickets opened by hand,
  P1 tickets on a short SLA that escalate up the org tree, an improvement task submitted for approval.

Everything is deterministic (seeded generator), keyed (submission ids, external ids, record keys) and recorded per
part in `gateway.demo_loads`, so a second run loads nothing twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx_gateway.identity.models import DemoLoad

STORES = ("S-SH-01", "S-HZ-01", "S-GZ-01", "S-SZ-01")
# store -> weight of its traffic and a bias of its scores (the Guangzhou store has a service problem)
STORE_PROFILE = {"S-SH-01": (0.35, 0.6), "S-HZ-01": (0.2, 0.8), "S-GZ-01": (0.3, -1.6), "S-SZ-01": (0.15, 0.2)}
TOUCHPOINTS = (  # name, stage, channel
    ("门店结账 Store checkout", "in_sale", "store"),
    ("送货上门 Home delivery", "post_sale", "delivery"),
    ("售前咨询 Pre-sale advice", "pre_sale", "wechat"),
)
SKUS = ("SKU-JACKET-01", "SKU-SNEAKER-02", "SKU-BAG-03", "SKU-TEE-04", "SKU-COAT-05")
SEGMENTS = ("vip", "regular", "new")

# (language, polarity, text): phrases the NLP model understands (aspects: service, product, delivery, price, store)
PHRASES: tuple[tuple[str, str, str], ...] = (
    ("zh-Hans", "negative", "结账排队太久了，等了二十分钟"),
    ("zh-Hans", "negative", "店员态度冷漠，问了半天没人理"),
    ("zh-Hans", "negative", "衣服质量一般，洗了一次就起球"),
    ("zh-Hans", "negative", "快递太慢，包装也破了"),
    ("zh-Hans", "negative", "价格偏贵，性价比不高"),
    ("zh-Hans", "negative", "退款迟迟没有到账，客服电话一直打不通"),
    ("zh-Hans", "positive", "店员很热情，帮我挑了合适的尺码"),
    ("zh-Hans", "positive", "质量很好，穿着很舒服"),
    ("zh-Hans", "positive", "送货很快，第二天就到了"),
    ("zh-Hans", "positive", "门店环境干净整洁，试衣间也很方便"),
    ("zh-Hans", "neutral", "还行吧，和网上看到的差不多"),
    ("zh-Hans", "neutral", "停车位有点少，其他还可以"),
    ("en", "negative", "The checkout queue was far too long"),
    ("en", "negative", "Staff were rude and ignored my questions"),
    ("en", "negative", "The jacket started pilling after one wash, poor quality"),
    ("en", "negative", "Delivery was late and the box was damaged"),
    ("en", "negative", "Too expensive for what you get"),
    ("en", "positive", "Friendly staff, they helped me find the right size"),
    ("en", "positive", "Great quality and very comfortable"),
    ("en", "positive", "Fast delivery, arrived the next day"),
    ("en", "neutral", "It was okay, nothing special"),
)
CHANNELS = ("hotline", "chat", "review", "social", "email", "store")

Progress = Callable[[str, int, int], None]


@dataclass
class DemoPlan:
    """How much to generate (the defaults make the demo; tests pass small numbers)."""

    responses: int = 2400
    feedback: int = 2000
    customers: int = 400
    orders: int = 900
    seed: int = 20261125
    concurrency: int = 8


@dataclass
class Upstream:
    survey: str
    ingest: str
    alerts: str


@dataclass
class LoadReport:
    loaded: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class DemoLoadError(RuntimeError):
    pass


# -- the generator -----------------------------------------------------------------------------------------------


def _store(rng: random.Random) -> str:
    return rng.choices(STORES, weights=[STORE_PROFILE[s][0] for s in STORES])[0]


def _phrase(rng: random.Random, score_bias: float, lang: str | None = None) -> tuple[str, str, str]:
    polarity = rng.choices(
        ("negative", "neutral", "positive"), weights=(max(0.2, 1.2 - score_bias * 0.4), 0.6, max(0.2, 1.2 + score_bias))
    )[0]
    pool = [p for p in PHRASES if p[1] == polarity and (lang is None or p[0] == lang)]
    return rng.choice(pool)


def _nps(rng: random.Random, bias: float) -> int:
    return max(0, min(10, round(rng.gauss(7.6 + bias, 2.2))))


def generate_responses(plan: DemoPlan) -> list[dict[str, Any]]:
    """Response bodies: survey kind, store, touchpoint index, answers, hidden customer id and a stable submission id."""
    rng = random.Random(plan.seed)
    out = []
    for i in range(plan.responses):
        store = _store(rng)
        bias = STORE_PROFILE[store][1]
        lang = rng.choices(("zh-Hans", "en", "zh-Hant"), weights=(0.65, 0.3, 0.05))[0]
        text_lang = "en" if lang == "en" else "zh-Hans"
        customer = f"C{rng.randrange(plan.customers):05d}"
        if i % 3 != 2:
            nps = _nps(rng, bias)
            answers: dict[str, Any] = {"nps": nps}
            if rng.random() < 0.7:
                answers["reason"] = _phrase(rng, (nps - 7) / 2, text_lang)[2]
            kind, touchpoint = "nps", rng.choice((0, 2))
        else:
            csat = max(1, min(5, round(rng.gauss(3.9 + bias / 2, 0.9))))
            answers = {"csat": csat, "ces": max(1, min(7, round(rng.gauss(5.2 + bias / 2, 1.2))))}
            kind, touchpoint = "csat", 1
        out.append(
            {
                "kind": kind,
                "store": store,
                "touchpoint": touchpoint,
                "language": lang,
                "answers": answers,
                "customer": customer,
                "submission_id": f"demo-{plan.seed}-r{i:06d}",
            }
        )
    return out


def generate_feedback(plan: DemoPlan, units: dict[str, uuid.UUID], now: dt.datetime) -> list[dict[str, Any]]:
    rng = random.Random(plan.seed + 1)
    out = []
    for i in range(plan.feedback):
        store = _store(rng)
        lang, _, text = _phrase(rng, STORE_PROFILE[store][1], rng.choices(("zh-Hans", "en"), weights=(0.7, 0.3))[0])
        if rng.random() < 0.35:
            text = f"{text}{'，' if lang != 'en' else '. '}{_phrase(rng, 0.0, lang)[2]}"
        out.append(
            {
                "external_id": f"demo-fb-{i:06d}",
                "channel": rng.choice(CHANNELS),
                "text": text,
                "language": lang,
                "org_unit_id": str(units[store]),
                "customer_key": f"C{rng.randrange(plan.customers):05d}",
                "product_sku": rng.choice(SKUS) if rng.random() < 0.5 else None,
                "occurred_at": (now - dt.timedelta(days=rng.uniform(0, 29))).isoformat(),
            }
        )
    return out


def generate_odata(plan: DemoPlan, units: dict[str, uuid.UUID], now: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(plan.seed + 2)
    customers = [
        {
            "record_key": f"C{i:05d}",
            "customer_key": f"C{i:05d}",
            "attributes": {"segment": rng.choices(SEGMENTS, weights=(0.15, 0.6, 0.25))[0], "member_years": i % 7},
        }
        for i in range(plan.customers)
    ]
    orders = []
    for i in range(plan.orders):
        value = round(rng.lognormvariate(6.0, 0.7), 2)
        orders.append(
            {
                "record_key": f"O{i:06d}",
                "customer_key": f"C{rng.randrange(plan.customers):05d}",
                "org_unit_id": str(units[_store(rng)]),
                "occurred_at": (now - dt.timedelta(days=rng.uniform(0, 29))).isoformat(),
                "attributes": {"order_value": value, "product": rng.choice(SKUS), "items": rng.randint(1, 5)},
            }
        )
    return {"customers": customers, "orders": orders}


# -- the loader ----------------------------------------------------------------------------------------------------


def text_progress(stream: TextIO = sys.stderr, width: int = 30) -> Progress:
    """A progress bar on a terminal; one line per 10 % step otherwise (logs)."""
    tty = stream.isatty()
    last: dict[str, int] = {}

    def show(label: str, done: int, total: int) -> None:
        total = max(total, 1)
        pct = done * 100 // total
        if tty:
            filled = width * done // total
            stream.write(f"\r  {label:<22} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            if done >= total:
                stream.write("\n")
            stream.flush()
        elif pct // 10 != last.get(label, -1) or done >= total:
            last[label] = pct // 10
            stream.write(f"  {label:<22} {pct:3d}% ({done}/{total})\n")
            stream.flush()

    return show


class Api:
    """Internal HTTP to one service with the demo admin's identity; retries 429 (Retry-After), 502/503/504 and
    connection errors, and waits for org units the service has not projected yet."""

    def __init__(self, client: httpx.AsyncClient, base: str, token: str, patience_s: float = 90.0) -> None:
        self.client, self.base, self.token, self.patience_s = client, base.rstrip("/"), token, patience_s

    async def call(
        self,
        method: str,
        path: str,
        *,
        ok: Iterable[int] = (200, 201),
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        deadline = time.monotonic() + self.patience_s
        hdrs = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        while True:
            try:
                r = await self.client.request(method, self.base + path, headers=hdrs, **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise DemoLoadError(f"{method} {self.base}{path}: {exc!r}") from exc
                await asyncio.sleep(1.0)
                continue
            if r.status_code in set(ok):
                return r.json() if r.content else None
            retry = r.status_code in (429, 502, 503, 504) or (r.status_code == 422 and "unknown org unit" in r.text)
            if retry and time.monotonic() < deadline:
                await asyncio.sleep(min(float(r.headers.get("retry-after") or 0.5), 5.0))
                continue
            raise DemoLoadError(f"{method} {self.base}{path} -> {r.status_code}: {r.text[:300]}")


async def _done(sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> set[str]:
    async with sessions() as session:
        rows = await session.execute(select(DemoLoad.part).where(DemoLoad.tenant_id == tenant_id))
        return set(rows.scalars())


async def _mark(sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, part: str, summary: Any) -> None:
    async with sessions() as session, session.begin():
        session.add(DemoLoad(tenant_id=tenant_id, part=part, summary=json.dumps(summary, ensure_ascii=False)))


async def _gather(
    items: list[Any], fn: Callable[[Any], Awaitable[Any]], limit: int, tick: Callable[[], None]
) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with gate:
            result = await fn(item)
            tick()
            return result

    return list(await asyncio.gather(*(one(i) for i in items)))


async def load_demo_data(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
    units: dict[str, uuid.UUID],
    users: dict[str, uuid.UUID],
    token: str,
    upstream: Upstream,
    plan: DemoPlan | None = None,
    progress: Progress | None = None,
    client: httpx.AsyncClient | None = None,
) -> LoadReport:
    """Load every part not loaded yet. `token` is an admin JWT of the demo tenant (signed by the gateway)."""
    plan = plan or DemoPlan()
    show = progress or (lambda label, done, total: None)
    report = LoadReport()
    done = await _done(sessions, tenant_id)
    now = dt.datetime.now(dt.UTC)
    own = client is None
    http = client or httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=5.0), limits=httpx.Limits(max_connections=plan.concurrency * 2)
    )
    survey = Api(http, upstream.survey, token)
    ingest = Api(http, upstream.ingest, token)
    alerts = Api(http, upstream.alerts, token)
    try:
        if "odata" in done:
            report.skipped.append("odata")
        else:
            summary = await _load_odata(ingest, plan, units, now, show)
            await _mark(sessions, tenant_id, "odata", summary)
            report.loaded["odata"] = json.dumps(summary)
        if "survey" in done:
            report.skipped.append("survey")
        else:
            summary = await _load_surveys(survey, plan, units, show)
            await _mark(sessions, tenant_id, "survey", summary)
            report.loaded["survey"] = json.dumps(summary)
        if "feedback" in done:
            report.skipped.append("feedback")
        else:
            summary = await _load_feedback(ingest, plan, units, now, show)
            await _mark(sessions, tenant_id, "feedback", summary)
            report.loaded["feedback"] = json.dumps(summary)
        if "alerts" in done:
            report.skipped.append("alerts")
        else:
            summary = await _load_alerts(alerts, survey, plan, units, users, show)
            await _mark(sessions, tenant_id, "alerts", summary)
            report.loaded["alerts"] = json.dumps(summary)
    finally:
        if own:
            await http.aclose()
    return report


async def _partner_key(ingest: Api) -> str:
    partners = await ingest.call("GET", "/v1/partners", params={"limit": 200})
    partner = next((p for p in partners["items"] if p["title"] == "演示 CRM Demo CRM"), None)
    if partner is None:
        partner = await ingest.call(
            "POST", "/v1/partners", json={"title": "演示 CRM Demo CRM", "kind": "crm", "default_channel": "crm"}
        )
        await ingest.call(
            "PATCH",
            f"/v1/partners/{partner['id']}",
            json={"rate_limit_per_minute": 100_000, "rate_limit_burst": 10_000},
        )
    key = await ingest.call("POST", f"/v1/partners/{partner['id']}/keys", json={"name": "seed-demo"})
    return str(key["key"])


async def _batches(
    ingest: Api, key: str, path: str, records: list[dict[str, Any]], label: str, show: Progress
) -> dict[str, int]:
    counts: dict[str, int] = {}
    show(label, 0, len(records))
    for start in range(0, len(records), 500):
        chunk = records[start : start + 500]
        result = await ingest.call(
            "POST",
            path,
            json={"items": [{k: v for k, v in r.items() if v is not None} for r in chunk]},
            headers={"Authorization": f"ApiKey {key}", "Idempotency-Key": f"{label}-{start}-{len(chunk)}"},
        )
        for item in result.get("results") or []:
            status = str(item.get("status", "?"))
            counts[status] = counts.get(status, 0) + 1
        show(label, start + len(chunk), len(records))
    if counts.get("rejected"):
        raise DemoLoadError(f"{label}: {counts['rejected']} records rejected")
    return counts


async def _load_odata(
    ingest: Api, plan: DemoPlan, units: dict[str, uuid.UUID], now: dt.datetime, show: Progress
) -> dict[str, Any]:
    key = await _partner_key(ingest)
    data = generate_odata(plan, units, now)
    return {
        kind: await _batches(ingest, key, f"/v1/odata/{kind}:batch", records, f"O-data {kind}", show)
        for kind, records in data.items()
    }


async def _load_feedback(
    ingest: Api, plan: DemoPlan, units: dict[str, uuid.UUID], now: dt.datetime, show: Progress
) -> dict[str, Any]:
    key = await _partner_key(ingest)
    records = generate_feedback(plan, units, now)
    return await _batches(ingest, key, "/v1/feedback:batch", records, "feedback items", show)


SURVEYS = {"nps": ("门店推荐度 Store NPS", "nps"), "csat": ("送货满意度 Delivery CSAT", "csat_after_service")}


async def _load_surveys(survey: Api, plan: DemoPlan, units: dict[str, uuid.UUID], show: Progress) -> dict[str, Any]:
    existing = {t["name"]: t for t in await survey.call("GET", "/v1/touchpoints")}
    touchpoints: dict[tuple[str, int], str] = {}
    for store in STORES:
        for index, (name, stage, channel) in enumerate(TOUCHPOINTS):
            full = f"{name} · {store}"
            tp = existing.get(full) or await survey.call(
                "POST",
                "/v1/touchpoints",
                json={"name": full, "stage_key": stage, "channel": channel, "org_unit_id": str(units[store])},
            )
            touchpoints[(store, index)] = str(tp["id"])
    listed = await survey.call("GET", "/v1/surveys", params={"limit": 200})
    by_title = {s["title"]: s for s in listed["items"]}
    survey_ids: dict[str, str] = {}
    for kind, (title, template) in SURVEYS.items():
        found = by_title.get(title)
        if found is None:
            found = await survey.call("POST", "/v1/surveys", json={"title": title, "template": template})
        if found.get("status") != "published":
            await survey.call("POST", f"/v1/surveys/{found['id']}/publish")
        survey_ids[kind] = str(found["id"])
    bodies = generate_responses(plan)
    counts = {"created": 0, "duplicate": 0}
    progress = [0]

    def tick() -> None:
        progress[0] += 1
        if progress[0] % 25 == 0 or progress[0] == len(bodies):
            show("survey responses", progress[0], len(bodies))

    async def submit(body: dict[str, Any]) -> None:
        answer = await survey.call(
            "POST",
            f"/v1/public/surveys/{survey_ids[body['kind']]}/responses",
            json={
                "answers": body["answers"],
                "hidden": {"customer_id": body["customer"]},
                "language": body["language"],
                "submission_id": body["submission_id"],
                "touchpoint_id": touchpoints[(body["store"], body["touchpoint"])],
            },
        )
        counts["duplicate" if answer.get("duplicate") else "created"] += 1

    show("survey responses", 0, len(bodies))
    await _gather(bodies, submit, plan.concurrency, tick)
    return {"touchpoints": len(touchpoints), "surveys": survey_ids, "responses": counts}


RULES = [
    {
        "name": "贬损者回访 Detractor call-back (NPS ≤ 3)",
        "enabled": True,
        "definition": {
            "trigger": "survey.response.submitted",
            "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 3},
            "actions": {"severity": "critical", "open_ticket": {"priority": "P2"}},
            "grouping_window_minutes": 1440,
        },
    },
    {
        "name": "服务态度负面 Negative service attitude",
        "enabled": True,
        "definition": {
            "trigger": "feedback.analyzed",
            "condition": {"type": "aspect", "path": ["服务"], "polarity": "negative"},
            "actions": {"severity": "warning"},
            "grouping_window_minutes": 60,
        },
    },
]

HAND_TICKETS = [  # store, priority, title
    ("S-SH-01", "P2", "试衣间排队超过 20 分钟 Fitting-room queue over 20 minutes"),
    ("S-SH-01", "P3", "会员积分未到账 Loyalty points missing"),
    ("S-HZ-01", "P3", "Refund for order O000123 still pending"),
    ("S-GZ-01", "P1", "顾客投诉店员辱骂 Customer reports verbal abuse by staff"),
    ("S-GZ-01", "P2", "退款迟迟未到 Refund not received after 10 days"),
    ("S-SZ-01", "P1", "门店空调故障 Air conditioning broken in store"),
]


async def _load_alerts(
    alerts: Api,
    survey: Api,
    plan: DemoPlan,
    units: dict[str, uuid.UUID],
    users: dict[str, uuid.UUID],
    show: Progress,
) -> dict[str, Any]:
    # P1 on a short, round-the-clock SLA: unanswered P1 tickets escalate up the org tree within minutes
    await alerts.call(
        "PUT",
        "/v1/sla-policies/P1",
        json={"first_response_minutes": 2, "resolution_minutes": 240, "escalation_minutes": 5, "business_hours": False},
    )
    listed = await alerts.call("GET", "/v1/rules", params={"limit": 200})
    names = {r["name"] for r in listed["items"]}
    for rule in RULES:
        if rule["name"] not in names:
            await alerts.call("POST", "/v1/rules", json=rule)
    show("tickets and tasks", 0, len(HAND_TICKETS) + 1)
    opened = []
    for i, (store, priority, title) in enumerate(HAND_TICKETS):
        ticket = await alerts.call(
            "POST",
            "/v1/tickets",
            json={"title": title, "priority": priority, "org_unit_id": str(units[store]), "channel": "store"},
        )
        opened.append(ticket["id"])
        show("tickets and tasks", i + 1, len(HAND_TICKETS) + 1)
    # the second ticket is already being handled
    second = await alerts.call("GET", f"/v1/tickets/{opened[1]}")
    await alerts.call(
        "POST", f"/v1/tickets/{opened[1]}/transitions", json={"status": "acknowledged", "version": second["version"]}
    )
    task = await alerts.call(
        "POST",
        "/v1/tasks",
        json={
            "title": "缩短结账排队时间 Cut checkout queues",
            "description": "高峰时段增开收银台并试点自助结账 / more tills at peak hours, pilot self-checkout",
            "source_kind": "aspect",
            "aspect_path": ["服务", "排队"],
            "department_id": str(units["D-CX"]),
        },
    )
    await alerts.call(
        "POST",
        f"/v1/tasks/{task['id']}/submit",
        json={
            "plan": "1) 高峰增开 2 个收银台 2) 上线自助结账 3) 每周复盘排队时长",
            "due_date": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
            "version": task["version"],
        },
    )
    show("tickets and tasks", len(HAND_TICKETS) + 1, len(HAND_TICKETS) + 1)
    return {"tickets": len(opened), "task": task["id"], "rules": len(RULES)}
