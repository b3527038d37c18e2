import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cx.events.v1 import events_pb2
from cx_common.auth import JWTVerifier
from cx_gateway.demo import DemoResult, demo_password, seed_demo
from cx_gateway.main import create_app
from cx_gateway.settings import SCHEMA, Settings
from cx_local.ports import free_port
from cx_local.pytest_plugin import app_client

sys.path.insert(0, str(Path(__file__).parent))
from gateway_testkit import TODAY, event_kit, feedback, make_settings, publish, response, until

SERVICE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: FastAPI
    settings: Settings
    db_admin_url: str

    async def seed_demo(self) -> DemoResult:
        async with self.app.state.runtime.sessions() as session, session.begin():
            return await seed_demo(session, self.settings)

    async def login(self, email: str, password: str | None = None, tenant: str = "demo") -> dict[str, Any]:
        role = email.split("@")[0].split(".")[-1] if password is None else ""
        body = {"tenant": tenant, "email": email, "password": password or demo_password(_role_of(email, role))}
        response = await self.client.post("/api/v1/auth/login", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def headers(self, email: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {(await self.login(email))['access_token']}"}


def _role_of(email: str, fallback: str) -> str:
    from cx_gateway.demo import DEMO_USERS

    for e, _, role, _, _ in DEMO_USERS:
        if e == email:
            return role
    return fallback


@pytest.fixture
def gateway_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def gw(cx_service_db, cx_nats_url, cx_events, gateway_overrides) -> AsyncIterator[Gateway]:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = make_settings(db.url, cx_nats_url, cx_events, **gateway_overrides)
    app = create_app(settings)
    async with app_client(app) as client:
        yield Gateway(client=client, app=app, settings=settings, db_admin_url=db.admin_url)


@pytest.fixture
async def demo(gw: Gateway) -> DemoResult:
    return await gw.seed_demo()


class Upstream:
    def __init__(self) -> None:
        self.app = FastAPI()
        self.seen: list[dict[str, Any]] = []
        self.verifier: JWTVerifier | None = None
        self.tickets: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.calendars: list[dict[str, Any]] = []
        self.cluster_runs: list[dict[str, Any]] = []
        app = self.app

        async def who(request: Request) -> dict[str, Any]:
            assert self.verifier is not None
            token = request.headers["authorization"].split(" ", 1)[1]
            principal = await self.verifier.verify(token)
            self.seen.append({"headers": dict(request.headers), "query": dict(request.query_params)})
            return {"sub": principal.user_id, "org": principal.org_unit_id, "role": principal.role}

        @app.get("/v1/tickets")
        async def list_tickets(request: Request, limit: int = 2, cursor: str | None = None) -> dict[str, Any]:
            await who(request)
            start = int(cursor or 0)
            page = self.tickets[start : start + limit]
            nxt = str(start + limit) if start + limit < len(self.tickets) else None
            return {"items": page, "next_cursor": nxt}

        @app.get("/v1/tickets/slow")
        async def slow() -> dict[str, str]:
            await asyncio.sleep(1.5)
            return {}

        @app.get("/v1/tickets/boom")
        async def boom() -> JSONResponse:
            return JSONResponse({"detail": "kaput"}, status_code=500)

        @app.get("/v1/tickets/{ticket_id}")
        async def get_ticket(ticket_id: str, request: Request) -> JSONResponse:
            await who(request)
            for t in self.tickets:
                if t["id"] == ticket_id:
                    return JSONResponse(t)
            return JSONResponse(
                {"type": "about:blank", "status": 404, "title": "Not Found", "detail": "no such ticket"},
                status_code=404,
                media_type="application/problem+json",
            )

        @app.get("/v1/clusters/runs")
        async def cluster_runs(request: Request) -> list[dict[str, Any]]:
            await who(request)
            return self.cluster_runs

        @app.post("/v1/tickets/{ticket_id}/transitions")
        async def transition(ticket_id: str, request: Request) -> JSONResponse:
            caller = await who(request)
            body = await request.json()
            for t in self.tickets:
                if t["id"] == ticket_id:
                    t.update(status=body["status"], handled_by=caller["sub"])
                    return JSONResponse(t)
            return JSONResponse({"status": 404, "detail": "no such ticket"}, status_code=404)

        def not_found() -> JSONResponse:
            return JSONResponse(
                {"type": "about:blank", "status": 404, "title": "Not Found", "detail": "no such item"},
                status_code=404,
                media_type="application/problem+json",
            )

        # like alerts: a task is listed for callers at or above its owner department (its `org_unit_id` is where
        # its metric is measured and does not matter for visibility)
        def task_visible(task: dict[str, Any], org: str | None) -> bool:
            return org is None or org in task["department_path"]

        @app.get("/v1/tasks")
        async def list_tasks(request: Request) -> dict[str, Any]:
            caller = await who(request)
            return {"items": [t for t in self.tasks if task_visible(t, caller["org"])], "next_cursor": None}

        @app.get("/v1/tasks/{task_id}")
        async def get_task(task_id: str, request: Request) -> JSONResponse:
            caller = await who(request)
            for t in self.tasks:
                if t["id"] == task_id and task_visible(t, caller["org"]):
                    return JSONResponse(t)
            return not_found()

        @app.post("/v1/tasks/{task_id}/approve")
        async def approve_task(task_id: str, request: Request) -> JSONResponse:
            caller = await who(request)
            for t in self.tasks:
                if t["id"] == task_id and task_visible(t, caller["org"]):
                    t.update(status="approved", approver_id=caller["sub"])
                    return JSONResponse(t)
            return not_found()

        @app.get("/v1/audit")
        async def audit(request: Request, entity_id: str | None = None) -> dict[str, Any]:
            await who(request)  # like alerts: the trail is tenant-wide, not scoped by org unit
            entries = [{"id": i, "entity_id": t["id"], "action": "created"} for i, t in enumerate(self.tickets)]
            return {"items": [e for e in entries if entity_id in (None, e["entity_id"])], "next_cursor": None}

        @app.get("/v1/calendars")
        async def list_calendars(request: Request) -> list[dict[str, Any]]:
            await who(request)  # like alerts: every business calendar of the tenant
            return self.calendars

        @app.post("/v1/tickets")
        async def create(request: Request) -> JSONResponse:
            caller = await who(request)
            body = await request.json()
            return JSONResponse({**body, "created_by": caller}, status_code=201, headers={"Location": "/v1/tickets/x"})


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    up = Upstream()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(up.app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.02)
    yield up, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def loaded(gw, demo):
    u, t = demo.units, demo.tenant_id
    events = [
        ("survey.response.submitted", response(u["S-SH-01"], 10, csat=5.0, customer="c1")),
        ("survey.response.submitted", response(u["S-SH-01"], 9, customer="c2")),
        ("survey.response.submitted", response(u["S-HZ-01"], 3, csat=2.0, customer="c3")),
        ("survey.response.submitted", response(u["S-GZ-01"], 0, touchpoint="tp-delivery", customer="c1")),
        ("survey.response.submitted", response(u["S-SZ-01"], 8)),
        (
            "feedback.analyzed",
            feedback(
                u["S-SH-01"],
                "negative",
                [(("服务", "态度", "冷漠"), "negative")],
                ["排队", "态度"],
                complaint=True,
                need="pain",
            ),
        ),
        ("feedback.analyzed", feedback(u["S-SH-01"], "positive", [(("服务", "速度"), "positive")], ["fast"])),
        (
            "feedback.analyzed",
            feedback(u["S-GZ-01"], "negative", [(("产品", "质量"), "negative")], ["broken"], complaint=True),
        ),
        (
            "odata.upserted",
            events_pb2.ODataUpserted(kind="customers", customer_key="c1", attributes={"segment": "vip"}),
        ),
        (
            "odata.upserted",
            events_pb2.ODataUpserted(kind="customers", customer_key="c3", attributes={"segment": "new"}),
        ),
    ]
    ticket = events_pb2.TicketChanged(ticket_id="tk1", status="open", priority="P1", org_unit_id=str(u["S-SH-01"]))
    ticket.created_at.FromDatetime(TODAY)
    ticket2 = events_pb2.TicketChanged(ticket_id="tk2", status="open", priority="P2", org_unit_id=str(u["S-GZ-01"]))
    ticket2.created_at.FromDatetime(TODAY)
    resolved = events_pb2.TicketChanged(ticket_id="tk1", status="resolved", org_unit_id=str(u["S-SH-01"]))
    resolved.resolved_at.FromDatetime(TODAY)
    events += [
        ("ticket.created", ticket),
        ("ticket.created", ticket2),
        ("ticket.resolved", resolved),
        ("task.created", events_pb2.TaskChanged(task_id="k1", status="created", org_unit_id=str(u["D-CX"]))),
    ]
    for event_type, payload in events:
        await publish(gw, event_type, payload, t)
    headers = await gw.headers("owner@demo.cx")

    async def caught_up():
        body = (await gw.client.get("/api/v1/analytics/overview", headers=headers)).json()
        return (
            body
            if body["responses"] == 5
            and body["feedback"] == 3
            and body["tickets_resolved"] == 1
            and body["tasks_created"] == 1
            else None
        )

    await until(caught_up)

    # O-data lands too (separate rows): wait for the fusion to see it
    async def odata():
        r = await gw.client.get("/api/v1/analytics/fusion?attribute=segment", headers=headers)
        return {i["value"] for i in r.json()["items"]} >= {"vip", "new"}

    await until(odata)
    return demo


@pytest.fixture
def ev() -> Any:
    return event_kit()
