import asyncio
import datetime as dt
import email
import email.policy
import json
import re
import uuid

from survey_testkit import LOGIC, eventually

from cx_local.pytest_plugin import app_client


def iso(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).isoformat()


async def test_triggered_sends_scheduler_restart_reminders_frequency_and_incentives(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    survey_id = await svc.create_published(tenant, {**LOGIC, "pages": LOGIC["pages"][:1]})
    codes = await svc.client.post(
        f"/v1/surveys/{survey_id}/incentive-codes", json={"codes": ["A1", "A2", "A1"]}, headers=h
    )
    assert codes.json() == {"added": 2, "available": 2}
    dist = await svc.client.post(
        f"/v1/surveys/{survey_id}/distributions",
        json={
            "name": "NPS after delivery",
            "channel": "email",
            "delay_hours": 24,
            "reminder_after_hours": 48,
            "max_reminders": 1,
            "frequency_days": 30,
        },
        headers=h,
    )
    assert dist.status_code == 201, dist.text
    dist_id = dist.json()["id"]
    # Default delay: due 24 h after the trigger.
    later = await svc.client.post(
        f"/v1/distributions/{dist_id}/sends",
        json={"customer_key": "C-late", "recipient": "late@example.com"},
        headers=h,
    )
    assert later.status_code == 202
    due = dt.datetime.fromisoformat(later.json()["due_at"])
    assert dt.timedelta(hours=23) < due - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)
    now_send = await svc.client.post(
        f"/v1/distributions/{dist_id}/sends",
        json={
            "customer_key": "C-1",
            "recipient": "c1@example.com",
            "language": "en",
            "send_at": iso(-dt.timedelta(seconds=1)),
            "hidden": {"order_id": "O-1"},
        },
        headers=h,
    )
    assert now_send.status_code == 202, now_send.text
    again = await svc.client.post(
        f"/v1/distributions/{dist_id}/sends", json={"customer_key": "C-1", "recipient": "c1@example.com"}, headers=h
    )
    assert again.status_code == 409
    assert again.json()["field"] == "customer_key"
    assert await svc.sql("SELECT 1 FROM outgoing_mail") == []

    # Two scheduler instances race on the same table: the message goes out exactly once.
    async def mails(n):
        return len(await svc.sql("SELECT 1 FROM outgoing_mail")) >= n

    app_a, app_b = svc.app_with(scheduler_enabled=True), svc.app_with(scheduler_enabled=True)
    async with app_client(app_a, svc.tokens), app_client(app_b, svc.tokens):
        await eventually(lambda: mails(1))
        await asyncio.sleep(0.3)
    sent = await svc.sql("SELECT recipient, subject, body FROM outgoing_mail")
    assert len(sent) == 1
    assert sent[0]["recipient"] == "c1@example.com"
    assert sent[0]["subject"].startswith("We'd love your feedback")
    link = re.search(r"http://survey\.test(/s/\S+)", sent[0]["body"]).group(1)
    messages = (await svc.client.get(f"/v1/distributions/{dist_id}/messages", headers=h)).json()
    by = {(m["customer_key"], m["kind"]): m for m in messages}
    assert by[("C-1", "invite")]["status"] == "sent"
    assert by[("C-1", "reminder")]["status"] == "pending"  # scheduled 48 h later, survives the restart
    assert by[("C-late", "invite")]["status"] == "pending"

    # After a restart the reminder (made due) goes out once, by the new instance.
    await svc.sql("UPDATE scheduled_messages SET due_at = now() - interval '1 second' WHERE kind = 'reminder'")
    async with app_client(svc.app_with(scheduler_enabled=True), svc.tokens):
        await eventually(lambda: mails(2))
        await asyncio.sleep(0.2)
    sent = await svc.sql("SELECT subject FROM outgoing_mail ORDER BY created_at")
    assert [s["subject"].split(":")[0] for s in sent] == ["We'd love your feedback", "Reminder"]

    # The customer answers through the personal link on the respondent page and gets a coupon code.
    page = await svc.client.get(link)
    assert page.status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    done = await svc.client.post(f"/s/{survey_id}", data={**fields, "q_nps": "10"})
    assert done.status_code == 303, done.text
    thanks = await svc.client.get(done.headers["location"])
    code = re.search(r"data-incentive>([^<]+)<", thanks.text).group(1)
    assert code in ("A1", "A2")
    response = (await svc.sql("SELECT customer_key, hidden FROM responses"))[0]
    assert response["customer_key"] == "C-1"
    assert json.loads(response["hidden"]) == {"order_id": "O-1"}
    # The link is single-use now.
    assert (await svc.client.get(link)).status_code == 409

    # Another response gets the other code; once the pool is empty, no code (never one twice).
    r2 = await svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 9}})
    r3 = await svc.client.post(f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 9}})
    assert {code, r2.json()["incentive_code"]} == {"A1", "A2"}
    assert r3.json()["incentive_code"] is None


async def test_reminder_skipped_after_answer_and_webhook_channel(svc):
    received: list[dict] = []

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        body = json.loads(await reader.readexactly(length))
        body["_key"] = re.search(rb"(?i)idempotency-key: (\S+)", head).group(1).decode()
        received.append(body)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    survey_id = await svc.create_published(tenant, {**LOGIC, "pages": LOGIC["pages"][:1]})
    dist = (
        await svc.client.post(
            f"/v1/surveys/{survey_id}/distributions",
            json={
                "name": "SMS",
                "channel": "webhook",
                "webhook_url": f"http://127.0.0.1:{port}/sms",
                "reminder_after_hours": 1,
            },
            headers=h,
        )
    ).json()
    send = await svc.client.post(
        f"/v1/distributions/{dist['id']}/sends", json={"customer_key": "C-9", "recipient": "+8613800000000"}, headers=h
    )
    assert send.status_code == 202
    try:
        async with app_client(svc.app_with(scheduler_enabled=True), svc.tokens):

            async def got(n):
                return len(received) >= n

            await eventually(lambda: got(1))
            token = received[0]["link"].split("t=")[1].split("&")[0]
            answered = await svc.client.post(
                f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 10}, "token": token}
            )
            assert answered.status_code == 201
            await svc.sql("UPDATE scheduled_messages SET due_at = now() WHERE kind = 'reminder'")

            async def reminder_done():
                rows = await svc.sql("SELECT status FROM scheduled_messages WHERE kind = 'reminder'")
                return bool(rows) and rows[0]["status"] != "pending"

            await eventually(reminder_done)
    finally:
        server.close()
    assert len(received) == 1
    assert received[0]["recipient"] == "+8613800000000"
    assert received[0]["_key"] == received[0]["message_id"]
    status = await svc.sql("SELECT status, last_error FROM scheduled_messages WHERE kind = 'reminder'")
    assert (status[0]["status"], status[0]["last_error"]) == ("skipped", "already answered")


async def test_quota_closes_survey_and_bad_distribution_input(svc):
    tenant = uuid.uuid4()
    survey_id = await svc.create_published(tenant, {**LOGIC, "pages": LOGIC["pages"][:1]}, quota=1)
    url = f"/v1/public/surveys/{survey_id}/responses"
    assert (await svc.client.post(url, json={"answers": {"nps": 10}})).status_code == 201
    full = await svc.client.post(url, json={"answers": {"nps": 10}})
    assert full.status_code == 410
    assert full.json()["rule"] == "quota"
    bad = await svc.client.post(
        f"/v1/surveys/{survey_id}/distributions", json={"name": "x", "channel": "webhook"}, headers=svc.auth(tenant)
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "webhook_url" or "webhook_url" in bad.json()["detail"]


async def test_email_through_smtp(svc):
    """With an SMTP host configured, invitations go over SMTP (a minimal in-process SMTP server receives them)."""
    received: list[str] = []

    async def smtp(reader, writer):
        writer.write(b"220 test ESMTP\r\n")
        while line := await reader.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                writer.write(b"250 test\r\n")
            elif verb == "DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                data = await reader.readuntil(b"\r\n.\r\n")
                received.append(data.decode())
                writer.write(b"250 queued\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(smtp, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    survey_id = await svc.create_published(tenant, {**LOGIC, "pages": LOGIC["pages"][:1]})
    dist = (
        await svc.client.post(
            f"/v1/surveys/{survey_id}/distributions", json={"name": "mail", "channel": "email"}, headers=h
        )
    ).json()
    await svc.client.post(
        f"/v1/distributions/{dist['id']}/sends", json={"customer_key": "C-5", "recipient": "c5@example.com"}, headers=h
    )
    try:
        app = svc.app_with(scheduler_enabled=True, smtp_host="127.0.0.1", smtp_port=port)
        async with app_client(app, svc.tokens):

            async def got():
                return len(received) == 1

            await eventually(got)

            async def marked():
                rows = await svc.sql("SELECT status FROM scheduled_messages")
                return rows[0]["status"] == "sent"

            await eventually(marked)
    finally:
        server.close()
    mail = email.message_from_string(received[0].removesuffix("\r\n.\r\n"), policy=email.policy.default)
    assert mail["To"] == "c5@example.com"
    assert f"/s/{survey_id}?t=" in mail.get_content()
    assert await svc.sql("SELECT 1 FROM outgoing_mail") == []


async def test_personal_links_refuse_undeclared_hidden_fields_and_outlive_a_dropped_one(svc):
    """A send or invitation naming a hidden field the survey does not declare is refused (422 naming it) where the
    caller can fix it; a field a later version drops is ignored when the link is answered, never an error."""
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    definition = {**LOGIC, "pages": LOGIC["pages"][:1], "hidden_fields": ["order_id", "store"]}
    survey_id = await svc.create_published(tenant, definition)
    dist = (
        await svc.client.post(
            f"/v1/surveys/{survey_id}/distributions", json={"name": "mail", "channel": "email"}, headers=h
        )
    ).json()
    send = {"customer_key": "C-1002", "recipient": "c@example.com"}
    bad = await svc.client.post(
        f"/v1/distributions/{dist['id']}/sends", json={**send, "hidden": {"order": "O-2", "order_id": "O-2"}}, headers=h
    )
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["field"] == "hidden.order"
    assert [e["field"] for e in bad.json()["errors"]] == ["hidden.order"]
    assert "order_id, store" in bad.json()["detail"]
    bad_invitation = await svc.client.post(
        f"/v1/surveys/{survey_id}/invitations", json={"hidden": {"shop": "S-1"}}, headers=h
    )
    assert (bad_invitation.status_code, bad_invitation.json()["field"]) == (422, "hidden.shop")
    assert await svc.sql("SELECT 1 FROM invitations") == []
    sent = await svc.client.post(
        f"/v1/distributions/{dist['id']}/sends", json={**send, "hidden": {"order_id": "O-2", "store": "S-9"}}, headers=h
    )
    assert sent.status_code == 202, sent.text

    # Two links made under version 1, then version 2 stops declaring `store`.
    links = [
        (
            await svc.client.post(
                f"/v1/surveys/{survey_id}/invitations",
                json={"customer_key": f"C-{i}", "hidden": {"order_id": f"O-{i}", "store": "S-1"}},
                headers=h,
            )
        ).json()
        for i in (1, 2)
    ]
    v2 = {**definition, "hidden_fields": ["order_id"]}
    assert (await svc.client.patch(f"/v1/surveys/{survey_id}", json={"definition": v2}, headers=h)).status_code == 200
    assert (await svc.client.post(f"/v1/surveys/{survey_id}/publish", headers=h)).status_code == 201
    # Through the API (the link's own fields win over what the respondent's browser sends) ...
    api = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses",
        json={"answers": {"nps": 9}, "token": links[0]["token"], "hidden": {"order_id": "forged"}},
    )
    assert api.status_code == 201, api.text
    assert (api.json()["hidden"], api.json()["version"]) == ({"order_id": "O-1"}, 2)
    # ... and through the respondent page.
    page = await svc.client.get(links[1]["url"].replace("http://testserver", ""))
    assert page.status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    done = await svc.client.post(f"/s/{survey_id}", data={**fields, "q_nps": "9"})
    assert done.status_code == 303, done.text
    stored = await svc.sql("SELECT customer_key, hidden FROM responses WHERE customer_key = 'C-2'")
    assert json.loads(stored[0]["hidden"]) == {"order_id": "O-2"}


async def test_privacy_deletion_removes_the_customers_messages_and_mail_too(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    survey_id = await svc.create_published(tenant, {**LOGIC, "pages": LOGIC["pages"][:1]})
    dist = (
        await svc.client.post(
            f"/v1/surveys/{survey_id}/distributions",
            json={"name": "mail", "channel": "email", "reminder_after_hours": 24},
            headers=h,
        )
    ).json()
    for customer in ("C-gone", "C-stays"):
        sent = await svc.client.post(
            f"/v1/distributions/{dist['id']}/sends",
            json={"customer_key": customer, "recipient": f"{customer}@example.com", "send_at": iso(-dt.timedelta(1))},
            headers=h,
        )
        assert sent.status_code == 202, sent.text

    async def mailed() -> bool:
        return len(await svc.sql("SELECT 1 FROM outgoing_mail")) == 2

    async with app_client(svc.app_with(scheduler_enabled=True), svc.tokens):
        await eventually(mailed)
    body = (await svc.sql("SELECT body FROM outgoing_mail WHERE recipient = 'C-gone@example.com'"))[0]["body"]
    token = re.search(r"[?&]t=([^&\s]+)", body).group(1)
    answered = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 9}, "token": token}
    )
    assert answered.status_code == 201, answered.text

    deleted = await svc.client.delete("/v1/customers/C-gone/responses", headers=h)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "customer_key": "C-gone",
        "responses_deleted": 1,
        "invitations_deleted": 1,
        "messages_deleted": 2,  # the invitation sent and the reminder scheduled
    }
    assert [r["recipient"] for r in await svc.sql("SELECT recipient FROM outgoing_mail")] == ["C-stays@example.com"]
    left = await svc.sql("SELECT customer_key FROM scheduled_messages UNION SELECT customer_key FROM invitations")
    assert [r["customer_key"] for r in left] == ["C-stays"]
