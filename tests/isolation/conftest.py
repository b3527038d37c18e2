"""One stack with two tenants for every test of this directory; the stack harness comes from tests/e2e."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_here = Path(__file__).resolve().parent
for _path in (str(_here), str(_here.parent / "e2e")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from e2e_stack import LocalStack  # noqa: E402
from two_tenants import Endpoint, World, collect_ids, crawl, get_endpoints, load_tenant  # noqa: E402


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = LocalStack(
        env={
            "gateway": {
                "CX_GATEWAY_PASSWORD_MEMORY_KIB": "8192",
                "CX_GATEWAY_PASSWORD_TIME_COST": "1",
                "CX_GATEWAY_ACCESS_TOKEN_TTL_S": "3600",
                # thousands of reads by a handful of users in a minute: not what this test is about
                "CX_GATEWAY_RATE_LIMIT_PER_MINUTE": "10000000",
                "CX_GATEWAY_RATE_LIMIT_BURST": "1000000",
            },
        },
    )
    try:
        stack.up()
        tenants = {name: load_tenant(stack, name) for name in ("a", "b")}
        endpoints = get_endpoints(stack)
        concrete: dict[str, dict[Endpoint, list[str]]] = {}
        for name, t in tenants.items():
            concrete[name], unresolved = crawl(stack, t.tokens["owner"], endpoints, t.known)
            assert unresolved == [], f"no value for the path parameters of: {unresolved}"
            collect_ids(stack, t, concrete[name])
        shared = tenants["a"].seen_ids & tenants["b"].seen_ids
        assert not shared, f"ids in the answers of both tenants: {sorted(shared)[:5]}"
        yield World(stack, tenants, endpoints, concrete)
    finally:
        stack.dump_logs(tmp_path_factory.mktemp("isolation-logs"))
        stack.down()
