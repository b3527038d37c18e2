"""Rules: validation with positions, versions, enable/disable, dry run, volume spikes, scopes, isolation."""

import copy
import datetime as dt
import uuid

import pytest
from alerts_testkit import NPS_RULE, eventually, feedback_event, response_event, seed_org


def rule_with(condition, **definition):
    body = copy.deepcopy(NPS_RULE)
    body["definition"]["condition"] = condition
    body["definition"].update(definition)
    return body


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ({"type": "score", "metric": "nps", "op": "<=", "value": "low"}, "definition.condition.score.value"),
        ({"type": "score", "metric": "eps", "op": "<=", "value": 6}, "definition.condition.score.metric"),
        ({"type": "wat"}, "definition.condition"),
        (
            {
                "type": "any",
                "conditions": [
                    {"type": "keywords", "any_of": ["退款"]},
                    {"type": "regex", "patterns": ["ok", "(投诉"]},
                ],
            },
            "definition.condition.any.conditions.1.regex.patterns",
        ),
        ({"type": "all", "conditions": []}, "definition.condition.all.conditions"),
        ({"type": "aspect", "path": ["a", "b", "c", "d"]}, "definition.condition.aspect.path"),
    ],
)
async def test_invalid_rule_is_rejected_with_the_position_of_the_error(env, client, condition, field):
    r = await client.post("/v1/rules", json=rule_with(condition), headers=env.headers(uuid.uuid4()))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == field
    if "regex" in field:
        assert "position 0" in r.json()["detail"] and "pattern 1" in r.json()["detail"]


async def test_versions_locking_enable_disable_and_isolation(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    created = await client.post("/v1/rules", json=NPS_RULE, headers=h)
    assert created.status_code == 201 and created.headers["ETag"] == '"1"'
    rid = created.json()["id"]
    update = {
        "name": "Detractor ≤ 4",
        "definition": {
            **NPS_RULE["definition"],
            "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 4},
        },
    }
    assert (await client.put(f"/v1/rules/{rid}", json=update, headers=h)).status_code == 428
    r = await client.put(f"/v1/rules/{rid}", json=update, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (await client.put(f"/v1/rules/{rid}", json=update, headers={**h, "If-Match": '"1"'})).status_code == 409
    versions = (await client.get(f"/v1/rules/{rid}/versions", headers=h)).json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["definition"]["condition"]["value"] == 6
    assert (await client.post(f"/v1/rules/{rid}/disable", headers=h)).json()["enabled"] is False
    assert (await client.get("/v1/rules?enabled=true", headers=h)).json()["items"] == []
    other = env.headers(uuid.uuid4())
    assert (await client.get(f"/v1/rules/{rid}", headers=other)).status_code == 404
    assert (await client.post(f"/v1/rules/{rid}/enable", headers=other)).status_code == 404
    ro = env.headers(tenant, scopes=("rules:read",))
    assert (await client.post("/v1/rules", json=NPS_RULE, headers=ro)).status_code == 403
    assert (await client.get("/v1/rules")).status_code == 401
    trail = (await client.get("/v1/audit", params={"entity_id": rid}, headers=h)).json()["items"]
    assert [e["action"] for e in trail] == ["created", "updated", "disabled"]
    assert trail[1]["before"]["definition"]["condition"]["value"] == 6
    assert trail[1]["after"]["definition"]["condition"]["value"] == 4


async def test_dry_run_against_recent_signals(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    sentinel = None
    for score, customer in [(2, "x"), (3, "x"), (9, "y"), (5, "z"), (10, "w")]:
        sentinel = await env.publish(tenant, "survey.response.submitted", response_event(nps=score, customer=customer))
        env.clock.advance(minutes=1)

    async def stored():
        r = await client.post("/v1/rules/dry-run", json={"definition": NPS_RULE["definition"]}, headers=h)
        return r.json() if r.json()["evaluated"] == 5 else None

    result = await eventually(stored)
    assert sentinel is not None
    assert result["matched"] == 3
    assert result["would_open_tickets"] == 2  # x's two answers are one burst
    assert sorted(m["customer_key"] for m in result["matches"]) == ["x", "x", "z"]
    # nothing was raised: the dry run has no side effects and there is no enabled rule
    assert (await client.get("/v1/alerts", headers=h)).json()["items"] == []
    stricter = {**NPS_RULE["definition"], "condition": {"type": "score", "metric": "nps", "op": "<", "value": 3}}
    r = await client.post("/v1/rules/dry-run", json={"definition": stricter}, headers=h)
    assert r.json()["matched"] == 1
    bad = await client.post("/v1/rules/dry-run", json={"definition": {"trigger": "x"}}, headers=h)
    assert bad.status_code == 422


async def test_volume_spike_of_an_aspect_against_its_baseline(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    await seed_org(env, client, tenant)
    spike = {
        "type": "volume_spike",
        "path": ["环境", "卫生"],
        "window_minutes": 60,
        "baseline_days": 1,
        "factor": 3,
        "min_count": 3,
    }
    body = rule_with(spike, trigger="feedback.analyzed", grouping_window_minutes=0)
    body["definition"]["actions"] = {"severity": "warning"}
    assert (await client.post("/v1/rules", json=body, headers=h)).status_code == 201
    dirty = [(["环境", "卫生", "地面"], "negative", 0.9)]
    # baseline: 4 mentions spread over the previous day
    base = env.clock.now()
    for hours in (20, 15, 10, 5):
        env.clock.set(base - dt.timedelta(hours=hours))
        await env.publish(tenant, "feedback.analyzed", feedback_event(aspects=dirty, customer=f"b{hours}"))
    env.clock.set(base)
    last = None
    for i in range(3):
        env.clock.advance(minutes=5)
        last = await env.publish(tenant, "feedback.analyzed", feedback_event(aspects=dirty, customer=f"n{i}"))

    async def alerted():
        items = (await client.get("/v1/alerts", headers=h)).json()["items"]
        return items if any(a["source_event_id"] == last.event_id for a in items) else None

    alerts = await eventually(alerted)
    assert len(alerts) == 1  # only the third mention in the hour crosses min_count and 3x the baseline
    assert alerts[0]["reason"].startswith("volume spike 环境/卫生: 3 in 60 min")

    # the spike is one event: further mentions inside its window raise nothing more
    for i in range(3, 5):
        env.clock.advance(minutes=5)
        await env.publish(tenant, "feedback.analyzed", feedback_event(aspects=dirty, customer=f"n{i}"))
    sentinel = await env.publish(tenant, "feedback.analyzed", feedback_event(aspects=[], customer="sentinel"))

    async def stored():
        r = await client.post(
            "/v1/rules/dry-run", json={"definition": body["definition"], "since_hours": 48}, headers=h
        )
        return r.json()["evaluated"] == 10

    await eventually(stored)
    assert sentinel is not None
    assert len((await client.get("/v1/alerts", headers=h)).json()["items"]) == 1
    # a mention after the window, while the count is still high, is a new spike
    env.clock.advance(minutes=61)
    for i in range(5, 8):
        env.clock.advance(minutes=1)
        last = await env.publish(tenant, "feedback.analyzed", feedback_event(aspects=dirty, customer=f"n{i}"))

    async def second():
        items = (await client.get("/v1/alerts", headers=h)).json()["items"]
        return items if len(items) == 2 else None

    newest_first = await eventually(second)
    assert newest_first[0]["source_event_id"] == last.event_id


async def test_unknown_org_units_and_users_in_a_rule_are_refused_once_the_tree_is_known(env, client):
    tenant = uuid.uuid4()
    h = env.headers(tenant)
    scoped = rule_with(NPS_RULE["definition"]["condition"], scope={"org_unit_ids": ["east", "atlantis"]})
    # no org event of this tenant has arrived yet: nothing can be checked, the rule is taken as written
    early = await client.post("/v1/rules", json=scoped, headers=h)
    assert early.status_code == 201, early.text
    await seed_org(env, client, tenant)
    r = await client.post("/v1/rules", json=scoped, headers=h)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] == [
        {"field": "definition.scope.org_unit_ids.1", "message": "unknown org unit atlantis", "type": "unknown"}
    ]
    body = copy.deepcopy(NPS_RULE)
    body["definition"]["actions"]["notify"]["user_ids"] = ["u-east", "ghost"]
    r = await client.post("/v1/rules", json=body, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "definition.actions.notify.user_ids.1"
    # the same checks on a new version
    rid = early.json()["id"]
    update = {"name": "x", "definition": scoped["definition"], "version": 1}
    r = await client.put(f"/v1/rules/{rid}", json=update, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "definition.scope.org_unit_ids.1"
    update["definition"] = {**scoped["definition"], "scope": {"org_unit_ids": ["east"]}}
    assert (await client.put(f"/v1/rules/{rid}", json=update, headers=h)).status_code == 200
