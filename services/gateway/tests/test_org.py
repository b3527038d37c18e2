"""Org tree of any depth: create, move (subtree paths follow), delete rules, scoping, and the org events on NATS."""

import asyncio

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, DeliverPolicy

from cx.events.v1 import events_pb2


async def test_tree_any_depth_move_and_delete(gw, demo):
    admin = await gw.headers("admin@demo.cx")
    east = str(demo.units["R-EAST"])
    city = await gw.client.post(
        "/api/v1/org-units",
        json={"name": "上海市 Shanghai", "code": "C-SH", "kind": "city", "parent_id": east},
        headers=admin,
    )
    assert city.status_code == 201, city.text
    city_id = city.json()["id"]
    assert city.json()["ancestor_ids"] == [str(demo.units["HQ"]), east] and city.json()["depth"] == 2
    counter = await gw.client.post(
        "/api/v1/org-units",
        json={"name": "柜台 Counter", "code": "S-SH-01-A", "kind": "counter", "parent_id": str(demo.units["S-SH-01"])},
        headers=admin,
    )
    assert counter.status_code == 201
    # move the Shanghai store (with its counter) under the city
    moved = await gw.client.patch(
        f"/api/v1/org-units/{demo.units['S-SH-01']}", json={"parent_id": city_id}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["depth"] == 3
    counter_now = (await gw.client.get(f"/api/v1/org-units/{counter.json()['id']}", headers=admin)).json()
    assert counter_now["ancestor_ids"] == [str(demo.units["HQ"]), east, city_id, str(demo.units["S-SH-01"])]
    # the store manager's scope follows the move
    manager = await gw.headers("store.manager@demo.cx")
    codes = [u["code"] for u in (await gw.client.get("/api/v1/org-units", headers=manager)).json()["items"]]
    assert codes == ["S-SH-01", "S-SH-01-A"]
    # cycles and orphaning are refused
    cycle = await gw.client.patch(
        f"/api/v1/org-units/{city_id}", json={"parent_id": counter.json()["id"]}, headers=admin
    )
    assert cycle.status_code == 422 and cycle.json()["field"] == "parent_id"
    assert (await gw.client.delete(f"/api/v1/org-units/{city_id}", headers=admin)).status_code == 409
    assert (await gw.client.delete(f"/api/v1/org-units/{counter.json()['id']}", headers=admin)).status_code == 204
    tree = (await gw.client.get("/api/v1/org-units/tree", headers=admin)).json()
    assert tree[0]["code"] == "HQ"
    east_node = next(c for c in tree[0]["children"] if c["code"] == "R-EAST")
    assert {c["code"] for c in east_node["children"]} == {"C-SH", "S-HZ-01"}


async def test_org_scoping_and_validation(gw, demo):
    east = await gw.headers("east.manager@demo.cx")
    codes = {u["code"] for u in (await gw.client.get("/api/v1/org-units?limit=100", headers=east)).json()["items"]}
    assert codes == {"R-EAST", "S-SH-01", "S-HZ-01"}
    assert (await gw.client.get(f"/api/v1/org-units/{demo.units['S-GZ-01']}", headers=east)).status_code == 404
    assert (await gw.client.post("/api/v1/org-units", json={"name": "x", "code": "x"}, headers=east)).status_code == 403
    admin = await gw.headers("admin@demo.cx")
    second_root = await gw.client.post("/api/v1/org-units", json={"name": "x", "code": "X1"}, headers=admin)
    assert second_root.status_code == 422 and second_root.json()["field"] == "parent_id"
    dup = await gw.client.post(
        "/api/v1/org-units", json={"name": "x", "code": "S-GZ-01", "parent_id": str(demo.units["HQ"])}, headers=admin
    )
    assert dup.status_code == 409
    bad = await gw.client.post("/api/v1/org-units", json={"name": "", "code": "ok"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
    page1 = (await gw.client.get("/api/v1/org-units?limit=3", headers=admin)).json()
    page2 = (await gw.client.get(f"/api/v1/org-units?limit=10&cursor={page1['next_cursor']}", headers=admin)).json()
    assert len(page1["items"]) + len(page2["items"]) == 8 and page2["next_cursor"] is None


async def test_org_events_reach_nats_with_ancestors(gw, demo):
    bus = gw.app.state.runtime.bus
    subject = f"{gw.settings.events_subject_prefix}.org.unit.upserted"
    sub = await bus.js.pull_subscribe(
        subject, durable=None, stream=bus.stream, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    seen: dict[str, events_pb2.OrgUnitChanged] = {}
    deadline = asyncio.get_running_loop().time() + 20
    while len(seen) < 8 and asyncio.get_running_loop().time() < deadline:
        try:
            msgs = await sub.fetch(20, timeout=1)
        except NatsTimeoutError:
            continue
        for msg in msgs:
            env = events_pb2.Envelope.FromString(msg.data)
            seen[env.org_unit_changed.code] = env.org_unit_changed
            assert env.tenant_id == str(demo.tenant_id) and env.source == "gateway"
            await msg.ack()
    assert len(seen) == 8
    store = seen["S-SH-01"]
    assert list(store.ancestor_ids) == [str(demo.units["HQ"]), str(demo.units["R-EAST"])]
    assert store.kind == "store" and store.parent_id == str(demo.units["R-EAST"])
