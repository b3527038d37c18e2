"""`/api/v1/<resource>[/<path>]` → the owning service. Scope enforcement here; the caller's identity, request id and
traceparent travel on; org scoping is enforced upstream (the token carries `org`) and re-checked here on every
JSON answer that names an `org_unit_id` (defence in depth: out-of-scope items are dropped, objects become 404)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from cx_common.app import get_runtime
from cx_common.auth import Principal
from cx_common.errors import Problem
from cx_gateway.identity import service as identity_service
from cx_gateway.identity.deps import API_TOKEN_PREFIX, gateway_principal, raw_token
from cx_gateway.identity.keys import KeyRing
from cx_gateway.identity.roles import scope_allowed
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.service import scope_of
from cx_gateway.proxy.client import Upstreams
from cx_gateway.proxy.routes import ROUTES, Route, Upstream, required_scope
from cx_gateway.settings import Settings

router = APIRouter(prefix="/api/v1")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def upstream_authorization(request: Request, principal: Principal) -> str:
    token = raw_token(request)
    if token.startswith(API_TOKEN_PREFIX):
        ring = cast(KeyRing, request.app.state.runtime.extras["keyring"])
        token = await identity_service.mint_for_principal(principal, ring, cast(Settings, request.app.state.settings))
    return f"Bearer {token}"


async def visible_unit_ids(request: Request, principal: Principal) -> set[str] | None:
    """Ids of the org units the caller may see; None = the whole tenant."""
    runtime = get_runtime(request)
    assert runtime.sessions is not None
    async with runtime.sessions() as session:
        scope = await scope_of(session, principal)
        if scope.root_path is None:
            return None
        rows = await session.execute(select(OrgUnit.id).where(OrgUnit.id.in_(scope.unit_ids_query())))
        return {str(r) for r in rows.scalars()}


def _in_scope(item: Any, visible: set[str]) -> bool:
    if not isinstance(item, dict) or "org_unit_id" not in item:
        return True
    value = item.get("org_unit_id")
    return value in (None, "") or str(value) in visible


def filter_scoped(body: Any, visible: set[str]) -> tuple[Any, bool]:
    """(filtered body, visible?) — lists lose out-of-scope items; an out-of-scope object is not visible."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return {**body, "items": [i for i in body["items"] if _in_scope(i, visible)]}, True
    if isinstance(body, list):
        return [i for i in body if _in_scope(i, visible)], True
    return body, _in_scope(body, visible)


async def ensure_item_visible(
    upstreams: Upstreams,
    upstream: Upstream,
    item_path: str,
    authorization: str,
    visible: set[str] | None,
    what: str,
) -> None:
    """Before a write on an item, read it and answer 404 when it belongs to an org unit outside the caller's scope
    (the owning service checks too; this keeps the gateway's promise even if one of them does not)."""
    if visible is None:
        return
    answer = await upstreams.request(upstream, "GET", item_path, authorization=authorization)
    if answer.status_code != 200 or not answer.is_json:
        return
    try:
        body = json.loads(answer.content)
    except ValueError:
        return
    if not _in_scope(body, visible):
        raise Problem(404, f"{what} not found")


def _make_endpoint(route: Route) -> Callable[..., Awaitable[Response]]:
    async def forward(request: Request, rest: str = "") -> Response:
        principal = await gateway_principal(request)
        scope = required_scope(route, request.method)
        if not scope_allowed(principal.scopes, scope):
            raise Problem(403, f"missing scope: {scope}", missing_scopes=[scope])
        visible = await visible_unit_ids(request, principal)
        upstreams = cast(Upstreams, request.app.state.runtime.extras["upstreams"])
        path = route.upstream_prefix + (f"/{rest}" if rest else "")
        authorization = await upstream_authorization(request, principal)
        if request.method != "GET" and rest:
            item = rest.split("/", 1)[0].split(":", 1)[0]
            await ensure_item_visible(
                upstreams, route.upstream, f"{route.upstream_prefix}/{item}", authorization, visible, route.resource
            )
        answer = await upstreams.request(
            route.upstream,
            request.method,
            path,
            authorization=authorization,
            params=list(request.query_params.multi_items()),
            headers=request.headers,
            content=await request.body() if request.method not in ("GET", "HEAD", "DELETE") else None,
        )
        content = answer.content
        if visible is not None and answer.is_json and 200 <= answer.status_code < 300 and content:
            try:
                body = json.loads(content)
            except ValueError:
                body = None
            if body is not None:
                body, ok = filter_scoped(body, visible)
                if not ok:
                    raise Problem(404, f"{route.resource} {rest or ''} not found".replace("  ", " "))
                content = json.dumps(body, ensure_ascii=False).encode()
        return Response(content=content, status_code=answer.status_code, headers=answer.headers)

    forward.__name__ = f"forward_{route.resource.replace('-', '_')}"
    return forward


for _route in ROUTES:
    _endpoint = _make_endpoint(_route)
    _name = _route.resource.replace("-", "_")
    for _method in METHODS:
        router.add_api_route(
            f"/{_route.resource}",
            _endpoint,
            methods=[_method],
            tags=[_route.resource],
            summary=f"{_route.summary} (forwarded to {_route.upstream}; scope {required_scope(_route, _method)})",
            operation_id=f"{_method.lower()}_{_name}",
            response_class=Response,
        )
        router.add_api_route(
            f"/{_route.resource}/{{rest:path}}",
            _endpoint,
            methods=[_method],
            tags=[_route.resource],
            summary=f"{_route.summary}: item or sub-resource (forwarded; scope {required_scope(_route, _method)})",
            operation_id=f"{_method.lower()}_{_name}_item",
            response_class=Response,
        )
