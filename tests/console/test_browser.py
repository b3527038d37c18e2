"""The console in a real browser (headless Chromium via Playwright) against the gateway and the real alerts service,
both served on loopback sockets and wired through JetStream: the gateway's org events build the alerts org projection,
tickets opened through `/api/v1` land in alerts, their `ticket.*` events feed the gateway read model.

HQ: login → dashboard (charts) → drill-down HQ → region → store → ticket inbox → language switch.
Store manager: sees only their store, cannot open another store's dashboard, acknowledges and resolves a ticket, then
opens it: SLA deadlines, the note, the handling history."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx

from cx_gateway.demo import demo_password


async def _login(page: Any, base: str, email: str, role: str, lang: str) -> None:
    await page.goto(f"{base}/console/login?lang={lang}")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", demo_password(role))
    await page.click("form[action='/console/login'] button[type=submit]")
    await page.wait_for_selector("#m-responses")


async def test_console_end_to_end_in_a_browser(cx_browser, cx_artifacts, alerts_and_gateway, ev):
    shots = cx_artifacts
    async with alerts_and_gateway() as (gateway, alerts_url), httpx.AsyncClient(timeout=20) as http:
        gw_url, demo = gateway.url, gateway.demo
        units = demo.units
        login = await http.post(
            f"{gw_url}/api/v1/auth/login",
            json={"tenant": "demo", "email": "owner@demo.cx", "password": demo_password("owner")},
        )
        owner = {"Authorization": f"Bearer {login.json()['access_token']}"}

        async def alerts_knows_the_tree() -> bool:
            r = await http.get(f"{alerts_url}/v1/org-units", headers=owner)
            return r.status_code == 200 and len(r.json()) >= 8

        await ev.until(alerts_knows_the_tree, 30)
        tickets = {}
        for code, title in [
            ("S-SH-01", "试衣间排队太久 fitting-room queue"),
            ("S-GZ-01", "退款迟迟未到 refund late"),
        ]:
            r = await http.post(
                f"{gw_url}/api/v1/tickets",
                headers=owner,
                json={"title": title, "priority": "P2", "org_unit_id": str(units[code])},
            )
            assert r.status_code == 201, r.text
            tickets[code] = r.json()["id"]
        # experience data for the charts (what survey and ingest would publish)
        now = dt.datetime.now(dt.UTC)
        for days_ago, (code, nps) in enumerate(
            [("S-SH-01", 10), ("S-SH-01", 4), ("S-HZ-01", 8), ("S-GZ-01", 2), ("S-SZ-01", 9)]
        ):
            answer = ev.response(units[code], nps, csat=4.0)
            answer.submitted_at.FromDatetime(now - dt.timedelta(days=days_ago))
            await ev.publish(gateway, "survey.response.submitted", answer, demo.tenant_id)
        for code, sentiment in [("S-SH-01", "negative"), ("S-SH-01", "positive"), ("S-GZ-01", "neutral")]:
            fb = ev.feedback(units[code], sentiment, [(("服务", "排队"), sentiment)], ["排队", "queue"])
            await ev.publish(gateway, "feedback.analyzed", fb, demo.tenant_id)

        async def read_model_caught_up() -> bool:
            r = await http.get(f"{gw_url}/api/v1/analytics/overview", headers=owner)
            body = r.json()
            return body["responses"] == 5 and body["feedback"] == 3 and body["tickets_open"] == 2

        await ev.until(read_model_caught_up, 30)

        # -- HQ user -------------------------------------------------------------------------------------
        hq = await cx_browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 1000})
        page = await hq.new_page()
        await _login(page, gw_url, "owner@demo.cx", "owner", "zh-Hans")
        assert await page.locator("html").get_attribute("lang") == "zh-Hans"
        assert "体验仪表盘" in await page.locator("h1").inner_text()
        assert await page.locator("#m-responses").inner_text() == "5"
        assert await page.locator("#m-open").inner_text() == "2"
        # charts: NPS trend line, sentiment bar, aspect bars, keyword cloud
        assert await page.locator("svg.trend polyline").count() == 1
        assert await page.locator(".stack .seg").count() == 3
        assert await page.locator(".bar").count() >= 1
        assert "排队" in await page.locator(".cloud").inner_text()
        await page.screenshot(path=str(shots / "01-hq-dashboard-zh-Hans.png"), full_page=True)

        await page.locator("#drilldown a", has_text="华东区 East").click()
        await page.wait_for_selector("#scope-name:has-text('华东区 East')")
        assert await page.locator("#m-responses").inner_text() == "3"
        drill = await page.locator("#drilldown").inner_text()
        assert "上海南京路店" in drill and "杭州西湖店" in drill and "广州" not in drill
        await page.screenshot(path=str(shots / "02-region-east.png"), full_page=True)

        await page.locator("#drilldown a", has_text="上海南京路店").click()
        await page.wait_for_selector("#scope-name:has-text('上海南京路店')")
        assert await page.locator("#m-responses").inner_text() == "2"
        assert await page.locator("#m-open").inner_text() == "1"
        await page.screenshot(path=str(shots / "03-store-shanghai.png"), full_page=True)

        # language switch keeps the drill-down position
        await page.click("a[hreflang='zh-Hant']")
        await page.wait_for_selector("h1:has-text('體驗儀表板')")
        assert await page.locator("html").get_attribute("lang") == "zh-Hant"
        assert "上海南京路店" in await page.locator("#scope-name").inner_text()
        await page.screenshot(path=str(shots / "04-store-zh-Hant.png"), full_page=True)
        await page.click("a[hreflang='en']")
        await page.wait_for_selector("h1:has-text('Experience dashboard')")
        assert await page.locator("html").get_attribute("lang") == "en"

        await page.click("nav a[href='/console/tickets']")
        await page.wait_for_selector("h1:has-text('Ticket inbox')")
        inbox = await page.locator("table.list").inner_text()
        assert "fitting-room queue" in inbox and "refund late" in inbox
        await page.screenshot(path=str(shots / "05-hq-tickets-en.png"), full_page=True)
        await hq.close()

        # -- store manager: only their store -------------------------------------------------------------
        store = await cx_browser.new_context(viewport={"width": 1280, "height": 1000})
        page = await store.new_page()
        await _login(page, gw_url, "store.manager@demo.cx", "manager", "en")
        assert "上海南京路店" in await page.locator("#scope-name").inner_text()
        assert await page.locator("#m-responses").inner_text() == "2"
        assert await page.locator("#m-open").inner_text() == "1"
        body = await page.locator("main").inner_text()
        assert "广州" not in body and "华南区" not in body and "杭州" not in body
        await page.screenshot(path=str(shots / "06-store-manager-dashboard.png"), full_page=True)
        other = await page.goto(f"{gw_url}/console?org_unit_id={units['S-GZ-01']}")
        assert other is not None and other.status == 404
        up = await page.goto(f"{gw_url}/console?org_unit_id={units['HQ']}")
        assert up is not None and up.status == 404

        await page.goto(f"{gw_url}/console/tickets")
        rows = page.locator("table.list tbody tr")
        assert await rows.count() == 1
        row = rows.filter(has_text="fitting-room queue")
        assert await row.locator("td.col-status").inner_text() == "open"
        assert re.search(r"\d+h \d{2}m", await row.locator("td.col-due").inner_text())
        await page.screenshot(path=str(shots / "07-store-manager-inbox.png"), full_page=True)
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        await row.get_by_role("button", name="Acknowledge").click()
        await page.wait_for_selector("#flash:has-text('Done.')")
        row = page.locator("table.list tbody tr", has_text="fitting-room queue")
        assert await row.locator("td.col-status").inner_text() == "acknowledged"
        await row.locator("select[name=resolution_code]").select_option("compensated")
        await row.locator("input[name=comment]").fill("已致电顾客并赠送优惠券 called the customer")
        await row.get_by_role("button", name="Resolve").click()
        await page.wait_for_selector("#flash:has-text('Done.')")
        row = page.locator("table.list tbody tr", has_text="fitting-room queue")
        assert await row.locator("td.col-status").inner_text() == "resolved"
        await page.screenshot(path=str(shots / "08-store-manager-resolved.png"), full_page=True)
        # the ticket's own page: SLA deadlines, the note as a comment, the handling history
        await row.get_by_role("link", name=re.compile("fitting-room queue")).click()
        await page.wait_for_selector("#ticket-title:has-text('fitting-room queue')")
        assert await page.locator("#ticket-status").inner_text() == "resolved"
        assert "called the customer" in await page.locator("#comments").inner_text()
        history = await page.locator("#history").inner_text()
        assert "status:acknowledged" in history and "status:resolved" in history, history
        await page.screenshot(path=str(shots / "09-store-manager-ticket.png"), full_page=True)
        # the other store's ticket cannot be handled from here, even with a hand-made form post
        forged = await page.request.post(
            f"{gw_url}/console/tickets/{tickets['S-GZ-01']}/acknowledged", form={"csrf": csrf or ""}
        )
        assert forged.url.endswith("flash=failed")
        await store.close()

        # what alerts recorded: who handled it, how, with the note
        detail = (await http.get(f"{alerts_url}/v1/tickets/{tickets['S-SH-01']}", headers=owner)).json()
        assert detail["status"] == "resolved" and detail["resolution_code"] == "compensated"
        comments = (await http.get(f"{alerts_url}/v1/tickets/{tickets['S-SH-01']}/comments", headers=owner)).json()
        assert any("called the customer" in c["body"] for c in comments)
        assert all(c["author_id"] == str(demo.users["store.manager@demo.cx"]) for c in comments)
        untouched = (await http.get(f"{alerts_url}/v1/tickets/{tickets['S-GZ-01']}", headers=owner)).json()
        assert untouched["status"] == "open"

        # and the read model heard about it (ticket.* from alerts)
        async def resolved_counted() -> bool:
            r = await http.get(
                f"{gw_url}/api/v1/analytics/overview", params={"org_unit_id": str(units["S-SH-01"])}, headers=owner
            )
            return r.json()["tickets_resolved"] == 1

        await ev.until(resolved_counted, 30)
    for name in (
        "01-hq-dashboard-zh-Hans.png",
        "03-store-shanghai.png",
        "08-store-manager-resolved.png",
        "09-store-manager-ticket.png",
    ):
        assert (shots / name).stat().st_size > 0
