"""Follow-up surveys for tickets: ticket.follow_up_requested (from alerts) → one triggered send to the address of the
customer's original invitation, however often the request is delivered; the answer names the ticket; what cannot be
sent is recorded as undeliverable with its reason."""

import datetime as dt
import json
import re
import uuid

from survey_testkit import LOGIC, eventually

from cx.events.v1 import events_pb2
from cx_common.events import build_envelope, subject_for
from cx_local.pytest_plugin import app_client

NPS_ONLY = {**LOGIC, "pages": LOGIC["pages"][:1], "hidden_fields": ["order_id", "store"]}


def request(tenant, **fields) -> events_pb2.Envelope:
    defaults = {"ticket_id": str(uuid.uuid4()), "request_id": str(uuid.uuid4()), "org_unit_id": "s1"}
    payload = events_pb2.TicketFollowUpRequested(**{**defaults, "requested_by": "u-s1", **fields})
    payload.requested_at.FromDatetime(dt.datetime(2026, 11, 23, 2, 0))
    return build_envelope(tenant_id=tenant, event_type="ticket.follow_up_requested", payload=payload, source="alerts")


async def publish(svc, envelope: events_pb2.Envelope, msg_id: str | None = None) -> None:
    subject = subject_for(envelope.type, svc.settings.events_subject_prefix)
    headers = {"Nats-Msg-Id": msg_id or envelope.event_id}
    await svc.app.state.runtime.bus.js.publish(subject, envelope.SerializeToString(), headers=headers)


async def consumed(svc, envelope: events_pb2.Envelope) -> None:
    async def done() -> bool:
        rows = await svc.sql(
            "SELECT 1 FROM processed_events WHERE consumer = 'survey-follow-ups' AND event_id = $1",
            uuid.UUID(envelope.event_id),
        )
        return bool(rows)

    await eventually(done)


async def mailed(svc, n: int) -> list:
    async def enough() -> bool:
        return len(await svc.sql("SELECT 1 FROM outgoing_mail")) >= n

    async with app_client(svc.app_with(scheduler_enabled=True), svc.tokens):
        await eventually(enough)
    return await svc.sql("SELECT recipient, subject, body FROM outgoing_mail ORDER BY created_at")


async def test_a_follow_up_request_schedules_one_send_to_the_original_address_and_its_answer_names_the_ticket(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    # The original survey: sent to C-1 by e-mail with an order id, answered as a detractor through the personal link.
    original = await svc.create_published(tenant, NPS_ONLY)
    first = (
        await svc.client.post(
            f"/v1/surveys/{original}/distributions",
            json={"name": "NPS", "channel": "email", "frequency_days": 30},
            headers=h,
        )
    ).json()
    sent = await svc.client.post(
        f"/v1/distributions/{first['id']}/sends",
        json={"customer_key": "C-1", "recipient": "c1@example.com", "hidden": {"order_id": "O-1"}},
        headers=h,
    )
    assert sent.status_code == 202, sent.text
    [mail] = await mailed(svc, 1)
    token = re.search(r"[?&]t=([^&\s]+)", mail["body"]).group(1)
    answered = await svc.client.post(
        f"/v1/public/surveys/{original}/responses", json={"answers": {"nps": 2, "why_low": "排队太久"}, "token": token}
    )
    assert answered.status_code == 201, answered.text
    source_response = answered.json()["id"]

    # The follow-up survey, with its own distribution (a 30-day contact-frequency rule, which a follow-up bypasses).
    follow_up_survey = await svc.create_published(tenant, {**NPS_ONLY, "hidden_fields": ["order_id"]})
    dist = (
        await svc.client.post(
            f"/v1/surveys/{follow_up_survey}/distributions",
            json={"name": "Follow-up", "channel": "email", "frequency_days": 30},
            headers=h,
        )
    ).json()
    asked = request(
        tenant,
        customer_key="C-1",
        source_response_id=source_response,
        language="en",
        distribution_id=dist["id"],
    )
    # Delivered twice (the broker's dedup bypassed with another Nats-Msg-Id), and the same request once more under
    # another event id: one send.
    await publish(svc, asked)
    await publish(svc, asked, msg_id=f"{asked.event_id}-again")
    again = events_pb2.Envelope()
    again.CopyFrom(asked)
    again.event_id = str(uuid.uuid4())
    await publish(svc, again)
    await consumed(svc, again)

    messages = (await svc.client.get(f"/v1/distributions/{dist['id']}/messages", headers=h)).json()
    assert [(m["customer_key"], m["recipient"], m["kind"], m["status"]) for m in messages] == [
        ("C-1", "c1@example.com", "invite", "pending")
    ]
    page = (await svc.client.get("/v1/distributions/follow-ups", headers=h)).json()
    [follow_up] = page["items"]
    payload = asked.ticket_follow_up_requested
    assert follow_up["ticket_id"] == payload.ticket_id and follow_up["request_id"] == payload.request_id
    assert (follow_up["status"], follow_up["reason"], follow_up["recipient_source"]) == (
        "scheduled",
        None,
        "original_invitation",
    )
    assert follow_up["distribution_id"] == follow_up["requested_distribution_id"] == dist["id"]
    assert (follow_up["message_id"], follow_up["message_status"]) == (messages[0]["id"], "pending")
    assert follow_up["source_response_id"] == source_response and follow_up["requested_by"] == "u-s1"
    assert follow_up["requested_at"].startswith("2026-11-23T02:00:00")
    # The follow-up counts for the rule afterwards: an ordinary send to C-1 through that distribution is refused.
    refused = await svc.client.post(
        f"/v1/distributions/{dist['id']}/sends", json={"customer_key": "C-1", "recipient": "c1@example.com"}, headers=h
    )
    assert refused.status_code == 409 and refused.json()["rule"] == "contact_frequency"

    # Sent in the ticket's language; the answer carries the ticket and request ids (and the original order id).
    mails = await mailed(svc, 2)
    assert mails[1]["recipient"] == "c1@example.com"
    assert mails[1]["subject"].startswith("We'd love your feedback")
    link_token = re.search(r"[?&]t=([^&\s]+)", mails[1]["body"]).group(1)
    assert f"/s/{follow_up_survey}?t={link_token}&lang=en" in mails[1]["body"]
    reply = await svc.client.post(
        f"/v1/public/surveys/{follow_up_survey}/responses",
        json={"answers": {"nps": 9}, "token": link_token, "hidden": {"order_id": "forged"}},
    )
    assert reply.status_code == 201, reply.text
    expected = {"order_id": "O-1", "cx_ticket_id": payload.ticket_id, "cx_follow_up_id": payload.request_id}
    assert reply.json()["hidden"] == expected
    assert reply.json()["customer_key"] == "C-1"
    stored = await svc.sql("SELECT hidden FROM responses WHERE id = $1", uuid.UUID(reply.json()["id"]))
    assert json.loads(stored[0]["hidden"]) == expected
    events = await svc.sql("SELECT payload FROM outbox WHERE event_type = 'survey.response.submitted' ORDER BY id")
    last = events_pb2.Envelope.FromString(bytes(events[-1]["payload"])).survey_response_submitted
    assert last.response_id == reply.json()["id"]
    assert dict(last.hidden_fields) == expected and last.nps == 9


async def test_undeliverable_requests_are_recorded_with_their_reason(svc):
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    await svc.publish_org(tenant, [("hq", "", []), ("s1", "hq", ["hq"]), ("s2", "hq", ["hq"])])
    survey_id = await svc.create_published(tenant, NPS_ONLY)
    sms = (
        await svc.client.post(
            f"/v1/surveys/{survey_id}/distributions",
            json={"name": "SMS", "channel": "webhook", "webhook_url": "http://127.0.0.1:9/sms"},
            headers=h,
        )
    ).json()
    # Answered on the public link: no personal link, so no address.
    public = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 1, "why_low": "贵"}}
    )
    assert public.status_code == 201

    no_default = request(tenant, customer_key="C-2", source_response_id=public.json()["id"])
    await publish(svc, no_default)
    await consumed(svc, no_default)

    assert (await svc.client.get("/v1/distributions/follow-up-default", headers=h)).json() == {"distribution_id": None}
    unknown = await svc.client.put(
        "/v1/distributions/follow-up-default", json={"distribution_id": str(uuid.uuid4())}, headers=h
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "distribution_id"
    other_tenant = await svc.client.put(
        "/v1/distributions/follow-up-default", json={"distribution_id": sms["id"]}, headers=svc.auth(uuid.uuid4())
    )
    assert other_tenant.status_code == 422
    made = await svc.client.put("/v1/distributions/follow-up-default", json={"distribution_id": sms["id"]}, headers=h)
    assert made.status_code == 200, made.text
    assert (await svc.client.get("/v1/distributions/follow-up-default", headers=h)).json() == {
        "distribution_id": sms["id"]
    }

    no_address = request(tenant, customer_key="C-2", source_response_id=public.json()["id"], org_unit_id="s2")
    missing = request(tenant, customer_key="C-2", distribution_id=str(uuid.uuid4()))
    for envelope in (no_address, missing):
        await publish(svc, envelope)
    await consumed(svc, missing)

    page = (await svc.client.get("/v1/distributions/follow-ups?status=undeliverable", headers=h)).json()
    reasons = {i["request_id"]: (i["reason"], i["distribution_id"], i["message_id"]) for i in page["items"]}
    assert reasons == {
        no_default.ticket_follow_up_requested.request_id: (
            "no distribution: the request names none and the tenant has no follow-up default "
            "(PUT /v1/distributions/follow-up-default)",
            None,
            None,
        ),
        no_address.ticket_follow_up_requested.request_id: (
            "no known webhook address for customer C-2",
            sms["id"],
            None,
        ),
        missing.ticket_follow_up_requested.request_id: (
            f"distribution {missing.ticket_follow_up_requested.distribution_id} not found",
            None,
            None,
        ),
    }
    assert await svc.sql("SELECT 1 FROM scheduled_messages") == []
    # on the distribution's list, newest first, paged
    by_dist = (await svc.client.get(f"/v1/distributions/follow-ups?distribution_id={sms['id']}", headers=h)).json()
    assert [i["ticket_id"] for i in by_dist["items"]] == [no_address.ticket_follow_up_requested.ticket_id]
    first = (await svc.client.get("/v1/distributions/follow-ups?limit=2", headers=h)).json()
    rest = (await svc.client.get(f"/v1/distributions/follow-ups?cursor={first['next_cursor']}", headers=h)).json()
    assert [i["request_id"] for i in first["items"] + rest["items"]] == [
        missing.ticket_follow_up_requested.request_id,
        no_address.ticket_follow_up_requested.request_id,
        no_default.ticket_follow_up_requested.request_id,
    ]
    # org scope: store s1 sees its own, s2 its own, HQ all; other tenants nothing
    for org, n in (("s1", 2), ("s2", 1), ("hq", 3)):
        scoped = await svc.client.get("/v1/distributions/follow-ups", headers=svc.auth(tenant, org=org))
        assert len(scoped.json()["items"]) == n, org
    assert (await svc.client.get("/v1/distributions/follow-ups", headers=svc.auth(uuid.uuid4()))).json()["items"] == []
    bad = await svc.client.get("/v1/distributions/follow-ups?status=lost", headers=h)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    # a privacy request for the customer takes the follow-ups asked for them too
    assert (await svc.client.delete("/v1/customers/C-2/responses", headers=h)).status_code == 200
    assert (await svc.client.get("/v1/distributions/follow-ups", headers=h)).json()["items"] == []


async def test_the_service_hidden_fields_are_reserved(svc):
    """Nobody but the service may set cx_* hidden fields: no survey declares one, so no send, link or respondent can
    pass one."""
    tenant = uuid.uuid4()
    h = svc.auth(tenant)
    refused = await svc.client.post(
        "/v1/surveys",
        json={"title": "t", "definition": {**NPS_ONLY, "hidden_fields": ["order_id", "cx_ticket_id"]}},
        headers=h,
    )
    assert refused.status_code == 422, refused.text
    assert "cx_ticket_id" in refused.text and "reserved" in refused.text
    survey_id = await svc.create_published(tenant, NPS_ONLY)
    forged = await svc.client.post(
        f"/v1/public/surveys/{survey_id}/responses", json={"answers": {"nps": 9}, "hidden": {"cx_ticket_id": "t-1"}}
    )
    assert forged.status_code == 422 and forged.json()["errors"][0]["field"] == "hidden.cx_ticket_id"
    dist = (
        await svc.client.post(
            f"/v1/surveys/{survey_id}/distributions", json={"name": "m", "channel": "email"}, headers=h
        )
    ).json()
    send = await svc.client.post(
        f"/v1/distributions/{dist['id']}/sends",
        json={"customer_key": "C-3", "recipient": "c3@example.com", "hidden": {"cx_follow_up_id": "x"}},
        headers=h,
    )
    assert send.status_code == 422 and send.json()["field"] == "hidden.cx_follow_up_id"
