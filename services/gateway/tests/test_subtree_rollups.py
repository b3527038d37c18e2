"""Subtree totals (`rollup_subtree_*`) kept by the projection event by event must equal a rebuild from the per-unit
rollups with the current org tree, through org moves and deletions; queries filtered by touchpoint/stage/channel
(per-unit rollups) and unfiltered ones (subtree totals) give the same numbers."""

import uuid
from typing import Any

from sqlalchemy import select

from cx_gateway.analytics import subtree


async def _snapshot(gw: Any, tenant: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with gw.app.state.runtime.sessions() as session:
        for model in subtree.TABLES:
            table = model.__table__
            keys = [table.c[k] for k in subtree.key_columns(model)]
            rows = (await session.execute(select(table).where(table.c.tenant_id == tenant).order_by(*keys))).all()
            out[table.name] = [tuple(round(v, 6) if isinstance(v, float) else v for v in r) for r in rows]
    return out


async def _rebuilt(gw: Any, tenant: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    async with gw.app.state.runtime.sessions() as session, session.begin():
        await subtree.rebuild(session, tenant)
    return await _snapshot(gw, tenant)


async def _assert_consistent(gw: Any, tenant: uuid.UUID) -> None:
    incremental = await _snapshot(gw, tenant)
    assert incremental["rollup_subtree_daily"] and incremental["rollup_subtree_aspects"]
    assert incremental == await _rebuilt(gw, tenant)


async def _responses(gw: Any, headers: dict[str, str], unit: uuid.UUID | None = None) -> tuple[int, int]:
    """(responses from the subtree totals, responses from the per-unit rollups via a channel filter)."""
    params = {"org_unit_id": str(unit)} if unit else {}
    whole = (await gw.client.get("/api/v1/analytics/overview", params=params, headers=headers)).json()
    web = await gw.client.get("/api/v1/analytics/overview", params={**params, "channel": "web"}, headers=headers)
    return whole["responses"], web.json()["responses"]  # every test response comes through channel "web"


async def test_incremental_totals_equal_a_rebuild(gw, loaded):
    await _assert_consistent(gw, loaded.tenant_id)
    headers = await gw.headers("owner@demo.cx")
    for code, expected in (("HQ", 5), ("R-EAST", 3), ("R-SOUTH", 2), ("S-SH-01", 2)):
        assert await _responses(gw, headers, loaded.units[code]) == (expected, expected), code
    words = (await gw.client.get("/api/v1/analytics/terms?kind=keyword", headers=headers)).json()["items"]
    hotline = (await gw.client.get("/api/v1/analytics/terms?kind=keyword&channel=hotline", headers=headers)).json()[
        "items"
    ]
    assert words == hotline and {w["term"] for w in words} == {"排队", "态度", "fast", "broken"}
    level2 = "/api/v1/analytics/aspects?level=2&parent=服务"
    aspects = (await gw.client.get(level2, headers=headers)).json()["items"]
    assert aspects == (await gw.client.get(level2 + "&channel=hotline", headers=headers)).json()["items"]
    assert {tuple(a["path"]): (a["mentions"], a["negative"]) for a in aspects} == {
        ("服务", "态度"): (1, 1),
        ("服务", "速度"): (1, 0),
    }


async def test_moving_a_store_moves_its_totals(gw, loaded, ev):
    owner = await gw.headers("owner@demo.cx")
    u = loaded.units
    moved = await gw.client.patch(
        f"/api/v1/org-units/{u['S-SH-01']}", json={"parent_id": str(u["R-SOUTH"])}, headers=owner
    )
    assert moved.status_code == 200, moved.text
    assert await _responses(gw, owner, u["R-EAST"]) == (1, 1)
    assert await _responses(gw, owner, u["R-SOUTH"]) == (4, 4)
    assert await _responses(gw, owner, u["HQ"]) == (5, 5)
    top = (await gw.client.get("/api/v1/analytics/drilldown", headers=owner)).json()["items"]
    assert {i["code"]: i["responses"] for i in top} == {"R-EAST": 1, "R-SOUTH": 4, "D-CX": 0}
    await _assert_consistent(gw, loaded.tenant_id)
    # the region, moved under the other one, takes everything below it along
    nested = await gw.client.patch(
        f"/api/v1/org-units/{u['R-EAST']}", json={"parent_id": str(u["R-SOUTH"])}, headers=owner
    )
    assert nested.status_code == 200, nested.text
    assert await _responses(gw, owner, u["R-SOUTH"]) == (5, 5)
    await _assert_consistent(gw, loaded.tenant_id)
    # and events after the move count under the new ancestors
    await ev.publish(gw, "survey.response.submitted", ev.response(u["S-HZ-01"], 9), loaded.tenant_id)

    async def counted():
        return await _responses(gw, owner, u["R-SOUTH"]) == (6, 6) or None

    await ev.until(counted)
    assert await _responses(gw, owner, u["R-EAST"]) == (2, 2)
    await _assert_consistent(gw, loaded.tenant_id)


async def test_deleting_a_store_takes_its_totals_out(gw, loaded):
    owner = await gw.headers("owner@demo.cx")
    u = loaded.units
    gone = await gw.client.delete(f"/api/v1/org-units/{u['S-SZ-01']}", headers=owner)
    assert gone.status_code == 204, gone.text
    assert await _responses(gw, owner, u["R-SOUTH"]) == (1, 1)
    assert await _responses(gw, owner) == (4, 4)
    await _assert_consistent(gw, loaded.tenant_id)


async def test_an_event_for_an_unknown_unit_counts_for_tenant_wide_viewers_only(gw, loaded, ev):
    owner, east = await gw.headers("owner@demo.cx"), await gw.headers("east.manager@demo.cx")
    await ev.publish(gw, "survey.response.submitted", ev.response(uuid.uuid4(), 10), loaded.tenant_id)

    async def counted():
        return await _responses(gw, owner) == (6, 6) or None

    await ev.until(counted)
    assert await _responses(gw, east) == (3, 3)
    top = (await gw.client.get("/api/v1/analytics/drilldown", headers=owner)).json()["items"]
    assert sum(i["responses"] for i in top) == 5  # not on any unit of the tree
    await _assert_consistent(gw, loaded.tenant_id)
