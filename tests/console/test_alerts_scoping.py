"""The gateway's own scope check on forwarded answers agrees with how the owning service scopes each resource, here
against the real alerts service on a loopback socket (org tree and users reach it through JetStream, as in the
stack): an improvement task belongs to its owner department even when its metric is measured at HQ."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from cx_gateway.demo import DEMO_USERS, demo_password

LEAD = "cx.lead@demo.cx"
LEAD_PASSWORD = "cx-lead-password-1"


@pytest.fixture
async def stack(alerts_and_gateway, ev) -> AsyncIterator[SimpleNamespace]:
    async with alerts_and_gateway() as (gateway, alerts_url):
        demo = gateway.demo
        async with httpx.AsyncClient(base_url=gateway.url, timeout=20) as http:

            async def login(email: str, password: str | None = None) -> dict[str, str]:
                role = next(r for e, _, r, _, _ in DEMO_USERS if e == email) if password is None else ""
                r = await http.post(
                    "/api/v1/auth/login",
                    json={"tenant": "demo", "email": email, "password": password or demo_password(role)},
                )
                assert r.status_code == 200, r.text
                return {"Authorization": f"Bearer {r.json()['access_token']}"}

            admin = await login("admin@demo.cx")
            lead = await http.post(
                "/api/v1/users",
                headers=admin,
                json={
                    "email": LEAD,
                    "display_name": "CX lead",
                    "password": LEAD_PASSWORD,
                    "role": "manager",
                    "org_unit_id": str(demo.units["D-CX"]),
                },
            )
            assert lead.status_code == 201, lead.text

            async def alerts_knows_everyone() -> bool:
                units = await http.get(f"{alerts_url}/v1/org-units", headers=admin)
                return units.status_code == 200 and len(units.json()) >= 8

            await ev.until(alerts_knows_everyone, 30)
            yield SimpleNamespace(http=http, demo=demo, login=login, alerts_url=alerts_url, ev=ev)


async def _eventually(ev: Any, call: Any, status: int) -> httpx.Response:
    """Alerts learns about a new user through JetStream: retry until it answers `status`."""
    last: list[httpx.Response] = []

    async def check() -> bool:
        last[:] = [await call()]
        return last[0].status_code == status

    try:
        await ev.until(check, 15)
    except AssertionError:
        raise AssertionError(f"expected {status}, the last answer: {last[0].status_code} {last[0].text}") from None
    return last[0]


async def test_a_task_measured_at_hq_is_visible_to_its_department_through_the_gateway(stack):
    http, units = stack.http, stack.demo.units
    owner, admin = await stack.login("owner@demo.cx"), await stack.login("admin@demo.cx")
    created = await http.post(
        "/api/v1/tasks",
        headers=owner,
        json={
            "title": "缩短排队时间 shorter queues",
            "source_kind": "aspect",
            "aspect_path": ["服务", "排队"],
            "department_id": str(units["D-CX"]),
            "org_unit_id": str(units["HQ"]),  # the metric is measured tenant-wide
        },
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["org_unit_id"] == str(units["HQ"]) and task["department_id"] == str(units["D-CX"])
    submitted = await http.post(
        f"/api/v1/tasks/{task['id']}/submit",
        headers=admin,  # the department's manager in the demo tree, so the assignee
        json={
            "plan": "加开收银台 open more tills",
            "due_date": str(dt.date.today() + dt.timedelta(days=14)),
            "version": task["version"],
        },
    )
    assert submitted.status_code == 200, submitted.text

    lead = await stack.login(LEAD, LEAD_PASSWORD)
    one = await _eventually(stack.ev, lambda: http.get(f"/api/v1/tasks/{task['id']}", headers=lead), 200)
    assert one.json()["id"] == task["id"]
    listed = (await http.get("/api/v1/tasks", headers=lead)).json()["items"]
    assert task["id"] in {t["id"] for t in listed}
    approved = await http.post(
        f"/api/v1/tasks/{task['id']}/approve",
        headers=lead,
        json={"comment": "同意 ok", "version": submitted.json()["version"]},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    # a store manager is neither in the department nor above it: 404, not listed, cannot act on it
    store = await stack.login("store.manager@demo.cx")
    assert (await http.get(f"/api/v1/tasks/{task['id']}", headers=store)).status_code == 404
    assert task["id"] not in {t["id"] for t in (await http.get("/api/v1/tasks", headers=store)).json()["items"]}
    forged = await http.post(
        f"/api/v1/tasks/{task['id']}/start", headers=store, json={"version": approved.json()["version"]}
    )
    assert forged.status_code == 404 and forged.headers["content-type"] == "application/problem+json"
    state = (await http.get(f"/api/v1/tasks/{task['id']}", headers=owner)).json()
    assert state["status"] == "approved"


async def test_tickets_follow_their_store_for_every_role(stack):
    http, units = stack.http, stack.demo.units
    owner = await stack.login("owner@demo.cx")
    ids = {}
    for code in ("S-SH-01", "S-GZ-01"):
        r = await http.post(
            "/api/v1/tickets",
            headers=owner,
            json={"title": f"投诉 {code}", "priority": "P3", "org_unit_id": str(units[code])},
        )
        assert r.status_code == 201, r.text
        ids[code] = r.json()["id"]
    for email, sees in (
        ("owner@demo.cx", {"S-SH-01", "S-GZ-01"}),
        ("analyst@demo.cx", {"S-SH-01", "S-GZ-01"}),
        ("east.manager@demo.cx", {"S-SH-01"}),
        ("store.manager@demo.cx", {"S-SH-01"}),
        ("agent@demo.cx", {"S-SH-01"}),
        ("viewer@demo.cx", {"S-GZ-01"}),
    ):
        headers = await stack.login(email)
        listed = {t["id"] for t in (await http.get("/api/v1/tickets?limit=100", headers=headers)).json()["items"]}
        for code, ticket_id in ids.items():
            assert (ticket_id in listed) == (code in sees), (email, code)
            one = await http.get(f"/api/v1/tickets/{ticket_id}", headers=headers)
            assert one.status_code == (200 if code in sees else 404), (email, code)
