"""Tenant and scope isolation: every list/get endpoint (read from the services' OpenAPI documents, see two_tenants.py),
asked by every role of two tenants loaded through the real APIs, returns nothing of the other tenant; a store's users
get nothing of another store's responses, feedback, alerts or tickets."""

from __future__ import annotations

import collections

import pytest
from two_tenants import USERS, World, fetch_all, leaks_in, requests_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# -- the checks ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tenant", "other"), [("a", "b"), ("b", "a")])
def test_no_role_of_a_tenant_sees_anything_of_the_other(world: World, tenant: str, other: str) -> None:
    """Lists and gets of the tenant's own resources, and gets of the other tenant's ids, for every role."""
    t, o = world.tenants[tenant], world.tenants[other]
    leaks: list[str] = []
    statuses = collections.Counter[str]()
    for key, _, _ in USERS:
        for ep, path, r in fetch_all(world, t.tokens[key], requests_for(world, tenant, own=True, other=other)):
            statuses[str(r.status_code)] += 1
            assert r.status_code < 500, f"{key}: GET {ep.service} {path} -> {r.status_code} {r.text[:300]}"
            if 200 <= r.status_code < 300:
                leaks += [
                    f"{key} ({tenant}) GET {ep.service} {path}: {x}"
                    for x in leaks_in(r.text, o.seen_ids, (o.marker,), path)
                ]
    print(f"tenant {tenant} vs {other}: {sum(statuses.values())} requests by status {dict(statuses)}")
    assert leaks == [], f"{len(leaks)} leaks of tenant {other} to tenant {tenant}:\n" + "\n".join(leaks[:30])
    assert statuses["200"] > 100, statuses  # the requests did reach real data


def store_leaks(world: World, user: str, away: str) -> list[str]:
    leaks: list[str] = []
    for name, t in world.tenants.items():
        needles, markers = t.store_ids[away], (t.store_marker(away),)
        requests = list(requests_for(world, name, own=True, other=None))
        for ep, path, r in fetch_all(world, t.tokens[user], requests):
            if not 200 <= r.status_code < 300:
                continue
            leaks += [f"{user} ({name}) GET {ep.service} {path}: {x}" for x in leaks_in(r.text, needles, markers, path)]
            if any(i in path for i in needles):
                leaks.append(f"{user} ({name}) GET {ep.service} {path}: {r.status_code} for {away}'s data")
    return leaks


STORE_USERS = [("manager1", "s2"), ("agent1", "s2"), ("viewer2", "s1")]


@pytest.mark.parametrize(("user", "away"), STORE_USERS)
def test_store_users_see_nothing_of_another_store(world: World, user: str, away: str) -> None:
    """A store's manager, agent or viewer gets none of another store's responses, feedback, alerts or tickets."""
    leaks = store_leaks(world, user, away)
    assert leaks == [], f"{len(leaks)} leaks of {away}'s data to {user}:\n" + "\n".join(leaks[:30])
