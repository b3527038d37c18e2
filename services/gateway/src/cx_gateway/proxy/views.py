"""`/api/v1/<resource>[/<path>]` → the owning service. Scope enforcement here; the caller's identity, request id and
traceparent travel on; org scoping is enforced upstream (the token carries `org`) and re-checked here on every JSON
answer by the resource's rule in `scoping.py` (defence in depth: out-of-scope items are dropped, objects become
404)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import cast

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
from cx_gateway.proxy.scoping import CallerUnits, ScopeRule, audit_subject, filter_scoped, rule_for, visible
from cx_gateway.settings import Settings

router = APIRouter(prefix="/api/v1")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def upstream_authorization(request: Request, principal: Principal) -> str:
    token = raw_token(request)
    if token.startswith(API_TOKEN_PREFIX):
        ring = cast(KeyRing, request.app.state.runtime.extras["keyring"])
        token = await identity_service.mint_for_principal(principal, ring, cast(Settings, request.app.state.settings))
    return f"Bearer {token}"


async def caller_units(request: Request, principal: Principal) -> CallerUnits:
    """The org units the caller may see (the whole tenant from the root unit or without an org claim)."""
    runtime = get_runtime(request)
    assert runtime.sessions is not None
    async with runtime.sessions() as session:
        scope = await scope_of(session, principal)
        if scope.root_path is None or scope.root_path.count("/") == 2:
            return CallerUnits(None)
        rows = await session.execute(select(OrgUnit.id).where(OrgUnit.id.in_(scope.unit_ids_query())))
        above = scope.root_path.strip("/").split("/")[:-1]
        return CallerUnits(frozenset(str(r) for r in rows.scalars()), frozenset(above))


async def ensure_item_visible(
    upstreams: Upstreams,
    upstream: Upstream,
    item_path: str,
    authorization: str,
    rule: ScopeRule,
    caller: CallerUnits,
    what: str,
) -> None:
    """Before a write on an item, read it and answer 404 when it belongs to an org unit outside the caller's scope
    (the owning service checks too; this keeps the gateway's promise even if one of them does not)."""
    if caller.subtree is None:
        return
    answer = await upstreams.request(upstream, "GET", item_path, authorization=authorization)
    if answer.status_code != 200 or not answer.is_json:
        return
    try:
        body = json.loads(answer.content)
    except ValueError:
        return
    if not visible(body, rule, caller):
        raise Problem(404, f"{what} not found")


async def ensure_audit_visible(
    upstreams: Upstreams, rest: str, params: list[tuple[str, str]], authorization: str, caller: CallerUnits
) -> None:
    """Org-scoped callers read the (tenant-wide) audit trail only for a ticket or task they can see."""
    subject = audit_subject(rest, params)
    if subject is None:
        raise Problem(
            403,
            "audit: the trail spans the whole tenant; below the root unit ask for the entries of one ticket or task "
            "you can see (entity_type=ticket|task and entity_id)",
            field="entity_id",
        )
    resource, item = subject
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", item):
        raise Problem(422, "entity_id: not an id", field="entity_id")
    answer = await upstreams.request("alerts", "GET", f"/v1/{resource}/{item}", authorization=authorization)
    body: object = None
    if answer.status_code == 200 and answer.is_json:
        try:
            body = json.loads(answer.content)
        except ValueError:
            body = None
    if not isinstance(body, dict) or not visible(body, rule_for(resource), caller):
        raise Problem(404, f"{resource[:-1]} {item} not found")


def _make_endpoint(route: Route) -> Callable[..., Awaitable[Response]]:
    async def forward(request: Request, rest: str = "") -> Response:
        principal = await gateway_principal(request)
        scope = required_scope(route, request.method)
        if not scope_allowed(principal.scopes, scope):
            raise Problem(403, f"missing scope: {scope}", missing_scopes=[scope])
        caller = await caller_units(request, principal)
        rule = rule_for(route.resource)
        upstreams = cast(Upstreams, request.app.state.runtime.extras["upstreams"])
        path = route.upstream_prefix + (f"/{rest}" if rest else "")
        authorization = await upstream_authorization(request, principal)
        params = list(request.query_params.multi_items())
        if route.resource == "audit" and caller.subtree is not None:
            await ensure_audit_visible(upstreams, rest, params, authorization, caller)
        if request.method != "GET" and rest:
            item = rest.split("/", 1)[0].split(":", 1)[0]
            item_path = f"{route.upstream_prefix}/{item}"
            await ensure_item_visible(upstreams, route.upstream, item_path, authorization, rule, caller, route.resource)
        answer = await upstreams.request(
            route.upstream,
            request.method,
            path,
            authorization=authorization,
            params=params,
            headers=request.headers,
            content=await request.body() if request.method not in ("GET", "HEAD", "DELETE") else None,
        )
        content = answer.content
        if caller.subtree is not None and answer.is_json and 200 <= answer.status_code < 300 and content:
            try:
                body = json.loads(content)
            except ValueError:
                body = None
            if body is not None:
                body, ok = filter_scoped(body, rule, caller)
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
