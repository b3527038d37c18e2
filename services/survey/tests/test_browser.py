"""The respondent page in a real headless Chromium: designed and published through the API, sent by a triggered send,
answered page by page with autosave/resume, branch logic, double-submit protection and the incentive, in three
languages; then the response is listed with its scores and its event is on NATS."""

import datetime as dt
import re
import uuid

import httpx
import pytest
from playwright.async_api import expect
from survey_testkit import eventually

from cx.events.v1 import events_pb2
from cx_common.events import subject_for
from cx_local.pytest_plugin import live_server

pytestmark = pytest.mark.browser


def tx(hans: str, hant: str, en: str) -> dict[str, str]:
    return {"zh-Hans": hans, "zh-Hant": hant, "en": en}


DEFINITION = {
    "title": tx("门店体验调查", "門店體驗調查", "Store experience survey"),
    "thank_you": tx("感谢您的反馈！", "感謝您的回饋！", "Thanks for your feedback!"),
    "hidden_fields": ["customer_id", "store"],
    "pages": [
        {
            "id": "p1",
            "questions": [
                {
                    "id": "nps",
                    "type": "nps",
                    "required": True,
                    "title": tx(
                        "您向朋友推荐我们的可能性有多大？",
                        "您向朋友推薦我們的可能性有多大？",
                        "How likely are you to recommend us?",
                    ),
                },
                {
                    "id": "why_low",
                    "type": "text",
                    "title": tx("哪里让您不满意？", "哪裡讓您不滿意？", "What disappointed you?"),
                    "display_if": {"all": [{"question": "nps", "op": "lte", "value": 6}]},
                },
            ],
            # Promoters skip the "what should we improve" page.
            "jumps": [{"when": {"all": [{"question": "nps", "op": "gte", "value": 9}]}, "to": "p3"}],
        },
        {
            "id": "p2",
            "questions": [
                {
                    "id": "improve",
                    "type": "single_choice",
                    "required": True,
                    "allow_other": True,
                    "title": tx("我们最应该改进什么？", "我們最應該改進什麼？", "What should we improve first?"),
                    "choices": [
                        {"id": "speed", "label": tx("结账速度", "結帳速度", "Checkout speed")},
                        {"id": "staff", "label": tx("服务态度", "服務態度", "Staff attitude")},
                    ],
                }
            ],
        },
        {
            "id": "p3",
            "questions": [
                {
                    "id": "comment",
                    "type": "text",
                    "title": tx("还有什么想告诉我们的？", "還有什麼想告訴我們的？", "Anything else to tell us?"),
                }
            ],
        },
    ],
}


async def test_respondent_page_in_a_real_browser(svc, cx_browser, cx_artifacts):
    tenant = uuid.uuid4()
    bus = svc.app.state.runtime.bus
    subject = subject_for("survey.response.submitted", svc.settings.events_subject_prefix)
    events = await bus.js.pull_subscribe(subject, durable=None, stream=svc.settings.events_stream)
    served = svc.app_with(scheduler_enabled=True, scheduler_poll_seconds=0.05)
    async with (
        live_server(served, svc.tokens) as base,
        httpx.AsyncClient(base_url=base, headers=svc.auth(tenant)) as api,
    ):
        # Design, publish, stock the coupon pool, and trigger a send through the API.
        created = await api.post("/v1/surveys", json={"title": "门店体验", "definition": DEFINITION})
        assert created.status_code == 201, created.text
        survey_id = created.json()["id"]
        assert (await api.post(f"/v1/surveys/{survey_id}/publish")).status_code == 201
        assert (
            await api.post(f"/v1/surveys/{survey_id}/incentive-codes", json={"codes": ["券-8888"]})
        ).status_code == 200
        dist = await api.post(
            f"/v1/surveys/{survey_id}/distributions",
            json={"name": "送货后 NPS", "channel": "email", "delay_hours": 24},
        )
        assert dist.status_code == 201, dist.text
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
        send = await api.post(
            f"/v1/distributions/{dist.json()['id']}/sends",
            json={"customer_key": "C-88", "recipient": "c88@example.com", "send_at": past, "hidden": {"store": "S-01"}},
        )
        assert send.status_code == 202, send.text

        async def mailed() -> bool:
            return bool(await svc.sql("SELECT 1 FROM outgoing_mail"))

        await eventually(mailed)  # the durable scheduler of the served instance sent it
        body = (await svc.sql("SELECT body FROM outgoing_mail"))[0]["body"]
        link = base + re.search(r"http://survey\.test(/s/\S+)", body).group(1)

        # The customer opens the personal link on a phone-sized screen.
        phone = await cx_browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
        page = await phone.new_page()
        await page.goto(link)
        assert await page.get_attribute("html", "lang") == "zh-Hans"
        progress = page.locator("label[for=progress]")
        await expect(progress).to_have_text("进度 1/3")
        await page.get_by_role("radio", name="3", exact=True).check()
        await page.get_by_label("哪里让您不满意？").fill("排队太久了，收银台只开了一个。")
        await page.get_by_label("哪里让您不满意？").blur()
        await page.wait_for_function("document.forms[0].dataset.saved")  # autosaved
        await page.screenshot(path=str(cx_artifacts / "1-nps-autosaved.png"), full_page=True)
        # Reload, and reopen the original link later: the answers come back.
        await page.reload()
        await expect(page.get_by_role("radio", name="3", exact=True)).to_be_checked()
        await expect(page.get_by_label("哪里让您不满意？")).to_have_value("排队太久了，收银台只开了一个。")
        later = await phone.new_page()
        await later.goto(link)
        await expect(later.get_by_role("radio", name="3", exact=True)).to_be_checked()
        await later.close()

        await page.get_by_role("button", name="下一页").click()
        await expect(progress).to_have_text("进度 2/3")  # a detractor sees the improvement page
        await page.get_by_role("radio", name="其他").check()
        await page.locator("input[name=q_improve__other]").fill("希望增加自助结账")
        await page.screenshot(path=str(cx_artifacts / "2-branch-improve.png"), full_page=True)
        await page.get_by_role("button", name="下一页").click()
        await expect(progress).to_have_text("进度 3/3")
        await page.get_by_label("还有什么想告诉我们的？").fill("店员很热情，但是停车不方便。")
        # Double submission: a double tap sends the form once.
        await page.get_by_role("button", name="提交").dblclick()
        await page.wait_for_url(re.compile(r"/done/"))
        await expect(page.get_by_role("status")).to_have_text("感谢您的反馈！")
        await expect(page.locator("[data-incentive]")).to_have_text("券-8888")
        await page.screenshot(path=str(cx_artifacts / "3-thanks-incentive.png"), full_page=True)
        # The personal link is single-use now.
        await page.goto(link)
        await expect(page.get_by_role("status")).to_have_text("此链接已使用过。")
        await phone.close()

        # The response is listed with its scores, and its event went through the outbox to NATS.
        listed = (await api.get(f"/v1/responses?survey_id={survey_id}")).json()["items"]
        assert len(listed) == 1
        response = listed[0]
        assert (response["nps"], response["nps_category"], response["customer_key"]) == (3, "detractor", "C-88")
        assert response["answers"]["improve"] == {"choice": "other", "other": "希望增加自助结账"}
        assert response["answers"]["comment"] == "店员很热情，但是停车不方便。"
        assert response["hidden"]["store"] == "S-01"
        messages = await events.fetch(1, timeout=10)
        event = events_pb2.Envelope.FromString(messages[0].data).survey_response_submitted
        assert event.response_id == response["id"]
        assert event.nps == 3
        texts = {a.question_id: a.text_value for a in event.answers}
        assert texts["why_low"] == "排队太久了，收银台只开了一个。"

        # Traditional Chinese from the browser's language, on the public link.
        taiwan = await cx_browser.new_context(locale="zh-TW")
        page = await taiwan.new_page()
        await page.goto(f"{base}/s/{survey_id}")
        assert await page.get_attribute("html", "lang") == "zh-Hant"
        await expect(page.locator("h1")).to_have_text("門店體驗調查")
        await expect(page.locator("label[for=progress]")).to_have_text("進度 1/3")
        await expect(page.get_by_role("button", name="下一頁")).to_be_visible()
        await page.screenshot(path=str(cx_artifacts / "4-zh-Hant.png"), full_page=True)
        await taiwan.close()

        # English; a promoter skips the improvement page (the branch is visible in the progress).
        english = await cx_browser.new_context(locale="en-US")
        page = await english.new_page()
        await page.goto(f"{base}/s/{survey_id}?store=S-02")
        assert await page.get_attribute("html", "lang") == "en"
        await page.get_by_role("radio", name="10", exact=True).check()
        await page.get_by_role("button", name="Next").click()
        await expect(page.locator("label[for=progress]")).to_have_text("Progress 2/2")
        await expect(page.get_by_label("Anything else to tell us?")).to_be_visible()
        await expect(page.get_by_text("What should we improve first?")).to_have_count(0)
        await page.get_by_label("Anything else to tell us?").fill("Fast checkout, friendly staff.")
        await page.get_by_role("button", name="Submit").click()
        await page.wait_for_url(re.compile(r"/done/"))
        await expect(page.get_by_role("status")).to_have_text("Thanks for your feedback!")
        await expect(page.locator("[data-incentive]")).to_have_count(0)  # the one coupon is gone
        await page.screenshot(path=str(cx_artifacts / "5-en-promoter.png"), full_page=True)
        await english.close()
        rows = await svc.sql("SELECT nps_category, hidden FROM responses ORDER BY submitted_at")
        assert [r["nps_category"] for r in rows] == ["detractor", "promoter"]
        assert '"S-02"' in rows[1]["hidden"]
