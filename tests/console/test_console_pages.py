"""Every console page, in all three languages, against the real survey, ingest and alerts services (each on its own
loopback socket and database, one JetStream) with the demo tenant's sample data loaded through their APIs; ingest
analyses feedback with the real NLP service (`cx-nlp` with its tiny model: the `cx_nlp_grpc` fixture of cx_local).
HQ sees everything and edits through the console (survey editor, codebook editor, rules, partner keys, tickets,
org units and users); a store manager sees only their store and is refused the rest."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from markupsafe import escape

from cx_gateway.console.i18n import LANGUAGES, MESSAGES
from cx_gateway.demo import demo_password
from cx_gateway.demo_data import DemoPlan, load_demo_data

SERVICE_DIR = Path(__file__).resolve().parents[2] / "services" / "gateway"
SERVICES = SERVICE_DIR.parent


@pytest.fixture
async def stack(demo_platform, ev, cx_nlp_grpc) -> AsyncIterator[SimpleNamespace]:
    async with demo_platform(nlp_grpc_target=cx_nlp_grpc, analysis_poll_interval_s=0.2) as platform:
        demo, token = platform.demo, platform.token
        plan = DemoPlan(responses=40, feedback=30, customers=15, orders=20, concurrency=4)
        sessions = platform.gw_app.state.runtime.sessions
        await load_demo_data(sessions, demo.tenant_id, demo.units, demo.users, token, platform.upstream, plan, None)
        api = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=platform.gw_url, timeout=30) as http:

            async def analysed() -> bool:  # the demo's feedback went through NLP and reached the read model
                r = await http.get("/api/v1/analytics/overview", headers=api)
                return r.json()["feedback"] >= 30 and r.json()["responses"] >= 40

            await ev.until(analysed, 120)
            yield SimpleNamespace(url=platform.gw_url, demo=demo, api=api, http=http)


async def _console(base: str, email: str, role: str, lang: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    r = await client.post(
        "/console/login", data={"tenant": "demo", "email": email, "password": demo_password(role), "lang": lang}
    )
    assert r.status_code == 303, r.text
    return client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no form on the page"
    return found.group(1)


PAGES = [
    ("/console", "dash.title"),
    ("/console/tickets", "tickets.title"),
    ("/console/feedback", "feedback.title"),
    ("/console/tasks", "tasks.title"),
    ("/console/surveys", "surveys.title"),
    ("/console/codebooks", "codebooks.title"),
    ("/console/rules", "rules.title"),
    ("/console/partners", "partners.title"),
    ("/console/org", "org.title"),
    ("/console/api-tokens", "tokens.title"),
    ("/console/audit", "audit.title"),
]


async def _page(client: httpx.AsyncClient, path: str, lang: str, status: int = 200) -> str:
    sep = "&" if "?" in path else "?"
    r = await client.get(f"{path}{sep}lang={lang}")
    assert r.status_code == status, (path, lang, r.status_code, r.text[:300])
    if status == 200:
        assert f'<html lang="{lang}">' in r.text, path
        assert MESSAGES[lang]["list.upstream_error"] not in r.text, (path, lang)
    return r.text


async def test_every_page_in_three_languages_for_hq_and_a_store_manager(stack):
    http, api, units = stack.http, stack.api, stack.demo.units
    tickets = (await http.get("/api/v1/tickets", params={"limit": 100}, headers=api)).json()["items"]
    feedback = (await http.get("/api/v1/feedback", params={"limit": 100}, headers=api)).json()["items"]
    surveys = (await http.get("/api/v1/surveys", headers=api)).json()["items"]
    partners = (await http.get("/api/v1/partners", headers=api)).json()["items"]
    analysed = next(f for f in feedback if f["analysis_state"] == "done" and f["analysis"]["keywords"])
    details = [
        (f"/console/tickets/{tickets[0]['id']}", "ticket.history"),
        (f"/console/feedback/{analysed['id']}", "feedback.analysis"),
        (f"/console/surveys/{surveys[0]['id']}", "survey.results"),
        (f"/console/partners/{partners[0]['id']}", "partner.keys"),
    ]
    owner = await _console(stack.url, "owner@demo.cx", "owner", "en")
    for lang in LANGUAGES:
        for path, title in PAGES + details:
            text = await _page(owner, path, lang)
            assert MESSAGES[lang][title] in text, (path, lang)
        dashboard = await _page(owner, "/console", lang)
        for key in ("dash.fusion_segment", "dash.intents", "dash.competitors", "dash.freshness", "dash.formula"):
            assert MESSAGES[lang][key] in dashboard, (key, lang)
    dashboard = await _page(owner, "/console", "en")
    assert re.search(r'id="fusion".*?(vip|regular|new)', dashboard, re.S)  # customer segments from the demo O-data
    item = await _page(owner, f"/console/feedback/{analysed['id']}", "zh-Hans")
    analysis = analysed["analysis"]
    assert str(escape(analysed["text"][:10])) in item and analysis["model_version"] in item
    assert MESSAGES["zh-Hans"][f"sentiment.{analysis['sentiment']}"] in item.split('id="analysis-sentiment"')[1][:200]
    assert all(str(escape(k["text"])) in item for k in analysis["keywords"])
    for aspect in analysis["aspects"]:
        assert str(escape(" › ".join(aspect["path"]))) in item
    survey = await _page(owner, f"/console/surveys/{surveys[0]['id']}", "en")
    since = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=364)).isoformat()
    results = (await http.get(f"/api/v1/analytics/surveys/{surveys[0]['id']}?from={since}", headers=api)).json()
    assert f'id="r-responses">{results["responses"]}<' in survey and results["responses"] > 0
    inbox = await _page(owner, "/console/tickets", "en")
    assert f'href="/console/tickets/{tickets[0]["id"]}"' in inbox
    await owner.aclose()

    # a store manager: their store only; tenant-wide and admin pages refused
    store = await _console(stack.url, "store.manager@demo.cx", "manager", "zh-Hans")
    mine = {t["id"] for t in tickets if t["org_unit_id"] == str(units["S-SH-01"])}
    other_ticket = next(t for t in tickets if t["org_unit_id"] != str(units["S-SH-01"]))
    other_item = next(f for f in feedback if f["org_unit_id"] not in ("", str(units["S-SH-01"])))
    for lang in LANGUAGES:
        inbox = await _page(store, "/console/tickets", lang)
        assert set(re.findall(r'href="/console/tickets/([0-9a-f-]{36})"', inbox)) == mine
        await _page(store, f"/console/tickets/{other_ticket['id']}", lang, status=404)
        await _page(store, f"/console/feedback/{other_item['id']}", lang, status=404)
        audit = await _page(store, "/console/audit", lang)
        assert MESSAGES[lang]["list.tenant_wide_only"] in audit
        await _page(store, "/console/partners", lang, status=403)
        home = await _page(store, "/console", lang)
        assert 'href="/console/partners"' not in home and "广州" not in home
    ticket = await _page(store, f"/console/tickets/{sorted(mine)[0]}", "en")
    assert MESSAGES["en"]["ticket.sla"] in ticket
    await store.aclose()


async def test_editing_through_the_console_reaches_the_owning_services(stack):
    http, api, units = stack.http, stack.api, stack.demo.units
    owner = await _console(stack.url, "owner@demo.cx", "owner", "en")
    csrf = _csrf(await _page(owner, "/console/surveys", "en"))

    async def post(path: str, data: dict[str, str], status: int = 303) -> httpx.Response:
        r = await owner.post(path, data={"csrf": csrf, **data})
        assert r.status_code == status, (path, r.status_code, r.text[:300])
        return r

    def flashed(r: httpx.Response) -> str:
        return r.headers["location"]

    # survey: from a template, a question added, a bad definition refused with the field named, published
    created = await post("/console/surveys", {"title": "门店体验 store visit", "template": "nps"})
    survey_path = flashed(created).split("?")[0]
    survey_id = survey_path.rsplit("/", 1)[1]
    added = await post(
        f"{survey_path}/questions",
        {
            "page_id": "p1",
            "question_id": "visit_reason",
            "type": "single_choice",
            "title_zh_hans": "到店原因",
            "title_en": "Why did you visit?",
            "choices": "buy: 购物\nreturn: 退换货",
        },
    )
    assert "flash=done" in flashed(added), flashed(added)
    survey = (await http.get(f"/api/v1/surveys/{survey_id}", headers=api)).json()
    question = survey["definition"]["pages"][0]["questions"][-1]
    assert question["id"] == "visit_reason" and [c["id"] for c in question["choices"]] == ["buy", "return"]
    page = await _page(owner, survey_path, "zh-Hans")
    assert "到店原因" in page and "购物 / 退换货" in page
    bad = await post(f"{survey_path}/definition", {"title": "x", "definition": '{"pages": []}'})
    assert "flash=failed" in flashed(bad) and "detail=definition." in flashed(bad)  # the field is named
    published = await post(f"{survey_path}/publish", {})
    assert "flash=done" in flashed(published)
    assert (await http.get(f"/api/v1/surveys/{survey_id}", headers=api)).json()["status"] == "published"

    # codebook: from the retail template, a node added under a level-1 node, published
    made = await post("/console/codebooks", {"name": "门店编码本", "template": "retail", "primary_language": "zh-Hans"})
    codebook_path = flashed(made).split("?")[0]
    codebook_id = codebook_path.rsplit("/", 1)[1]
    codebook = (await http.get(f"/api/v1/codebooks/{codebook_id}", headers=api)).json()
    top = next(n for n in codebook["draft_nodes"] if n["level"] == 1)
    node = await post(
        f"{codebook_path}/nodes", {"parent_id": top["id"], "name_zh_hans": "试衣间", "keywords": "试衣间, fitting room"}
    )
    assert "flash=done" in flashed(node), flashed(node)
    noname = await post(f"{codebook_path}/nodes", {"parent_id": top["id"], "name_en": "English only"})
    assert "flash=failed" in flashed(noname)
    assert "试衣间" in await _page(owner, codebook_path, "en")
    assert "flash=done" in flashed(await post(f"{codebook_path}/publish", {"note": "v1 from the console"}))
    versions = (await http.get(f"/api/v1/codebooks/{codebook_id}/versions", headers=api)).json()
    assert [v["version"] for v in versions] == [1]
    assert any("试衣间" in n["names"].values() for n in versions[0]["nodes"])

    # alert rule: created from the form's example, then enabled from the list
    rules_page = await _page(owner, "/console/rules", "en")
    example = re.search(r'<textarea name="definition"[^>]*>(.*?)</textarea>', rules_page, re.S).group(1)
    example = html.unescape(example)  # what a browser submits
    assert "flash=done" in flashed(await post("/console/rules", {"name": "低分提醒 console", "definition": example}))
    rules = (await http.get("/api/v1/rules", params={"limit": 100}, headers=api)).json()["items"]
    rule = next(r for r in rules if r["name"] == "低分提醒 console")
    assert rule["enabled"] is False
    assert "flash=done" in flashed(await post(f"/console/rules/{rule['id']}/enable", {}))
    assert (await http.get(f"/api/v1/rules/{rule['id']}", headers=api)).json()["enabled"] is True

    # partner: created, a key issued (shown once, in the answer only), then revoked
    made = await post(
        "/console/partners", {"title": "客服系统 Helpdesk", "kind": "hotline", "default_channel": "hotline"}
    )
    partner_path = flashed(made).split("?")[0]
    issued = await post(f"{partner_path}/keys", {"name": "prod"}, status=201)
    key = re.search(r'<code id="new-key">([^<]+)</code>', issued.text).group(1)
    assert key and key not in (await owner.get(partner_path)).text
    keys = (await http.get(f"/api/v1{partner_path.removeprefix('/console')}/keys", headers=api)).json()
    revoked = await post(f"{partner_path}/keys/{keys[0]['id']}/revoke", {})
    assert "flash=done" in flashed(revoked)

    # ticket: a comment and a status change, seen by alerts with the note
    tickets = (await http.get("/api/v1/tickets", params={"limit": 100, "status": "open"}, headers=api)).json()
    ticket = tickets["items"][0]
    ticket_path = f"/console/tickets/{ticket['id']}"
    assert "flash=done" in flashed(await post(f"{ticket_path}/comments", {"body": "已联系顾客 called back"}))
    current = (await http.get(f"/api/v1/tickets/{ticket['id']}", headers=api)).json()
    moved = await post(
        f"{ticket_path}/transition", {"status": "acknowledged", "version": str(current["version"]), "note": "收到"}
    )
    assert "flash=done" in flashed(moved), flashed(moved)
    after = (await http.get(f"/api/v1/tickets/{ticket['id']}", headers=api)).json()
    assert after["status"] == "acknowledged"
    detail = await _page(owner, ticket_path, "en")
    assert "called back" in detail and "acknowledged" in detail.split('id="history"')[1]

    # org unit and user: created in the gateway, the user can log in at once
    unit = await post(
        "/console/org/units",
        {"parent_id": str(units["R-EAST"]), "name": "宁波天一店 Ningbo", "code": "S-NB-01", "kind": "store"},
    )
    assert "flash=done" in flashed(unit), flashed(unit)
    duplicate = await post(
        "/console/org/units", {"parent_id": str(units["R-EAST"]), "name": "again", "code": "S-NB-01", "kind": "store"}
    )
    assert "flash=failed" in flashed(duplicate) and "code" in flashed(duplicate)
    ningbo = next(
        u
        for u in (await http.get("/api/v1/org-units", params={"limit": 100}, headers=api)).json()["items"]
        if u["code"] == "S-NB-01"
    )
    user = await post(
        "/console/org/users",
        {
            "email": "nb.manager@demo.cx",
            "display_name": "宁波店长",
            "password": "ningbo-pass-1",
            "role": "manager",
            "org_unit_id": ningbo["id"],
            "locale": "zh-Hans",
        },
    )
    assert "flash=done" in flashed(user), flashed(user)
    login = await http.post(
        "/api/v1/auth/login", json={"tenant": "demo", "email": "nb.manager@demo.cx", "password": "ningbo-pass-1"}
    )
    assert login.status_code == 200 and "宁波天一店" in await _page(owner, "/console/org", "en")

    # without the CSRF token nothing happens
    forged = await owner.post("/console/rules", data={"csrf": "0" * 32, "name": "x", "definition": example})
    assert forged.status_code == 403
    await owner.aclose()
