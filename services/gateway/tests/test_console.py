"""Console pages over real HTTP (ASGI): login form, cookies, scoped dashboard with drill-down, three languages."""

import datetime as dt
import re
from typing import Any

import pytest

from cx_common.auth import JWTVerifier
from cx_gateway.console.i18n import LANGUAGES, MESSAGES


def test_catalogue_is_complete_in_all_three_languages():
    keys = set(MESSAGES["en"])
    for lang in LANGUAGES:
        assert set(MESSAGES[lang]) == keys, lang
        assert all(MESSAGES[lang][k].strip() for k in keys)
    assert MESSAGES["zh-Hans"]["nav.tickets"] != MESSAGES["zh-Hant"]["nav.feedback"]


@pytest.fixture
def gateway_overrides(upstream) -> dict[str, Any]:
    return {"alerts_url": upstream[1], "ingest_url": "http://127.0.0.1:9"}


@pytest.fixture
def ingest_too(gateway_overrides, upstream) -> None:
    gateway_overrides["ingest_url"] = upstream[1]


async def console_login(gw, email: str, password: str, lang: str = "en"):
    r = await gw.client.post(
        "/console/login", data={"tenant": "demo", "email": email, "password": password, "lang": lang}
    )
    return r


async def test_login_page_and_wrong_password(gw, demo):
    page = await gw.client.get("/console/login?lang=zh-Hant")
    assert page.status_code == 200 and "登入" in page.text and "簡體" not in page.text
    bad = await console_login(gw, "owner@demo.cx", "nope")
    assert bad.status_code == 401 and "invalid credentials" in bad.text
    unauth = await gw.client.get("/console")
    assert unauth.status_code == 303 and unauth.headers["location"].startswith("/console/login")
    # every page and form without a session goes to the login page, keeping the language
    for method, path in [
        ("GET", "/console/tickets/0190a4c2-0000-7000-8000-000000000001?lang=en"),
        ("GET", "/console/api-tokens?lang=en"),
        ("POST", "/console/surveys?lang=en"),
    ]:
        data = {"csrf": "0" * 64, "title": "t", "template": "nps"} if method == "POST" else None
        r = await gw.client.request(method, path, data=data)
        assert r.status_code == 303 and r.headers["location"] == "/console/login?lang=en", (path, r.status_code)


async def test_hq_dashboard_drilldown_and_languages(gw, loaded):
    r = await console_login(gw, "owner@demo.cx", "cx-demo-owner", lang="zh-Hans")
    assert r.status_code == 303 and "cx_access" in r.cookies
    home = await gw.client.get(r.headers["location"])
    assert home.status_code == 200
    assert "体验仪表盘" in home.text and 'id="m-responses">5<' in home.text
    assert "华东区 East" in home.text and "华南区 South" in home.text
    kpis = re.search(r'<section class="tiles" id="kpis">(.*?)</section>', home.text, re.S).group(1)
    assert "体验指数 CX index" in kpis and re.search(r"<b>0\.48[78]</b>", kpis)
    east = re.search(r'href="/console\?org_unit_id=([0-9a-f-]+)">华东区 East', home.text)
    assert east, home.text
    drilled = await gw.client.get(f"/console?org_unit_id={east.group(1)}&lang=en")
    assert "Experience dashboard" in drilled.text and 'id="m-responses">3<' in drilled.text
    assert "上海南京路店" in drilled.text and "广州天河店" not in drilled.text
    assert "Up one level" in drilled.text
    hant = await gw.client.get("/console?lang=zh-Hant")
    assert "體驗儀表板" in hant.text and "情感分佈" in hant.text
    # the language choice sticks
    assert "體驗儀表板" in (await gw.client.get("/console")).text
    # aspect tree: level 1 -> level 2 -> level 3
    level2 = await gw.client.get("/console?aspect=服务")
    assert "态度" in level2.text and "速度" in level2.text and "产品" not in level2.text.split("aspect-crumbs")[1]
    level3 = await gw.client.get("/console?aspect=服务 > 态度")
    assert "冷漠" in level3.text


async def test_store_manager_console_is_scoped(gw, loaded):
    await console_login(gw, "store.manager@demo.cx", "cx-demo-manager")
    home = await gw.client.get("/console")
    assert 'id="m-responses">2<' in home.text and "上海南京路店" in home.text
    assert "华南区" not in home.text and "广州" not in home.text
    other = await gw.client.get(f"/console?org_unit_id={loaded.units['S-GZ-01']}")
    assert other.status_code == 404


async def test_ticket_inbox_handling_a_ticket_and_upstream_failure_shown(gw, demo, upstream):
    up, _ = upstream
    up.verifier = JWTVerifier(
        issuer="cx-gateway", audience="cx", jwks=(await gw.client.get("/api/v1/auth/jwks")).json()
    )
    due = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3, minutes=30)).isoformat()
    late = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    up.tickets = [
        {
            "id": "T-1",
            "org_unit_id": str(demo.units["S-SH-01"]),
            "title": "空调太冷",
            "status": "open",
            "resolution_due": due,
        },
        {
            "id": "T-2",
            "org_unit_id": str(demo.units["S-GZ-01"]),
            "title": "Refund late",
            "status": "open",
            "resolution_due": late,
        },
    ]
    await console_login(gw, "store.manager@demo.cx", "cx-demo-manager")
    inbox = await gw.client.get("/console/tickets?lang=en")
    assert inbox.status_code == 200 and "Ticket inbox" in inbox.text
    assert "空调太冷" in inbox.text and "Refund late" not in inbox.text
    assert re.search(r"3h (29|30)m", inbox.text)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', inbox.text).group(1)
    assert 'action="/console/tickets/T-1/resolved"' in inbox.text
    forged = await gw.client.post("/console/tickets/T-1/resolved", data={"csrf": "0" * 32})
    assert forged.status_code == 403 and up.tickets[0]["status"] == "open"
    # another store's ticket cannot be handled from here either
    other = await gw.client.post("/console/tickets/T-2/resolved", data={"csrf": csrf})
    assert other.status_code == 303 and other.headers["location"].endswith("flash=failed")
    assert up.tickets[1]["status"] == "open"
    done = await gw.client.post("/console/tickets/T-1/resolved", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/console/tickets?flash=done"
    assert up.tickets[0]["status"] == "resolved"
    assert up.tickets[0]["handled_by"] == str(demo.users["store.manager@demo.cx"])
    after = await gw.client.get(done.headers["location"])
    assert "Done." in after.text and 'action="/console/tickets/T-1/resolved"' not in after.text
    feedback = await gw.client.get("/console/feedback")
    assert feedback.status_code == 200 and "Could not load data" in feedback.text
    # filters travel to the owning service; unknown values are dropped
    await gw.client.get("/console/tickets?status=open&priority=P9")
    assert up.seen[-1]["query"] == {"limit": "50", "status": "open"}


async def test_logout_clears_the_session(gw, demo):
    await console_login(gw, "viewer@demo.cx", "cx-demo-viewer")
    assert (await gw.client.get("/console")).status_code == 200
    out = await gw.client.post("/console/logout")
    assert out.status_code == 303
    gw.client.cookies.clear()
    assert (await gw.client.get("/console")).status_code == 303


async def test_org_page_is_scoped(gw, demo):
    await console_login(gw, "east.manager@demo.cx", "cx-demo-manager")
    page = await gw.client.get("/console/org?lang=zh-Hant")
    assert page.status_code == 200 and "組織架構與使用者" in page.text
    assert "上海南京路店" in page.text and "广州天河店" not in page.text
    assert "store.manager@demo.cx" in page.text and "viewer@demo.cx" not in page.text


async def test_api_keys_page_creates_shows_once_and_revokes(gw, demo):
    await console_login(gw, "admin@demo.cx", "cx-demo-admin")
    page = await gw.client.get("/console/api-tokens?lang=en")
    assert page.status_code == 200 and "API keys for frontend apps" in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    form = {"csrf": csrf, "name": "kiosk", "role": "viewer", "org_unit_id": str(demo.units["S-HZ-01"])}
    created = await gw.client.post("/console/api-tokens", data=form)
    assert created.status_code == 201
    secret = re.search(r'id="new-token">(cxat_[^<]+)<', created.text).group(1)
    me = await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["org_unit_id"] == str(demo.units["S-HZ-01"])
    listed = await gw.client.get("/console/api-tokens")
    assert secret not in listed.text and "kiosk" in listed.text
    owner_grant = await gw.client.post("/console/api-tokens", data={**form, "role": "owner"})
    assert owner_grant.status_code == 422
    assert (await gw.client.post("/console/api-tokens", data={**form, "csrf": "0" * 32})).status_code == 403
    token_id = re.search(r'action="/console/api-tokens/([0-9a-f-]+)/revoke"', listed.text).group(1)
    revoked = await gw.client.post(f"/console/api-tokens/{token_id}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 303
    after = await gw.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert after.status_code == 401


async def test_expired_console_session_is_renewed_from_the_refresh_cookie(gw, demo):
    await console_login(gw, "viewer@demo.cx", "cx-demo-viewer")
    old_refresh = gw.client.cookies.get("cx_refresh", path="/console")
    gw.client.cookies.delete("cx_access")
    page = await gw.client.get("/console")
    assert page.status_code == 200 and "cx_access" in page.cookies
    assert page.cookies.get("cx_refresh") != old_refresh  # rotated
    # the old refresh token is spent: presenting it again revokes the session
    r = await gw.client.post("/api/v1/auth/refresh", json={"refresh_token": old_refresh})
    assert r.status_code == 401


async def test_dashboard_ranks_clusters_for_tenant_wide_viewers_only(ingest_too, gw, demo, upstream):
    up, _ = upstream
    up.verifier = JWTVerifier(
        issuer="cx-gateway", audience="cx", jwks=(await gw.client.get("/api/v1/auth/jwks")).json()
    )
    up.cluster_runs = [
        {
            "id": "run-1",
            "clusters": [
                {"rank": 1, "size": 12, "keywords": [{"text": "停车"}, {"text": "parking"}]},
                {"rank": 0, "size": 40, "keywords": [{"text": "排队"}, {"text": "结账"}]},
            ],
        }
    ]
    await console_login(gw, "analyst@demo.cx", "cx-demo-analyst")
    home = await gw.client.get("/console")
    ranked = re.search(r'<ol id="clusters">(.*?)</ol>', home.text, re.S).group(1)
    assert ranked.index("排队 · 结账") < ranked.index("停车 · parking")
    gw.client.cookies.clear()
    await console_login(gw, "store.manager@demo.cx", "cx-demo-manager")
    assert 'id="clusters"' not in (await gw.client.get("/console")).text
