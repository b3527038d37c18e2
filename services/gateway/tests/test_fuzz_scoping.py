"""Property-based fuzzing of the gateway's own OpenAPI routes (no 5xx, schema-conformant answers, documented status
codes) over a real socket, and the scoping matrix: every demo role, every gateway-owned resource, out of scope → 404."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cx_gateway.analytics.models import Kpi
from cx_gateway.demo import DEMO_USERS
from cx_gateway.main import create_app
from cx_gateway.proxy.routes import ROUTES
from cx_gateway.settings import SCHEMA
from cx_local.fuzz import assert_fuzz_clean
from cx_local.pytest_plugin import live_server

SERVICE_DIR = Path(__file__).resolve().parents[1]

# forwarded resources belong to the owning services' own fuzz tests; the NLP playground needs a running nlp service
FORWARDED = "^/api/v1/(" + "|".join(re.escape(r.resource) for r in ROUTES) + ")(/.*)?$"
NOT_HERE = FORWARDED + r"|^/api/v1/nlp/analyze$|^/api/v1/auth/keys:rotate$"


async def test_fuzz_own_routes_with_an_admin_token(cx_service_db, cx_nats_url, cx_events, ev, tmp_path):
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = ev.make_settings(
        db.url,
        cx_nats_url,
        cx_events,
        rate_limit_per_minute=1_000_000,
        rate_limit_burst=100_000,
        nlp_grpc_target="127.0.0.1:9",
        nlp_timeout_s=1.0,
        survey_url="http://127.0.0.1:9",
        ingest_url="http://127.0.0.1:9",
        alerts_url="http://127.0.0.1:9",
    )
    app = create_app(settings)
    async with live_server(app) as url:
        from cx_gateway.demo import seed_demo

        async with app.state.runtime.sessions() as session, session.begin():
            await seed_demo(session, settings)
        import httpx

        async with httpx.AsyncClient() as http:
            login = await http.post(
                f"{url}/api/v1/auth/login",
                json={"tenant": "demo", "email": "admin@demo.cx", "password": "cx-demo-admin"},
            )
        token = login.json()["access_token"]
        await assert_fuzz_clean(
            url,
            headers={"Authorization": f"Bearer {token}"},
            max_examples=8,
            exclude_path_regex=NOT_HERE,
            report_dir=tmp_path,
            deadline_s=240,
        )


# -- scoping matrix ------------------------------------------------------------------------------------------------

# where each demo user sits, and the units of the demo tree under it
SUBTREE = {
    "HQ": {"HQ", "R-EAST", "R-SOUTH", "S-SH-01", "S-HZ-01", "S-GZ-01", "S-SZ-01", "D-CX"},
    "R-EAST": {"R-EAST", "S-SH-01", "S-HZ-01"},
    "S-SH-01": {"S-SH-01"},
    "S-GZ-01": {"S-GZ-01"},
}


@pytest.fixture
async def other_tenant(gw) -> dict[str, Any]:
    body = {"slug": "rival", "name": "Rival", "owner_email": "ceo@rival.cx", "owner_password": "rival-password-1"}
    secret = gw.settings.internal_secret.get_secret_value()
    created = await gw.client.post("/api/v1/tenants", json=body, headers={"X-Cx-Platform-Secret": secret})
    assert created.status_code == 201, created.text
    return {"root": created.json()["root_org_unit_id"]}


@pytest.mark.parametrize("email", [u[0] for u in DEMO_USERS])
async def test_every_role_sees_its_subtree_and_gets_404_outside(gw, demo, other_tenant, email):
    role, home = next((r, code) for e, _, r, code, _ in DEMO_USERS if e == email)
    headers = await gw.headers(email)
    inside = SUBTREE[home]
    async with gw.app.state.runtime.sessions() as session:
        kpi_id = await session.scalar(select(Kpi.id).where(Kpi.tenant_id == demo.tenant_id))
    checked = 0
    for code, unit in [*demo.units.items(), ("rival-root", uuid.UUID(other_tenant["root"]))]:
        expected = 200 if code in inside else 404
        unit_q = {"org_unit_id": str(unit)}
        for path, params in [
            (f"/api/v1/org-units/{unit}", None),
            ("/api/v1/analytics/overview", unit_q),
            ("/api/v1/analytics/drilldown", unit_q),
            ("/api/v1/analytics/breakdown", {**unit_q, "by": "day"}),
            ("/api/v1/analytics/aspects", unit_q),
            ("/api/v1/analytics/terms", unit_q),
            (f"/api/v1/kpis/{kpi_id}/values", unit_q),
            ("/api/v1/org-units", {"parent_id": str(unit)}),
        ]:
            r = await gw.client.get(path, params=params, headers=headers)
            if r.status_code == 403:  # the role lacks the scope altogether: no existence leak either
                assert r.json()["status"] == 403
                continue
            assert r.status_code == expected, (email, code, path, r.status_code, r.text[:200])
            if expected == 404:
                assert r.headers["content-type"] == "application/problem+json"
            checked += 1
    for user_email, user_id in demo.users.items():
        home_of_user = next(code for e, _, _, code, _ in DEMO_USERS if e == user_email)
        r = await gw.client.get(f"/api/v1/users/{user_id}", headers=headers)
        if r.status_code == 403:
            continue
        assert r.status_code == (200 if home_of_user in inside else 404), (email, user_email, r.text[:200])
        checked += 1
    # listing never shows anything outside the subtree
    listed = await gw.client.get("/api/v1/org-units", params={"limit": 100}, headers=headers)
    if listed.status_code == 200:
        codes = {u["code"] for u in listed.json()["items"]}
        assert codes == inside, (email, codes)
    users = await gw.client.get("/api/v1/users", params={"limit": 100}, headers=headers)
    if users.status_code == 200:
        homes = {next(c for e, _, _, c, _ in DEMO_USERS if e == u["email"]) for u in users.json()["items"]}
        assert homes <= inside, (email, homes)
    # writes on units outside the subtree are 404 too (for roles allowed to write the org tree at all)
    for code, unit in demo.units.items():
        if code in inside:
            continue
        r = await gw.client.patch(f"/api/v1/org-units/{unit}", json={"name": "hijacked"}, headers=headers)
        assert r.status_code in (403, 404), (email, code, r.status_code)
        if role in ("owner", "admin"):
            assert r.status_code == 404
    assert checked > 10
