"""No route of any service runs in FastAPI's thread pool: a plain `def` endpoint or dependency is called through
`run_in_threadpool`, two thread hand-offs per request (measured on the ingest hot path: ~8 % of the process's CPU
for a dependency that only read `request.app.state`). Everything on a request path is `async def`."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Mount

from cx_local.pytest_plugin import offline_app


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (included := getattr(route, "original_router", None)) is not None:  # FastAPI ≥ 0.16x: include_router
            yield from _api_routes(included.routes)
        elif isinstance(route, Mount):
            yield from _api_routes(route.routes)


def _sync_calls(dependant: Dependant) -> Iterator[str]:
    call = dependant.call
    if call is not None and not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)):
        yield getattr(call, "__qualname__", repr(call))
    for sub in dependant.dependencies:
        yield from _sync_calls(sub)


@pytest.mark.parametrize("service", ["gateway", "survey", "ingest", "alerts"])
def test_no_route_runs_in_the_thread_pool(service: str) -> None:
    routes = list(_api_routes(offline_app(service).routes))
    assert len(routes) > 10
    sync = sorted({f"{'/'.join(r.methods)} {r.path}: {name}" for r in routes for name in _sync_calls(r.dependant)})
    assert sync == [], f"{len(sync)} plain-def endpoints/dependencies in {service}:\n" + "\n".join(sync)
