"""Closed loop: a contact asking for a follow-up survey publishes ticket.follow_up_requested (outbox, same
transaction); the follow-up's survey.response.submitted, naming the ticket and contact, is linked to the contact."""

import datetime as dt
import uuid

import asyncpg
from alerts_testkit import NPS_RULE, eventually, response_event, seed_org

from cx.events.v1 import events_pb2


async def outbox(env, event_type: str) -> list[events_pb2.Envelope]:
    conn = await asyncpg.connect(env.db.admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await conn.fetch("SELECT payload FROM alerts.outbox WHERE event_type = $1 ORDER BY id", event_type)
    finally:
        await conn.close()
    return [events_pb2.Envelope.FromString(bytes(r["payload"])) for r in rows]


async def detractor_ticket(env, client, tenant):
    h = env.headers(tenant, user="u-s1")
    await seed_org(env, client, tenant)
    assert (await client.post("/v1/rules", json=NPS_RULE, headers=env.headers(tenant))).status_code == 201
    source = response_event(nps=2, customer="c-42")
    source.language = "en"
    await env.publish(tenant, "survey.response.submitted", source)

    async def ticket():
        items = (await client.get("/v1/tickets", headers=h)).json()["items"]
        return items[0] if items else None

    return await eventually(ticket), source, h


async def test_contact_with_follow_up_publishes_the_request_through_the_outbox(env, client):
    tenant = uuid.uuid4()
    t, source, h = await detractor_ticket(env, client, tenant)
    distribution = uuid.uuid4()
    contact = await client.post(
        f"/v1/tickets/{t['id']}/contacts",
        json={
            "method": "call",
            "outcome": "resolved",
            "summary": "apologised",
            "follow_up_survey": True,
            "follow_up_distribution_id": str(distribution),
        },
        headers=h,
    )
    assert contact.status_code == 201, contact.text
    assert contact.json()["follow_up_distribution_id"] == str(distribution)
    assert contact.json()["follow_up_response_id"] is None
    # a contact without a follow-up asks for nothing
    plain = await client.post(
        f"/v1/tickets/{t['id']}/contacts", json={"method": "message", "outcome": "reached"}, headers=h
    )
    assert plain.status_code == 201

    [envelope] = await outbox(env, "ticket.follow_up_requested")
    assert envelope.tenant_id == str(tenant) and envelope.source == "alerts"
    assert envelope.WhichOneof("payload") == "ticket_follow_up_requested"
    got = envelope.ticket_follow_up_requested
    assert (got.ticket_id, got.request_id) == (t["id"], contact.json()["id"])
    assert (got.customer_key, got.org_unit_id, got.touchpoint_id, got.channel) == ("c-42", "s1", "tp-checkout", "web")
    assert (got.source_response_id, got.source_feedback_id) == (source.response_id, "")
    assert (got.language, got.distribution_id, got.requested_by) == ("en", str(distribution), "u-s1")
    assert got.requested_at.ToDatetime(tzinfo=dt.UTC) == env.clock.now()

    # with no distribution named, the request leaves the choice to the tenant's default (in the survey service)
    again = await client.post(
        f"/v1/tickets/{t['id']}/contacts",
        json={"method": "visit", "outcome": "resolved", "follow_up_survey": True},
        headers=h,
    )
    assert again.status_code == 201
    assert [e.ticket_follow_up_requested.distribution_id for e in await outbox(env, "ticket.follow_up_requested")] == [
        str(distribution),
        "",
    ]
    audit = (await client.get("/v1/audit", params={"entity_id": t["id"]}, headers=env.headers(tenant))).json()
    contacts = [e for e in audit["items"] if e["action"] == "customer_contact"]
    assert {e["after"]["follow_up_distribution_id"] for e in contacts} == {str(distribution), None}


async def test_follow_up_bad_input(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    anonymous = await client.post("/v1/tickets", json={"title": "walk-in", "org_unit_id": "s1"}, headers=h)
    tid = anonymous.json()["id"]
    r = await client.post(
        f"/v1/tickets/{tid}/contacts",
        json={"method": "call", "outcome": "reached", "follow_up_distribution_id": str(uuid.uuid4())},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "follow_up_distribution_id"
    r = await client.post(
        f"/v1/tickets/{tid}/contacts",
        json={"method": "call", "outcome": "reached", "follow_up_survey": True},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "follow_up_survey"
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.post(
        f"/v1/tickets/{tid}/contacts",
        json={"method": "call", "outcome": "reached", "follow_up_survey": True, "follow_up_distribution_id": "x"},
        headers=h,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "follow_up_distribution_id"
    assert await outbox(env, "ticket.follow_up_requested") == []
    assert (await client.get(f"/v1/tickets/{tid}", headers=h)).json()["contacts"] == []


async def test_the_follow_up_response_is_linked_to_its_contact(env, client):
    tenant = uuid.uuid4()
    t, _source, h = await detractor_ticket(env, client, tenant)
    contact = (
        await client.post(
            f"/v1/tickets/{t['id']}/contacts",
            json={"method": "call", "outcome": "resolved", "follow_up_survey": True},
            headers=h,
        )
    ).json()
    follow_up_hidden = {"cx_ticket_id": t["id"], "cx_follow_up_id": contact["id"]}

    # the same ids under another tenant, or naming another ticket, link nothing
    stranger = response_event(nps=0, customer="c-42")
    stranger.hidden_fields.update(follow_up_hidden)
    await env.publish(uuid.uuid4(), "survey.response.submitted", stranger)
    wrong = response_event(nps=0, customer="c-42")
    wrong.hidden_fields.update({**follow_up_hidden, "cx_ticket_id": str(uuid.uuid4())})
    await env.publish(tenant, "survey.response.submitted", wrong)

    answer = response_event(nps=9, csat=4.0, customer="c-42")
    answer.hidden_fields.update(follow_up_hidden)
    await env.publish(tenant, "survey.response.submitted", answer)

    async def linked():
        detail = (await client.get(f"/v1/tickets/{t['id']}", headers=h)).json()
        return detail["contacts"][0] if detail["contacts"][0]["follow_up_response_id"] else None

    got = await eventually(linked)
    assert got["follow_up_response_id"] == answer.response_id
    assert got["follow_up_scores"] == {"nps": 9.0, "csat": 4.0}
    assert got["follow_up_responded_at"] is not None
    # a later response naming the same request does not replace the first
    late = response_event(nps=1, customer="c-42")
    late.hidden_fields.update(follow_up_hidden)
    await env.publish(tenant, "survey.response.submitted", late)

    async def all_six_consumed():  # source, stranger, wrong, answer, late (in stream order) and this marker
        conn = await asyncpg.connect(env.db.admin_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return (
                await conn.fetchval(
                    "SELECT count(*) FROM alerts.processed_events WHERE event_type = 'survey.response.submitted'"
                )
                >= 6
            )
        finally:
            await conn.close()

    await env.publish(tenant, "survey.response.submitted", response_event(nps=10, customer="c-marker"))
    await eventually(all_six_consumed)
    detail = (await client.get(f"/v1/tickets/{t['id']}", headers=h)).json()
    assert detail["contacts"][0]["follow_up_response_id"] == answer.response_id
    audit = (await client.get("/v1/audit", params={"entity_id": t["id"]}, headers=env.headers(tenant))).json()
    linked_entries = [e for e in audit["items"] if e["action"] == "follow_up_response"]
    assert [e["after"]["response_id"] for e in linked_entries] == [answer.response_id]
    assert linked_entries[0]["actor_id"] == "follow-up"
