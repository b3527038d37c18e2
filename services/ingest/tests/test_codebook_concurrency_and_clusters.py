"""Concurrent codebook changes (draft edits, publishes, activations, promotions) apply one after another; generated
node ids are random; unpublished codebooks cannot replace a published active one; deep or cyclic trees are a 422;
clusters are promoted once, with NodeIn's limits, and are seen through the caller's org-unit scope."""

import asyncio
import re
import uuid
from typing import Any

from cx.nlp.v1 import nlp_pb2

ROOT = {"id": "root", "names": {"zh-Hans": "根"}}


async def make_codebook(ingest, tenant, **fields: Any) -> str:
    body = {"name": "cb", "nodes": [ROOT], **fields}
    created = await ingest.client.post("/v1/codebooks", json=body, headers=ingest.auth(tenant))
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def draft(ingest, tenant, cb_id) -> list[dict[str, Any]]:
    got = await ingest.client.get(f"/v1/codebooks/{cb_id}", headers=ingest.auth(tenant))
    return got.json()["draft_nodes"]


async def test_parallel_draft_edits_all_land(ingest):
    tenant = uuid.uuid4()
    cb_id = await make_codebook(ingest, tenant)
    headers = ingest.auth(tenant)

    def add(i):
        node = {"id": f"n{i}", "parent_id": "root", "names": {"zh-Hans": f"节点{i}"}}
        return ingest.client.post(f"/v1/codebooks/{cb_id}/nodes", json=node, headers=headers)

    added = await asyncio.gather(*(add(i) for i in range(6)))
    assert [r.status_code for r in added] == [201] * 6, [r.text for r in added]
    assert sorted(n["id"] for n in await draft(ingest, tenant, cb_id)) == ["n0", "n1", "n2", "n3", "n4", "n5", "root"]

    def patch(i):
        body = {"keywords": [f"kw{i}"]}
        return ingest.client.patch(f"/v1/codebooks/{cb_id}/nodes/n{i}", json=body, headers=headers)

    patched = await asyncio.gather(*(patch(i) for i in range(6)), add(6))
    assert [r.status_code for r in patched] == [200] * 6 + [201]
    nodes = {n["id"]: n for n in await draft(ingest, tenant, cb_id)}
    assert [nodes[f"n{i}"]["keywords"] for i in range(6)] == [[f"kw{i}"] for i in range(6)]
    assert "n6" in nodes
    history = (await ingest.client.get(f"/v1/codebooks/{cb_id}/history", headers=headers)).json()
    assert [h["action"] for h in history].count("node_added") == 7


async def test_parallel_publishes_get_consecutive_versions(ingest):
    tenant = uuid.uuid4()
    cb_id = await make_codebook(ingest, tenant, active=True)
    headers = ingest.auth(tenant)
    published = await asyncio.gather(
        *(ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=headers) for _ in range(5))
    )
    assert [r.status_code for r in published] == [201] * 5, [r.text for r in published]
    assert sorted(r.json()["version"] for r in published) == [1, 2, 3, 4, 5]
    got = await ingest.client.get(f"/v1/codebooks/{cb_id}", headers=headers)
    assert got.json()["latest_version"] == 5


async def test_parallel_activations_leave_exactly_one_active(ingest):
    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    ids = [await make_codebook(ingest, tenant, name=f"cb{i}") for i in range(4)]
    for cb_id in ids:
        await ingest.client.post(f"/v1/codebooks/{cb_id}/versions", json={}, headers=headers)
    activated = await asyncio.gather(
        *(ingest.client.post(f"/v1/codebooks/{cb_id}:activate", headers=headers) for cb_id in ids)
    )
    assert [r.status_code for r in activated] == [200] * 4, [r.text for r in activated]
    listed = (await ingest.client.get("/v1/codebooks", headers=headers)).json()
    assert sum(c["active"] for c in listed) == 1

    other = uuid.uuid4()
    created = await asyncio.gather(
        *(
            ingest.client.post("/v1/codebooks", json={"name": f"c{i}", "active": True}, headers=ingest.auth(other))
            for i in range(4)
        )
    )
    assert [r.status_code for r in created] == [201] * 4, [r.text for r in created]
    listed = (await ingest.client.get("/v1/codebooks", headers=ingest.auth(other))).json()
    assert sum(c["active"] for c in listed) == 1


async def test_generated_node_ids_are_random(ingest):
    tenant = uuid.uuid4()
    nodes = [{"names": {"zh-Hans": f"节点{i}"}} for i in range(20)]
    created = await ingest.client.post("/v1/codebooks", json={"name": "x", "nodes": nodes}, headers=ingest.auth(tenant))
    assert created.status_code == 201, created.text
    ids = [n["id"] for n in created.json()["draft_nodes"]]
    assert len(set(ids)) == 20
    assert all(re.fullmatch(r"[0-9a-f]{12}", i) for i in ids)


async def test_an_unpublished_codebook_cannot_replace_a_published_active_one(ingest):
    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    live = await make_codebook(ingest, tenant, name="live", active=True)
    await ingest.client.post(f"/v1/codebooks/{live}/versions", json={}, headers=headers)
    fresh = await make_codebook(ingest, tenant, name="fresh")

    refused = await ingest.client.post(f"/v1/codebooks/{fresh}:activate", headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert "publish a version first" in refused.json()["detail"]
    also = await ingest.client.post("/v1/codebooks", json={"name": "new", "active": True}, headers=headers)
    assert also.status_code == 409, also.text
    listed = {c["name"]: c["active"] for c in (await ingest.client.get("/v1/codebooks", headers=headers)).json()}
    assert listed == {"live": True, "fresh": False}

    await ingest.client.post(f"/v1/codebooks/{fresh}/versions", json={}, headers=headers)
    activated = await ingest.client.post(f"/v1/codebooks/{fresh}:activate", headers=headers)
    assert activated.status_code == 200, activated.text
    listed = {c["name"]: c["active"] for c in (await ingest.client.get("/v1/codebooks", headers=headers)).json()}
    assert listed == {"live": False, "fresh": True}


async def test_deep_chains_and_cycles_are_a_422(ingest):
    chain = [{"id": "n0", "names": {"zh-Hans": "n0"}}]
    chain += [{"id": f"n{i}", "parent_id": f"n{i - 1}", "names": {"zh-Hans": f"n{i}"}} for i in range(1, 3000)]
    long_cycle = [{"id": f"c{i}", "parent_id": f"c{(i + 1) % 10}", "names": {"zh-Hans": f"c{i}"}} for i in range(10)]
    cases = [
        (list(reversed(chain)), "nodes.0.parent_id", "at most 3 levels"),
        ([{"id": "a", "parent_id": "a", "names": {"zh-Hans": "甲"}}], "nodes.0.parent_id", "cycle"),
        (long_cycle, "nodes.9.parent_id", "cycle"),
    ]
    for nodes, field, message in cases:
        response = await ingest.client.post(
            "/v1/codebooks", json={"name": "x", "nodes": nodes}, headers=ingest.auth(uuid.uuid4())
        )
        assert response.status_code == 422, response.text[:500]
        assert response.json()["errors"][0]["field"] == field
        assert message in response.json()["detail"]


# -- clusters -------------------------------------------------------------------------------------------------------


class FakeNlp:
    """NLP Cluster: items whose text starts with the same two characters form a cluster; singletons are noise."""

    def __init__(self, keywords: int = 2) -> None:
        self.keywords = keywords

    async def Cluster(self, request, **_call_options):
        groups: dict[str, list[nlp_pb2.TextInput]] = {}
        for item in request.items:
            groups.setdefault(item.text[:2], []).append(item)
        response = nlp_pb2.ClusterResponse()
        for prefix, items in groups.items():
            if len(items) < 2:
                response.noise_ids.extend(i.id for i in items)
                continue
            response.clusters.append(
                nlp_pb2.Cluster(
                    size=len(items),
                    keywords=[nlp_pb2.Keyword(text=f"{prefix}{k}", weight=1.0) for k in range(self.keywords)]
                    + [nlp_pb2.Keyword(text=i.text[2:], weight=0.5) for i in items],  # a term of each member's text
                    member_ids=[i.id for i in items],
                    representative_ids=[i.id for i in items],
                    representative_texts=[i.text for i in items],
                )
            )
        return response


async def unmatched_feedback(ingest, tenant, items: list[tuple[str, str]]) -> dict[str, str]:
    """(text, org unit) items stored as analysed and unmatched; returns text -> feedback id."""
    _, key = await ingest.partner(tenant)
    body = {"items": [{"external_id": str(i), "text": t, "org_unit_id": u} for i, (t, u) in enumerate(items)]}
    sent = await ingest.client.post("/v1/feedback:batch", json=body, headers=ingest.key(key))
    assert sent.status_code in (200, 201, 202), sent.text
    await ingest.sql(
        "UPDATE feedback_items SET analysis_state = 'done', unmatched = true, analyzed_at = now() WHERE tenant_id = $1",
        tenant,
    )
    rows = await ingest.sql("SELECT id, text FROM feedback_items WHERE tenant_id = $1", tenant)
    return {r["text"]: str(r["id"]) for r in rows}


async def cluster_run(ingest, tenant, headers=None) -> dict[str, Any]:
    run = await ingest.client.post("/v1/clusters/runs", json={}, headers=headers or ingest.auth(tenant))
    assert run.status_code == 201, run.text
    return run.json()


PARKING_AND_PRICES = [
    ("停车难", "s1"),
    ("停车贵", "s2"),
    ("停车乱", "s1"),
    ("价格高", "s2"),
    ("价格乱", "s2"),
    ("厕所", "s1"),
]


async def test_a_cluster_is_promoted_once_and_parallel_promotions_all_land(ingest, monkeypatch):
    monkeypatch.setitem(ingest.app.state.runtime.extras, "nlp_stub", FakeNlp())
    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    await unmatched_feedback(ingest, tenant, PARKING_AND_PRICES)
    cb_id = await make_codebook(ingest, tenant)
    run = await cluster_run(ingest, tenant)
    assert [c["size"] for c in run["clusters"]] == [3, 2]
    assert run["noise_count"] == 1

    def promote(cluster, name):
        body = {"codebook_id": cb_id, "parent_id": "root", "names": {"zh-Hans": name}}
        return ingest.client.post(f"/v1/clusters/{cluster['id']}:promote", json=body, headers=headers)

    first, second = await asyncio.gather(promote(run["clusters"][0], "停车"), promote(run["clusters"][1], "价格"))
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    nodes = {n["id"] for n in await draft(ingest, tenant, cb_id)}
    again = (await ingest.client.get(f"/v1/clusters/runs/{run['id']}", headers=headers)).json()
    promoted = [c["promoted_node_id"] for c in again["clusters"]]
    assert all(p in nodes for p in promoted) and len(nodes) == 3

    twice = await promote(run["clusters"][0], "停车2")
    assert twice.status_code == 409, twice.text
    assert twice.headers["content-type"].startswith("application/problem+json")
    assert len(await draft(ingest, tenant, cb_id)) == 3

    # the same cluster promoted twice at once: one of the two lands
    run2 = await cluster_run(ingest, tenant)
    results = await asyncio.gather(promote(run2["clusters"][0], "甲"), promote(run2["clusters"][0], "乙"))
    assert sorted(r.status_code for r in results) == [200, 409]
    assert len(await draft(ingest, tenant, cb_id)) == 4


async def test_promote_keywords_over_the_node_limit_are_a_422(ingest, monkeypatch):
    monkeypatch.setitem(ingest.app.state.runtime.extras, "nlp_stub", FakeNlp(keywords=201))
    tenant = uuid.uuid4()
    headers = ingest.auth(tenant)
    await unmatched_feedback(ingest, tenant, PARKING_AND_PRICES)
    cb_id = await make_codebook(ingest, tenant)
    cluster = (await cluster_run(ingest, tenant))["clusters"][0]
    url = f"/v1/clusters/{cluster['id']}:promote"
    body = {"codebook_id": cb_id, "names": {"zh-Hans": "停车"}}
    explicit = await ingest.client.post(url, json={**body, "keywords": ["k"] * 201}, headers=headers)
    assert explicit.status_code == 422, explicit.text
    assert explicit.json()["errors"][0]["field"] == "keywords"
    defaulted = await ingest.client.post(url, json=body, headers=headers)  # the cluster's own 201 keywords
    assert defaulted.status_code == 422, defaulted.text
    assert defaulted.json()["errors"][0]["field"] == "keywords"
    ok = await ingest.client.post(url, json={**body, "keywords": ["停车"]}, headers=headers)
    assert ok.status_code == 200, ok.text


async def test_cluster_runs_are_seen_through_the_org_unit_scope(ingest, monkeypatch):
    monkeypatch.setitem(ingest.app.state.runtime.extras, "nlp_stub", FakeNlp())
    tenant = uuid.uuid4()
    for unit in ("s1", "s2"):
        await ingest.sql(
            "INSERT INTO org_units (tenant_id, id, parent_id, ancestor_ids, name, deleted, created_at, updated_at) "
            "VALUES ($1, $2, 'hq', '[\"hq\"]', $2, false, now(), now())",
            tenant,
            unit,
        )
    ids = await unmatched_feedback(ingest, tenant, PARKING_AND_PRICES)
    cb_id = await make_codebook(ingest, tenant)

    def store(unit):
        token = ingest.tokens.mint(tenant, scopes=("*",), org_unit_id=unit)
        return {"Authorization": f"Bearer {token}"}

    run = await cluster_run(ingest, tenant, headers=store("s1"))  # the run clusters the whole tenant
    assert run["item_count"] == 2 and run["noise_count"] is None
    assert [(c["rank"], c["size"]) for c in run["clusters"]] == [(0, 2)]  # the price cluster has nothing of s1
    assert set(run["clusters"][0]["member_ids"]) == {ids["停车难"], ids["停车乱"]}
    assert {r["text"] for r in run["clusters"][0]["representatives"]} == {"停车难", "停车乱"}
    assert [k["text"] for k in run["clusters"][0]["keywords"]] == ["难", "乱"]  # not 贵: only s2's text has it

    full = (await ingest.client.get(f"/v1/clusters/runs/{run['id']}", headers=ingest.auth(tenant))).json()
    assert [c["size"] for c in full["clusters"]] == [3, 2] and full["noise_count"] == 1
    s2 = (await ingest.client.get(f"/v1/clusters/runs/{run['id']}", headers=store("s2"))).json()
    assert [(c["rank"], c["size"]) for c in s2["clusters"]] == [(0, 2), (1, 1)]  # prices first for s2
    assert {r["text"] for c in s2["clusters"] for r in c["representatives"]} == {"价格高", "价格乱", "停车贵"}
    listed = (await ingest.client.get("/v1/clusters/runs", headers=store("s2"))).json()
    assert [(r["item_count"], r["noise_count"]) for r in listed] == [(3, None)]
    assert (await ingest.client.get("/v1/clusters/runs", headers=ingest.auth(tenant))).json()[0]["item_count"] == 6

    prices = next(c for c in full["clusters"] if c["size"] == 2)
    body = {"codebook_id": cb_id, "names": {"zh-Hans": "价格"}, "keywords": ["价格"]}
    hidden = await ingest.client.post(f"/v1/clusters/{prices['id']}:promote", json=body, headers=store("s1"))
    assert hidden.status_code == 404, hidden.text
    parking = next(c for c in full["clusters"] if c["size"] == 3)
    body = {"codebook_id": cb_id, "names": {"zh-Hans": "停车"}, "keywords": ["停车"]}
    promoted = await ingest.client.post(f"/v1/clusters/{parking['id']}:promote", json=body, headers=store("s1"))
    assert promoted.status_code == 200, promoted.text
    node = next(n for n in promoted.json()["draft_nodes"] if n["names"]["zh-Hans"] == "停车")
    assert sorted(node["examples"]) == sorted(["停车难", "停车乱"])  # no texts of other stores
