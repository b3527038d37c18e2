"""The whole customer-experience loop, end to end, on a real local stack (all five services as processes, embedded
Postgres + NATS, the tiny NLP model), driven through the gateway's public API wherever the gateway forwards it.

The steps run in order on one stack (startup is shared); each step is its own test so a report names the step that
broke. A step whose prerequisite failed is skipped with the reason (the prerequisite itself is reported failed).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_stack import LocalStack, WebhookInbox, client, poll

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DETRACTOR_TEXT = "店员态度很差，排队等了四十分钟也没人理，太失望了，我要投诉！"
FORBIDDEN = "保证收益"
HOUR = 3600


@dataclass
class World:
    stack: LocalStack
    inbox: WebhookInbox
    done: set[str] = field(default_factory=set)
    ids: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def need(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"needs the earlier step(s) {missing}, which failed")

    def gw(self, who: str = "admin") -> httpx.Client:
        return client(self.stack.url("gateway"), self.tokens[who])

    def svc(self, service: str, who: str = "admin") -> httpx.Client:
        """A service's own API with a gateway-issued token (for what the gateway does not forward)."""
        return client(self.stack.url(service), self.tokens[who])

    def login(self, who: str, email: str, password: str) -> None:
        with client(self.stack.url("gateway")) as c:
            r = c.post(
                "/api/v1/auth/login", json={"tenant": self.ids["tenant_slug"], "email": email, "password": password}
            )
        assert r.status_code == 200, r.text
        self.tokens[who] = r.json()["access_token"]
        self.secrets[f"jwt:{who}"] = r.json()["access_token"]
        self.secrets[f"refresh:{who}"] = r.json()["refresh_token"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = LocalStack(
        env={
            # argon2 cost kept low so the handful of logins stays cheap on 2 cores (the setting is the product's)
            "gateway": {"CX_GATEWAY_PASSWORD_MEMORY_KIB": "8192", "CX_GATEWAY_PASSWORD_TIME_COST": "1"},
        },
    )
    inbox = WebhookInbox()
    try:
        stack.up()
        yield World(stack, inbox)
    finally:
        inbox.close()
        stack.dump_logs(tmp_path_factory.mktemp("journey-logs"))
        stack.down()


def ok(r: httpx.Response, *codes: int) -> Any:
    assert r.status_code in (codes or (200, 201)), f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    return r.json() if r.content else None


def items(r: httpx.Response) -> list[dict[str, Any]]:
    body = ok(r, 200)
    return body["items"] if isinstance(body, dict) else body


# ---------------------------------------------------------------------------------------------------------------
# 1. tenant setup


def test_1_admin_sets_up_the_tenant(world: World) -> None:
    w = world
    slug = f"e2e-{secrets.token_hex(3)}"
    w.ids["tenant_slug"] = slug
    passwords = {
        k: f"pw-{k}-{secrets.token_urlsafe(9)}" for k in ("owner", "admin", "region", "store", "store2", "ops")
    }
    w.secrets.update({f"password:{k}": v for k, v in passwords.items()})
    w.secrets["platform_secret"] = w.stack.internal_secret
    with client(w.stack.url("gateway")) as c:
        tenant = ok(
            c.post(
                "/api/v1/tenants",
                headers={"X-Cx-Platform-Secret": w.stack.internal_secret},
                json={
                    "slug": slug,
                    "name": "端到端零售 E2E Retail",
                    "root_org_name": "总部 HQ",
                    "owner_email": f"owner@{slug}.cx",
                    "owner_password": passwords["owner"],
                },
            ),
            201,
        )
    w.ids.update(
        tenant=str(tenant["tenant_id"]), hq=str(tenant["root_org_unit_id"]), owner=str(tenant["owner_user_id"])
    )
    w.login("owner", f"owner@{slug}.cx", passwords["owner"])

    with w.gw("owner") as gw:
        admin = ok(
            gw.post(
                "/api/v1/users",
                json={
                    "email": f"admin@{slug}.cx",
                    "display_name": "Admin 管理员",
                    "password": passwords["admin"],
                    "role": "admin",
                    "org_unit_id": w.ids["hq"],
                },
            ),
            201,
        )
        w.ids["admin"] = admin["id"]
    w.login("admin", f"admin@{slug}.cx", passwords["admin"])

    with w.gw() as gw:

        def unit(code: str, name: str, kind: str, parent: str) -> str:
            body = {"code": code, "name": name, "kind": kind, "parent_id": w.ids[parent]}
            return str(ok(gw.post("/api/v1/org-units", json=body), 201)["id"])

        w.ids["region"] = unit("R-EAST", "华东区 East", "region", "hq")
        w.ids["store"] = unit("S-SH-01", "上海南京路店", "store", "region")
        w.ids["store2"] = unit("S-HZ-01", "杭州西湖店", "store", "region")
        w.ids["dept"] = unit("D-CX", "客户体验部", "department", "hq")

        def user(key: str, role: str, org: str, name: str) -> str:
            body = {
                "email": f"{key}@{slug}.cx",
                "display_name": name,
                "password": passwords[key],
                "role": role,
                "org_unit_id": w.ids[org],
            }
            uid = str(ok(gw.post("/api/v1/users", json=body), 201)["id"])
            w.ids[f"user:{key}"] = uid
            return uid

        user("region", "manager", "region", "陳經理 region manager")
        user("store", "manager", "store", "张店长 store manager")
        user("store2", "manager", "store2", "李店长 store2 manager")
        user("ops", "manager", "dept", "赵经理 CX dept manager")
        for org, key in (
            ("store", "store"),
            ("store2", "store2"),
            ("region", "region"),
            ("hq", "admin"),
            ("dept", "ops"),
        ):
            uid = w.ids["admin"] if key == "admin" else w.ids[f"user:{key}"]
            ok(gw.patch(f"/api/v1/org-units/{w.ids[org]}", json={"manager_user_id": uid}), 200)
        tree = ok(gw.get("/api/v1/org-units/tree"), 200)
        assert tree[0]["id"] == w.ids["hq"] and {c["code"] for c in tree[0]["children"]} == {"R-EAST", "D-CX"}

    for key in ("region", "store", "store2", "ops"):
        w.login(key, f"{key}@{slug}.cx", passwords[key])

    # Alerts and survey keep projections of the org tree (org.* events): wait until alerts knows the store's manager.
    with w.svc("alerts") as al:

        def projected() -> bool:
            units = items(al.get("/v1/org-units", params={"limit": 100}))
            by_id = {str(u["id"]): u for u in units}
            store = by_id.get(w.ids["store"])
            return bool(
                store and str(store.get("manager_user_id") or "") == w.ids["user:store"] and w.ids["dept"] in by_id
            )

        poll("alerts' org projection", projected, timeout=30)

    with w.svc("survey") as sv:
        ok(sv.post("/v1/journey-stages", json={"key": "purchase", "name": {"zh-Hans": "购买", "en": "Purchase"}}), 201)
    with w.gw() as gw:
        tp = poll(
            "touchpoint (survey's org projection)",
            lambda: ok(
                gw.post(
                    "/api/v1/touchpoints",
                    json={
                        "name": "门店收银 checkout",
                        "stage_key": "purchase",
                        "channel": "store",
                        "org_unit_id": w.ids["store"],
                    },
                ),
                201,
            ),
            timeout=30,
        )
        w.ids["touchpoint"] = str(tp["id"])

        codebook = ok(
            gw.post(
                "/api/v1/codebooks",
                json={
                    "name": "零售 Retail",
                    "active": True,
                    "nodes": [
                        {"id": "svc", "names": {"zh-Hans": "服务", "en": "Service"}},
                        {"id": "svc.staff", "parent_id": "svc", "names": {"zh-Hans": "店员", "en": "Staff"}},
                        {
                            "id": "svc.staff.attitude",
                            "parent_id": "svc.staff",
                            "names": {"zh-Hans": "服务态度", "en": "Attitude"},
                            "keywords": ["态度", "店员", "attitude", "rude"],
                        },
                        {"id": "svc.wait", "parent_id": "svc", "names": {"zh-Hans": "等待", "en": "Waiting"}},
                        {
                            "id": "svc.wait.queue",
                            "parent_id": "svc.wait",
                            "names": {"zh-Hans": "排队时间", "en": "Queue"},
                            "keywords": ["排队", "等了", "queue", "wait"],
                        },
                        {"id": "prod", "names": {"zh-Hans": "商品", "en": "Product"}},
                        {"id": "prod.quality", "parent_id": "prod", "names": {"zh-Hans": "质量", "en": "Quality"}},
                        {
                            "id": "prod.quality.broken",
                            "parent_id": "prod.quality",
                            "names": {"zh-Hans": "破损", "en": "Broken"},
                            "keywords": ["坏了", "破损", "broken", "damaged"],
                        },
                    ],
                },
            ),
            201,
        )
        w.ids["codebook"] = str(codebook["id"])
        ok(gw.post(f"/api/v1/codebooks/{codebook['id']}/versions", json={"note": "v1"}), 201)

        partner = ok(
            gw.post(
                "/api/v1/partners",
                json={
                    "title": "呼叫中心 CRM",
                    "kind": "crm",
                    "default_channel": "hotline",
                    "default_language": "zh-Hans",
                },
            ),
            201,
        )
        w.ids["partner"] = str(partner["id"])
        key = ok(gw.post(f"/api/v1/partners/{partner['id']}/keys", json={"name": "e2e"}), 201)
        w.secrets["api_key"] = key["key"]
        assert key["key"] not in ok(gw.get(f"/api/v1/partners/{partner['id']}/keys"), 200).__repr__()

        rule = ok(
            gw.post(
                "/api/v1/rules",
                json={
                    "name": "NPS ≤ 6 → ticket",
                    "enabled": True,
                    "definition": {
                        "trigger": "survey.response.submitted",
                        "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 6},
                        "actions": {"severity": "critical", "open_ticket": {"priority": "P2"}},
                    },
                },
            ),
            201,
        )
        w.ids["rule"] = str(rule["id"])
        # Deadlines in wall time (no business calendar) so the clock drill below is deterministic.
        ok(
            gw.put(
                "/api/v1/sla-policies/P2",
                json={
                    "first_response_minutes": 30,
                    "resolution_minutes": 480,
                    "escalation_minutes": 30,
                    "business_hours": False,
                },
            ),
            200,
        )
    # The gateway's roles carry no `compliance:*` scope (only the owner's `*` covers it) and the gateway does not
    # forward /compliance: the owner sets the profile up on the alerts API directly.
    with w.svc("alerts", "owner") as al:
        ok(
            al.post(
                "/v1/compliance/profiles",
                json={
                    "name": "热线合规 hotline compliance",
                    "definition": {
                        "required": [{"name": "greeting", "phrases": ["您好", "hello"], "where": "start"}],
                        "forbidden_phrases": [FORBIDDEN, "guaranteed return"],
                        "severity": "critical",
                    },
                },
            ),
            201,
        )
    w.done.add("setup")


# ---------------------------------------------------------------------------------------------------------------
# 2. survey: publish, triggered send, detractor answers on the respondent page


def form_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def test_2_survey_published_sent_and_answered_by_a_detractor(world: World) -> None:
    w = world
    w.need("setup")
    with w.gw() as gw:
        survey = ok(
            gw.post(
                "/api/v1/surveys", json={"title": "门店 NPS", "template": "nps", "touchpoint_id": w.ids["touchpoint"]}
            ),
            201,
        )
        sid = str(survey["id"])
        w.ids["survey"] = sid
        ok(gw.post(f"/api/v1/surveys/{sid}/publish", json={}), 201)
        dist = ok(
            gw.post(
                f"/api/v1/surveys/{sid}/distributions",
                json={
                    "name": "交易后 after purchase",
                    "channel": "webhook",
                    "webhook_url": w.inbox.url + "/sms",
                    "touchpoint_id": w.ids["touchpoint"],
                },
            ),
            201,
        )
        send = ok(
            gw.post(
                f"/api/v1/distributions/{dist['id']}/sends",
                json={
                    "customer_key": "C-1001",
                    "recipient": "+8613800138000",
                    "language": "zh-Hans",
                },
            ),
            202,
        )
        assert send["status"] in ("pending", "sent")
    message = poll("the triggered send to reach the webhook", lambda: w.inbox.received, timeout=30)[0]["json"]
    link = message["link"]
    assert message["customer_key"] == "C-1001" and f"/s/{sid}" in link

    with httpx.Client(timeout=30) as browser:
        page = browser.get(link)
        assert page.status_code == 200, page.text
        assert 'name="q_nps"' in page.text and '<html lang="zh-Hans">' in page.text
        fields = form_fields(page.text)
        action = urlsplit(link)._replace(query="").geturl()
        done = browser.post(action, data={**fields, "q_nps": "3", "q_reason": DETRACTOR_TEXT})
        assert done.status_code == 303, done.text
        thanks = browser.get(httpx.URL(link).join(done.headers["location"]))
        assert thanks.status_code == 200
    with w.gw() as gw:
        responses = items(gw.get("/api/v1/responses", params={"survey_id": sid}))
    assert len(responses) == 1
    assert responses[0]["nps"] == 3 and responses[0]["org_unit_id"] == w.ids["store"]
    w.ids["response"] = str(responses[0]["id"])
    w.done.add("answered")


def test_2b_a_send_with_undeclared_hidden_fields_is_refused_or_answerable(world: World) -> None:
    w = world
    w.need("answered")
    with w.gw() as gw:
        dist = ok(gw.get(f"/api/v1/surveys/{w.ids['survey']}/distributions"), 200)[0]
        before = len(w.inbox.received)
        send = gw.post(
            f"/api/v1/distributions/{dist['id']}/sends",
            json={"customer_key": "C-1002", "recipient": "+8613900139000", "hidden": {"order": "O-2"}},
        )
    if 400 <= send.status_code < 500:
        assert "hidden" in send.text
        return
    assert send.status_code == 202, send.text
    link = poll("the second send", lambda: w.inbox.received[before:], timeout=30)[0]["json"]["link"]
    with httpx.Client(timeout=30) as browser:
        fields = form_fields(browser.get(link).text)
        done = browser.post(urlsplit(link)._replace(query="").geturl(), data={**fields, "q_nps": "9"})
    assert done.status_code == 303, done.status_code


# ---------------------------------------------------------------------------------------------------------------
# 3. ticket for the store with SLA, analysis of the open text, dashboard counts


def test_3_ticket_analysis_and_dashboard_follow_within_seconds(world: World) -> None:
    w = world
    w.need("answered")
    with w.gw() as gw:

        def ticket() -> dict[str, Any] | None:
            found = items(gw.get("/api/v1/tickets", params={"org_unit_id": w.ids["store"]}))
            return next((t for t in found if t["source_response_id"] == w.ids["response"]), None)

        t = poll("a ticket for the detractor", ticket, timeout=30)
        w.ids["ticket"] = str(t["id"])
        assert t["org_unit_id"] == w.ids["store"] and t["assigned_org_unit_id"] == w.ids["store"]
        assert t["priority"] == "P2" and t["status"] == "open" and t["customer_key"] == "C-1001"
        assert t["owner_user_id"] == w.ids["user:store"]
        assert t["rule_id"] == w.ids["rule"]
        opened = dt.datetime.fromisoformat(t["opened_at"])
        assert dt.datetime.fromisoformat(t["first_response_due"]) - opened == dt.timedelta(minutes=30)
        assert dt.datetime.fromisoformat(t["resolution_due"]) - opened == dt.timedelta(minutes=480)
        w.done.add("ticket")

        def analysed() -> dict[str, Any] | None:
            found = items(gw.get("/api/v1/feedback", params={"channel": "survey", "limit": 50}))
            item = next((f for f in found if f["source_response_id"] == w.ids["response"]), None)
            return item if item and item["analysis_state"] == "done" else None

        fb = poll("the open answer analysed by ingest + nlp", analysed, timeout=45)
        assert DETRACTOR_TEXT in fb["text"] and fb["org_unit_id"] == w.ids["store"]
        assert fb["sentiment"] == "negative", fb["analysis"]
        assert {i["intent"] for i in fb["analysis"]["intents"]} & {"complaint", "churn-risk"}, fb["analysis"]["intents"]
        paths = [a["path"] for a in fb["analysis"]["aspects"]]
        assert ["服务", "店员", "服务态度"] in paths or ["服务", "等待", "排队时间"] in paths, paths
        w.data["aspect_path"] = next(p for p in paths if p[0] == "服务")
        w.done.add("analysed")

        def with_analysis() -> dict[str, Any] | None:
            d: dict[str, Any] = ok(gw.get(f"/api/v1/tickets/{w.ids['ticket']}"), 200)
            return d if d.get("analysis") else None

        detail = poll("the ticket to show the NLP analysis of its response", with_analysis, timeout=30)
        assert detail["source"] is not None and any(timer["kind"] == "first_response" for timer in detail["timers"])

        for unit in ("store", "region", "hq"):

            def counted(unit: str = unit) -> dict[str, Any] | None:
                o = ok(gw.get("/api/v1/analytics/overview", params={"org_unit_id": w.ids[unit]}), 200)
                return o if o["responses"] == 1 and o["detractors"] == 1 and o["tickets_created"] == 1 else None

            o = poll(f"the dashboard of {unit} to count the response + ticket", counted, timeout=30)
            assert o["nps"] == -100.0
        drill = ok(gw.get("/api/v1/analytics/drilldown", params={"org_unit_id": w.ids["region"]}), 200)
        by_unit = {i["org_unit_id"]: i for i in drill["items"]}
        assert by_unit[w.ids["store"]]["responses"] == 1
        assert by_unit.get(w.ids["store2"], {"responses": 0})["responses"] == 0


# ---------------------------------------------------------------------------------------------------------------
# 4. partner batch: transcripts and chats, invalid records, compliance alert


def test_4_partner_batch_with_invalid_records_and_a_compliance_violation(world: World) -> None:
    w = world
    w.need("setup")
    now = dt.datetime.now(dt.UTC).isoformat()
    batch = [
        {  # zh hotline transcript with a forbidden promise by the agent
            "external_id": "CALL-1",
            "channel": "hotline",
            "org_unit_id": w.ids["store"],
            "agent_id": "A-007",
            "customer_key": "C-2001",
            "occurred_at": now,
            "turns": [
                {"speaker": "agent", "text": "您好，这里是客服中心。"},
                {"speaker": "customer", "text": "我买的理财产品亏了，很不满意。"},
                {"speaker": "agent", "text": f"放心，我们{FORBIDDEN}，不会亏的。"},
            ],
        },
        {  # en chat
            "external_id": "CHAT-1",
            "channel": "chat",
            "language": "en",
            "org_unit_id": w.ids["store2"],
            "turns": [
                {"speaker": "customer", "text": "The staff was rude and the product arrived broken."},
                {"speaker": "agent", "text": "Hello, sorry about that, we will send a replacement."},
            ],
        },
        {
            "external_id": "NOTE-1",
            "channel": "crm",
            "text": "商品坏了，包装破损，客服电话13800138000",
            "org_unit_id": w.ids["store"],
        },
        {"channel": "chat", "text": "no external id"},  # invalid: external_id missing
        {"external_id": "BAD-CH", "channel": "fax", "text": "unknown channel"},  # invalid: channel
        {"external_id": "EMPTY", "channel": "chat"},  # invalid: neither text nor turns
    ]
    headers = {"Authorization": f"ApiKey {w.secrets['api_key']}", "Idempotency-Key": "batch-1"}
    with httpx.Client(base_url=w.stack.url("ingest"), timeout=30) as ingest:
        result = ok(ingest.post("/v1/feedback:batch", json={"items": batch}, headers=headers), 200, 201, 207)
        again = ingest.post("/v1/feedback:batch", json={"items": batch}, headers=headers)
        assert again.content == ingest.post("/v1/feedback:batch", json={"items": batch}, headers=headers).content
        assert (
            ingest.post(
                "/v1/feedback:batch",
                json={"items": batch},
                headers={"Authorization": "ApiKey cxk_0000000000000000_nope"},
            ).status_code
            == 401
        )
    by_index = {r["index"]: r for r in result["results"]}
    assert result["counts"] == {"total": 6, "accepted": 3, "duplicate": 0, "rejected": 3}, result
    assert [by_index[i]["status"] for i in range(6)] == ["accepted"] * 3 + ["rejected"] * 3
    assert any(e["field"].endswith("external_id") for e in by_index[3]["errors"]) or "external_id" in (
        by_index[3]["reason"] or ""
    )
    assert "channel" in repr(by_index[4])
    w.ids["call"] = str(by_index[0]["id"])

    with w.gw() as gw:

        def analysed() -> list[dict[str, Any]] | None:
            found = [
                f
                for f in items(gw.get("/api/v1/feedback", params={"limit": 100}))
                if f["partner_id"] == w.ids["partner"]
            ]
            return found if len(found) == 3 and all(f["analysis_state"] == "done" for f in found) else None

        found = {f["external_id"]: f for f in poll("the partner's feedback analysed", analysed, timeout=45)}
        assert found["CHAT-1"]["language"] == "en" and found["CHAT-1"]["sentiment"] == "negative"
        assert found["CALL-1"]["turns"][2]["speaker"] == "agent"
        assert "13800138000" not in found["NOTE-1"]["text"] and found["NOTE-1"]["redactions"]
        assert any(a["path"][:1] == ["商品"] for a in found["NOTE-1"]["analysis"]["aspects"])

        def compliance_alert() -> dict[str, Any] | None:
            alerts = items(gw.get("/api/v1/alerts", params={"limit": 100}))
            return next((a for a in alerts if repr(a).find(w.ids["call"]) >= 0), None)

        alert = poll("a compliance alert for the transcript", compliance_alert, timeout=30)
        assert alert["severity"] == "critical"
    with w.svc("alerts", "owner") as al:
        results = items(al.get("/v1/compliance/results", params={"limit": 50}))
        mine = [r for r in results if r["feedback_id"] == w.ids["call"]]
        assert len(mine) == 1 and not mine[0]["passed"]
        assert any(FORBIDDEN in repr(v) for v in mine[0]["violations"])
    w.done.add("partner")


# ---------------------------------------------------------------------------------------------------------------
# 5. escalation store → region → HQ on a shifted clock, then resolution with a callback, closed


def test_5_ticket_escalates_up_the_tree_then_is_resolved_with_a_callback_and_closed(world: World) -> None:
    w = world
    w.need("ticket")
    tid = w.ids["ticket"]
    # The alerts clock is CX_ALERTS_CLOCK_OFFSET_S (read at start): restart alerts with the clock moved past each
    # deadline. Timers are rows, so a restart fires them late rather than never.
    for level, (offset, unit, owner) in enumerate(
        ((1 * HOUR, "region", w.ids["user:region"]), (2 * HOUR, "hq", w.ids["admin"])), start=1
    ):
        w.stack.stop("alerts")
        w.stack.start("alerts", {"CX_ALERTS_CLOCK_OFFSET_S": str(offset)})
        with w.gw() as gw:

            def escalated(level: int = level) -> dict[str, Any] | None:
                x: dict[str, Any] = ok(gw.get(f"/api/v1/tickets/{tid}"), 200)
                return x if x["escalation_level"] == level else None

            t = poll(f"escalation to {unit}", escalated, timeout=30)
        assert t["assigned_org_unit_id"] == w.ids[unit] and t["owner_user_id"] == owner
        assert t["first_response_breached"] is True
    with w.gw() as gw:
        t = ok(gw.get(f"/api/v1/tickets/{tid}"), 200)
        for status in ("acknowledged", "in_progress"):
            t = ok(gw.post(f"/api/v1/tickets/{tid}/transitions", json={"status": status, "version": t["version"]}), 200)
        dist = ok(gw.get(f"/api/v1/surveys/{w.ids['survey']}/distributions"), 200)[0]
        callback = {"method": "call", "outcome": "resolved", "summary": "致电顾客道歉，赠送优惠券，顾客接受。"}
        follow_up = {"follow_up_survey": True, "follow_up_distribution_id": dist["id"]}
        ok(gw.post(f"/api/v1/tickets/{tid}/contacts", json={**callback, **follow_up}), 201)
        fu = poll(
            "the follow-up survey", lambda: items(gw.get("/api/v1/distributions/follow-ups", params={"ticket_id": tid}))
        )
        assert (fu[0]["status"], fu[0]["recipient_source"]) == ("scheduled", "original_invitation"), fu
        poll(
            "the follow-up at the webhook",
            lambda: [m for m in w.inbox.received if m["json"]["message_id"] == fu[0]["message_id"]],
        )
        t = ok(gw.get(f"/api/v1/tickets/{tid}"), 200)
        t = ok(
            gw.post(
                f"/api/v1/tickets/{tid}/transitions",
                json={
                    "status": "resolved",
                    "resolution_code": "apology",
                    "outcome": "顾客满意",
                    "version": t["version"],
                },
            ),
            200,
        )
        t = ok(gw.post(f"/api/v1/tickets/{tid}/transitions", json={"status": "closed", "version": t["version"]}), 200)
        assert t["status"] == "closed"
        detail = ok(gw.get(f"/api/v1/tickets/{tid}"), 200)
        assert [c["outcome"] for c in detail["contacts"]] == ["resolved"]
        assert detail["contacts"][0]["recorded_by"]
    w.done.add("closed")


# ---------------------------------------------------------------------------------------------------------------
# 6. improvement task from the aspect; audit trail


def test_6_improvement_task_is_approved_executed_and_accepted_and_audited(world: World) -> None:
    w = world
    w.need("analysed")
    path = w.data["aspect_path"]
    with w.gw("owner") as gw:  # the creator may not approve their own plan: HQ's owner creates, the admin approves
        task = ok(
            gw.post(
                "/api/v1/tasks",
                json={
                    "title": "改进店员服务态度",
                    "source_kind": "aspect",
                    "aspect_path": path,
                    "department_id": w.ids["dept"],
                    "assignee_user_id": w.ids["user:ops"],
                },
            ),
            201,
        )
    task_id = task["id"]
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (
            "ops",
            "submit",
            {"plan": "全员服务礼仪培训 + 高峰期加开收银台", "due_date": str(dt.date.today() + dt.timedelta(days=14))},
        ),
        ("admin", "approve", {"comment": "同意"}),
        ("ops", "start", {}),
        ("ops", "progress", {"note": "培训完成 50%", "progress_percent": 50}),
        ("ops", "complete", {}),
        ("admin", "accept", {"comment": "验收通过"}),
    ]
    for who, action, body in steps:
        with w.gw(who) as gw:
            current = ok(gw.get(f"/api/v1/tasks/{task_id}"), 200)
            payload = {**body, "version": current["version"]} if action != "progress" else body
            r = gw.post(f"/api/v1/tasks/{task_id}/{action}", json=payload)
            assert r.status_code in (200, 201), f"{who} {action}: {r.status_code} {r.text}"
    with w.gw() as gw:
        final = ok(gw.get(f"/api/v1/tasks/{task_id}"), 200)
        assert final["status"] == "accepted" and final["approver_id"] and final["verifier_id"]
        entries = items(gw.get("/api/v1/audit", params={"entity_id": task_id, "limit": 100}))
        actions = [e["action"] for e in entries]
        for expected in ("created", "submit", "approve", "start", "progress", "complete", "accept"):
            assert any(expected in a for a in actions), (expected, actions)
        by_action = {e["action"]: e for e in entries}
        assert all(e["actor_id"] and e["occurred_at"] for e in entries)
        who = {a: by_action[next(x for x in by_action if a in x)]["actor_id"] for a in ("submit", "approve", "accept")}
        assert who == {"submit": w.ids["user:ops"], "approve": w.ids["admin"], "accept": w.ids["admin"]}, who
        if "closed" in w.done:
            trail = items(gw.get("/api/v1/audit", params={"entity_id": w.ids["ticket"], "limit": 100}))
            acts = [e["action"] for e in trail]
            assert acts.count("escalated") == 2, acts
            for expected in ("created", "acknowledged", "in_progress", "contact", "resolved", "closed"):
                assert any(expected in a for a in acts), (expected, acts)
            assert any(e["actor_id"] == w.ids["admin"] for e in trail if "closed" in e["action"]), trail[-1]
        rule_trail = items(gw.get("/api/v1/audit", params={"entity_id": w.ids["rule"]}))
        assert any("created" in e["action"] for e in rule_trail)
        chain = ok(gw.get("/api/v1/audit/verify"), 200)
        assert chain["intact"] is True and chain["entries_checked"] > 10, chain
        history = ok(gw.get(f"/api/v1/codebooks/{w.ids['codebook']}/history"), 200)
        assert {h["action"] for h in (history["items"] if isinstance(history, dict) else history)} >= {"created"}
    with w.svc("survey") as sv:
        survey_trail = items(sv.get("/v1/audit", params={"limit": 100}))
        assert any("publish" in e["action"] for e in survey_trail), [e["action"] for e in survey_trail]


def test_6b_department_manager_sees_a_task_measured_at_hq_through_the_gateway(world: World) -> None:
    w = world
    w.need("analysed")
    body = {
        "title": "缩短排队时间",
        "source_kind": "aspect",
        "aspect_path": w.data["aspect_path"],
        "department_id": w.ids["dept"],
        "org_unit_id": w.ids["hq"],
    }
    with w.gw() as gw:
        task = ok(gw.post("/api/v1/tasks", json=body), 201)
    with w.svc("alerts", "ops") as al:
        ok(al.get(f"/v1/tasks/{task['id']}"), 200)  # alerts itself lets the department manager see it
    with w.gw("ops") as gw:
        ok(gw.get(f"/api/v1/tasks/{task['id']}"), 200)


# ---------------------------------------------------------------------------------------------------------------
# 7. scoping: the store manager sees only their store, HQ sees everything


def test_7_store_manager_sees_only_their_store_hq_sees_everything(world: World) -> None:
    w = world
    w.need("setup", "ticket")
    with w.gw() as gw:  # a ticket in the other store
        other = ok(
            gw.post("/api/v1/tickets", json={"title": "杭州店投诉", "priority": "P3", "org_unit_id": w.ids["store2"]}),
            201,
        )
    with w.gw("store") as gw:
        tickets = items(gw.get("/api/v1/tickets", params={"limit": 100}))
        assert {t["org_unit_id"] for t in tickets} == {w.ids["store"]}
        assert gw.get(f"/api/v1/tickets/{other['id']}").status_code in (403, 404)
        units = items(gw.get("/api/v1/org-units"))
        assert {str(u["id"]) for u in units} == {w.ids["store"]}
        assert gw.get("/api/v1/analytics/overview", params={"org_unit_id": w.ids["region"]}).status_code in (403, 404)
        feedback = items(gw.get("/api/v1/feedback", params={"limit": 100}))
        assert feedback and {f["org_unit_id"] for f in feedback} == {w.ids["store"]}
        assert ok(gw.get("/api/v1/analytics/overview"), 200)["responses"] == 1
    with w.gw("owner") as gw:
        tickets = items(gw.get("/api/v1/tickets", params={"limit": 100}))
        assert {w.ids["store"], w.ids["store2"]} <= {t["org_unit_id"] for t in tickets}
        units = {str(u["id"]) for u in items(gw.get("/api/v1/org-units", params={"limit": 100}))}
        assert {w.ids[k] for k in ("hq", "region", "store", "store2", "dept")} <= units
        if "partner" in w.done:
            feedback = items(gw.get("/api/v1/feedback", params={"limit": 100}))
            assert {w.ids["store"], w.ids["store2"]} <= {f["org_unit_id"] for f in feedback}


# ---------------------------------------------------------------------------------------------------------------
# secrets never reach the logs


def test_8_no_api_key_password_or_token_in_any_log(world: World) -> None:
    w = world
    w.need("setup")
    needles = {k: v for k, v in w.secrets.items() if v}
    assert any(k.startswith("jwt:") for k in needles) and "api_key" in needles
    hits = w.stack.find_in_logs(needles)
    assert sum(len(v) for v in w.stack.logs.values()) > 20  # the services did log
    assert hits == [], "\n".join(hits[:20])
