"""Outbound notifications: e-mail over SMTP per user preferences, HMAC-signed chat webhooks with retries."""

import email
import email.policy
import json
import uuid

from alerts_testkit import HttpReceiver, SmtpSink, eventually, seed_org

from cx_alerts.notifications.dispatcher import sign
from cx_local.pytest_plugin import app_client

SECRET = "s3cret-s3cret-s3cret"


async def test_email_and_signed_webhook_with_retry(env):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    async with HttpReceiver(statuses=[500, 200]) as hook, SmtpSink() as smtp:
        env.settings.smtp_host = "127.0.0.1"
        env.settings.smtp_port = smtp.port
        env.settings.dispatcher_poll_s = 0.05
        async with app_client(env.app(), env.tokens) as client:
            await seed_org(env, client, tenant)
            channel = {
                "name": "店长群",
                "url": f"http://127.0.0.1:{hook.port}/hook",
                "format": "wecom",
                "secret": SECRET,
                "kinds": ["ticket_assigned"],
            }
            r = await client.post("/v1/notification-channels", json=channel, headers=h)
            assert r.status_code == 201 and "secret" not in r.json()
            bad = await client.post("/v1/notification-channels", json={**channel, "url": "not a url"}, headers=h)
            assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "url"
            s1 = env.headers(tenant, user="u-s1")
            east = env.headers(tenant, user="u-east")
            r = await client.put("/v1/notifications/preferences", json={"email": "s1@example.com"}, headers=s1)
            assert r.status_code == 200
            await client.put(
                "/v1/notifications/preferences",
                json={"email": "east@example.com", "muted_kinds": ["ticket_assigned"]},
                headers=east,
            )
            t = await client.post(
                "/v1/tickets",
                json={"title": "顾客投诉排队", "org_unit_id": "s1", "watchers": ["u-east"]},
                headers=h,
            )
            assert t.status_code == 201

            async def mailed():
                return smtp.messages

            messages = await eventually(mailed)
            assert len(messages) == 1  # u-east muted this kind
            _, rcpts, data = messages[0]
            assert rcpts == ["s1@example.com"]
            parsed = email.message_from_string(data.removesuffix("\r\n.\r\n"), policy=email.policy.default)
            assert "顾客投诉排队" in str(parsed["Subject"])

            # the webhook failed once (500) and is retried after its backoff: move the clock past it
            await eventually(lambda: _one(hook))
            env.clock.advance(seconds=11)

            async def delivered():
                rows = (await client.get("/v1/notification-deliveries?status=delivered", headers=h)).json()
                return [d for d in rows if d["channel"] == "webhook"]

            deliveries = await eventually(delivered)
            assert deliveries[0]["attempts"] == 2 and "500" in deliveries[0]["last_error"]
            headers, body = hook.requests[-1]
            assert headers["x-cx-signature"] == sign(SECRET, headers["x-cx-timestamp"], body)
            payload = json.loads(body)
            assert payload["msgtype"] == "markdown" and "顾客投诉排队" in payload["markdown"]["content"]
            assert len(hook.requests) == 2


async def _one(hook: HttpReceiver) -> bool:
    return len(hook.requests) >= 1


def test_texts_follow_the_recipients_locale():
    from cx_alerts.notifications.messages import render

    params = {"title": "门店卫生", "status": "completed"}
    assert render("task_status", "zh-CN", params) == "改进任务「门店卫生」：待验收"
    assert render("task_status", "zh-TW", params) == "改進任務「门店卫生」：待驗收"
    assert render("task_status", "en-US", params) == 'Improvement task "门店卫生": awaiting acceptance'
    assert render("sla_breached", "", {"reason": "first_response", "title": "x"}) == "SLA 超时（首次响应）：x"
