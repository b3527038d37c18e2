"""Console pages. Auth by an HttpOnly access-token cookie (refreshed from the refresh cookie when it expires); data
comes through the same scoped analytics queries and forwarded API calls as for API clients."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.app import SessionDep
from cx_common.auth import JWTVerifier, Principal
from cx_common.errors import Problem
from cx_gateway.analytics import service as analytics
from cx_gateway.analytics.formula import evaluate, parse
from cx_gateway.analytics.models import Kpi
from cx_gateway.console.i18n import LANGUAGE_NAMES, pick_language, translator
from cx_gateway.identity import service as identity
from cx_gateway.identity.deps import ACCESS_COOKIE
from cx_gateway.identity.keys import KeyRing
from cx_gateway.identity.oidc import OidcClient, read_flow, sign_flow
from cx_gateway.identity.roles import ROLES, can_grant
from cx_gateway.identity.schemas import ApiTokenCreate, TokenPair
from cx_gateway.org import service as org_service
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.service import OrgScope
from cx_gateway.proxy.client import Upstreams
from cx_gateway.proxy.routes import Upstream
from cx_gateway.proxy.scoping import filter_scoped, rule_for
from cx_gateway.proxy.views import caller_units, ensure_item_visible
from cx_gateway.settings import Settings

HERE = Path(__file__).parent
REFRESH_COOKIE = "cx_refresh"
LANG_COOKIE = "cx_lang"

templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/console", include_in_schema=False)
static_app = StaticFiles(directory=str(HERE / "static"))


class LoginRequired(Exception):  # noqa: N818 - control flow
    """No valid console session: `redirect_to_login` (registered on the app) sends the browser to the login page."""


def _settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def _ring(request: Request) -> KeyRing:
    return cast(KeyRing, request.app.state.runtime.extras["keyring"])


def _set_session_cookies(response: Response, pair: TokenPair, settings: Settings) -> None:
    secure = not settings.is_dev
    response.set_cookie(
        ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, httponly=True, samesite="lax", secure=secure
    )
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=pair.refresh_expires_in,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/console",
    )


async def console_principal(request: Request, session: SessionDep) -> tuple[Principal, str, TokenPair | None]:
    """(principal, access token, new token pair when the session was refreshed)."""
    verifier = cast(JWTVerifier, request.app.state.jwt_verifier)
    token = request.cookies.get(ACCESS_COOKIE)
    if token:
        try:
            return await verifier.verify(token), token, None
        except Problem:
            pass
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        raise LoginRequired
    try:
        pair = await identity.refresh(session, refresh, _ring(request), _settings(request))
        await session.commit()
    except Problem as exc:
        raise LoginRequired from exc
    return await verifier.verify(pair.access_token), pair.access_token, pair


def _context(request: Request, page: str, principal: Principal | None, **extra: Any) -> dict[str, Any]:
    user_locale = principal.claims.get("locale") if principal else None
    lang = pick_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        request.headers.get("accept-language"),
        user_locale if isinstance(user_locale, str) else None,
    )

    def lang_query(code: str) -> str:
        params = dict(request.query_params)
        params["lang"] = code
        return urlencode(params)

    me = None
    if principal is not None:
        me = {"name": principal.claims.get("name") or principal.user_id, "role": principal.role}

    def can(scope: str) -> bool:
        return principal is not None and principal.has(scope)

    return {
        "can": can,
        "request": request,
        "lang": lang,
        "t": translator(lang),
        "languages": LANGUAGE_NAMES,
        "lang_query": lang_query,
        "page": page,
        "me": me,
        **extra,
    }


def _render(
    request: Request, template: str, context: dict[str, Any], pair: TokenPair | None = None, status_code: int = 200
) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    if request.query_params.get("lang") == context["lang"]:
        response.set_cookie(LANG_COOKIE, context["lang"], max_age=365 * 86400, samesite="lax")
    if pair is not None:
        _set_session_cookies(response, pair, _settings(request))
    return response


def _to_login(request: Request) -> RedirectResponse:
    lang = request.query_params.get("lang")
    return RedirectResponse("/console/login" + (f"?lang={lang}" if lang else ""), status_code=303)


async def redirect_to_login(request: Request, exc: Exception) -> Response:
    return _to_login(request)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _render(request, "login.html", _context(request, "login", None, sso=_oidc(request).enabled))


@router.post("/login", response_model=None)
async def login_submit(
    request: Request,
    session: SessionDep,
    tenant: Annotated[str, Form(max_length=64)],
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    lang: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    settings = _settings(request)
    try:
        found = await identity.authenticate(session, tenant, email, password, None, settings)
        pair = await identity.issue_tokens(session, found, _ring(request), settings)
        await session.commit()
    except Problem:
        ctx = _context(request, "login", None, error=True, tenant=tenant, email=email)
        if lang in LANGUAGE_NAMES:
            ctx["lang"], ctx["t"] = lang, translator(lang)
        return _render(request, "login.html", ctx, status_code=401)
    response = RedirectResponse("/console" + (f"?lang={lang}" if lang in LANGUAGE_NAMES else ""), status_code=303)
    _set_session_cookies(response, pair, settings)
    if lang in LANGUAGE_NAMES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


SSO_COOKIE = "cx_sso"


def _oidc(request: Request) -> OidcClient:
    client = request.app.state.runtime.extras.get("oidc")
    if client is None:
        client = request.app.state.runtime.extras["oidc"] = OidcClient(_settings(request))
    return cast(OidcClient, client)


@router.get("/sso/login", summary="Start OIDC single sign-on")
async def sso_login(request: Request) -> RedirectResponse:
    oidc = _oidc(request)
    if not oidc.enabled:
        raise Problem(404, "single sign-on is not configured")
    settings = _settings(request)
    redirect_uri = settings.oidc_redirect_url or str(request.url_for("sso_callback"))
    url, flow = await oidc.start(redirect_uri)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        SSO_COOKIE,
        sign_flow(flow, settings.internal_secret.get_secret_value()),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=not settings.is_dev,
        path="/console/sso",
    )
    return response


@router.get("/sso/callback", name="sso_callback", response_model=None)
async def sso_callback(
    request: Request,
    session: SessionDep,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    settings = _settings(request)
    oidc = _oidc(request)
    flow = read_flow(request.cookies.get(SSO_COOKIE), settings.internal_secret.get_secret_value())
    try:
        if not oidc.enabled or flow is None or not code or not state or state != flow.get("state"):
            raise Problem(401, "single sign-on failed")
        claims = await oidc.finish(code, flow)
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is False:
            raise Problem(401, "single sign-on failed")
        found = await identity.identity_for_sso(session, settings.oidc_tenant, email)
        pair = await identity.issue_tokens(session, found, _ring(request), settings)
        await session.commit()
    except Problem:
        ctx = _context(request, "login", None, error=True, sso=oidc.enabled)
        response: Response = _render(request, "login.html", ctx, status_code=401)
        response.delete_cookie(SSO_COOKIE, path="/console/sso")
        return response
    response = RedirectResponse("/console", status_code=303)
    _set_session_cookies(response, pair, settings)
    response.delete_cookie(SSO_COOKIE, path="/console/sso")
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> RedirectResponse:
    if refresh := request.cookies.get(REFRESH_COOKIE):
        await identity.revoke_refresh(session, refresh)
        await session.commit()
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(ACCESS_COOKIE)
    response.delete_cookie(REFRESH_COOKIE, path="/console")
    return response


async def _top_clusters(request: Request, token: str, principal: Principal, top: int = 8) -> list[dict[str, Any]]:
    """Ranked clusters of the latest clustering run (ingest owns them); tenant-wide viewers only, since a run spans
    every org unit. Best effort: the dashboard renders without them."""
    if not principal.has("feedback:read"):
        return []
    upstreams = cast(Upstreams, request.app.state.runtime.extras["upstreams"])
    try:
        answer = await upstreams.request(
            "ingest", "GET", "/v1/clusters/runs", authorization=f"Bearer {token}", params=[("limit", "1")]
        )
        runs = json.loads(answer.content) if answer.status_code == 200 else []
    except (Problem, ValueError):
        return []
    if not isinstance(runs, list) or not runs or not isinstance(runs[0], dict):
        return []
    out = []
    for cluster in sorted(runs[0].get("clusters") or [], key=lambda c: c.get("rank", 0))[:top]:
        words = [str(k.get("text", "")) for k in cluster.get("keywords") or [] if isinstance(k, dict)]
        out.append({"rank": cluster.get("rank", 0), "size": cluster.get("size", 0), "label": " · ".join(words[:4])})
    return out


def _trend_points(days: list[dict[str, Any]]) -> str:
    values = [(i, d["nps"]) for i, d in enumerate(days) if d["nps"] is not None]
    if len(values) < 2:
        return ""
    n = len(days) - 1 or 1
    return " ".join(f"{i * 300 / n:.1f},{50 - v / 2:.1f}" for i, v in values)


@router.get("", response_class=HTMLResponse, response_model=None)
async def dashboard(
    request: Request,
    session: SessionDep,
    org_unit_id: Annotated[uuid.UUID | None, Query()] = None,
    aspect: Annotated[
        str | None, Query(max_length=400, description="parent aspect path, levels joined by ' > '")
    ] = None,
) -> Response:
    principal, token, pair = await console_principal(request, session)
    scope = await org_service.scope_of(session, principal)
    if not principal.has("analytics:read"):
        raise Problem(403, "missing scope: analytics:read")
    unit_id = org_unit_id or scope.root_id
    if unit_id is None:
        unit = (
            await session.execute(
                select(OrgUnit).where(OrgUnit.tenant_id == scope.tenant_id, OrgUnit.parent_id.is_(None))
            )
        ).scalar_one()
    else:
        unit = await org_service.get_visible(session, scope, unit_id)
    narrowed = OrgScope(scope.tenant_id, unit.id, unit.path)
    end = dt.datetime.now(dt.UTC).date()
    f = analytics.Filters(end - dt.timedelta(days=29), end)
    up_link = None
    if unit.parent_id is not None and unit.id != scope.root_id:
        up_link = f"/console?org_unit_id={unit.parent_id}"
    days = await analytics.breakdown(session, narrowed, f, "day")
    aspect_parts = [p for p in (aspect or "").split(" > ") if p][:2]
    aspect = " > ".join(aspect_parts)
    aspect_level = len(aspect_parts) + 1
    overview = await analytics.overview(session, narrowed, f)
    kpis = []
    variables = analytics.kpi_variables(overview)
    for kpi in (
        await session.execute(select(Kpi).where(Kpi.tenant_id == scope.tenant_id).order_by(Kpi.code).limit(6))
    ).scalars():
        value = evaluate(parse(kpi.formula, set(analytics.METRIC_NAMES)), variables)
        kpis.append({"name": kpi.name, "value": value, "target": kpi.target, "formula": kpi.formula})
    clusters = await _top_clusters(request, token, principal) if analytics.is_tenant_wide(narrowed) else []
    ctx = _context(
        request,
        "dashboard",
        principal,
        unit_name=unit.name,
        up_link=up_link,
        o=overview,
        kpis=kpis,
        drill=await analytics.drilldown(session, narrowed, unit, f),
        aspects=await analytics.aspects(session, narrowed, f, aspect_level, aspect or None, 10),
        aspect_parent=aspect_parts,
        aspect_level=aspect_level,
        org_query=f"org_unit_id={unit.id}&" if org_unit_id else "",
        keywords=await analytics.terms(session, narrowed, f, "keyword", 30),
        touchpoints=await analytics.breakdown(session, narrowed, f, "touchpoint"),
        stages=await analytics.breakdown(session, narrowed, f, "stage"),
        trend_points=_trend_points(days),
        clusters=clusters,
        intents=await analytics.terms(session, narrowed, f, "intent", 8),
        products=await analytics.terms(session, narrowed, f, "sku", 8),
        competitors=await analytics.terms(session, narrowed, f, "competitor", 8),
        fusion=[
            ("dash.fusion_size", await analytics.fusion(session, narrowed, f, "org", "size")),
            ("dash.fusion_segment", await analytics.fusion(session, narrowed, f, "customer", "segment")),
            ("dash.fusion_order", await analytics.fusion(session, narrowed, f, "customer", "order_value_band")),
        ],
        freshness=await analytics.freshness(session, scope.tenant_id),
    )
    return _render(request, "dashboard.html", ctx, pair)


@dataclass(frozen=True)
class Action:
    name: str  # path segment on the console and (tickets: target status) on the owning service
    label: str  # message key
    when: tuple[str, ...]  # values of the item's `field` the action is offered for
    field: str = "status"


@dataclass(frozen=True)
class ListPage:
    upstream: Upstream
    path: str
    title: str
    columns: list[tuple[str, str]]
    actions: tuple[Action, ...] = ()
    filters: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (query param, label key, choices; () = free text)
    link: str | None = None  # column whose cell links to the item's page /console/<page>/<id>
    create: str | None = None  # template of a "new item" form shown above the list
    read_scope: str = ""  # scope needed to see the page at all (else 403)
    tenant_wide: bool = False  # the owner keeps it tenant-wide: callers below the root unit see a notice instead


@router.get("/org", response_class=HTMLResponse, response_model=None)
async def org_page(request: Request, session: SessionDep) -> Response:
    from cx_gateway.console.pages import org_form_context

    principal, token, pair = await console_principal(request, session)
    scope = await org_service.scope_of(session, principal)
    tree = await org_service.tree(session, scope) if principal.has("org:read") else []
    users = None
    if principal.has("users:read"):
        rows, _ = await identity.list_users(session, scope, limit=500, cursor=None)
        users = [await identity.user_read(session, r) for r in rows]
    names: dict[str, str] = {}

    def collect(nodes: list[Any]) -> None:
        for n in nodes:
            names[str(n.id)] = n.name
            collect(n.children)

    collect(tree)
    ctx = _context(
        request,
        "org",
        principal,
        tree=tree,
        users=users,
        unit_names=names,
        csrf=csrf_token(request, token),
        flash=request.query_params.get("flash"),
        detail=(request.query_params.get("detail") or "")[:300],
        **org_form_context(principal, list(names.items())),
    )
    return _render(request, "org.html", ctx, pair)


async def _tokens_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    token: str,
    pair: TokenPair | None,
    *,
    created: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    if not principal.has("tokens:read"):
        raise Problem(403, "missing scope: tokens:read")
    scope = await org_service.scope_of(session, principal)
    rows, _ = await identity.list_api_tokens(session, scope, limit=500, cursor=None)
    tree = await org_service.tree(session, scope)
    units: list[tuple[str, str]] = []

    def collect(nodes: list[Any]) -> None:
        for n in nodes:
            units.append((str(n.id), n.name))
            collect(n.children)

    collect(tree)
    ctx = _context(
        request,
        "api-tokens",
        principal,
        tokens=rows,
        units=units,
        unit_names=dict(units),
        roles=[r for r in ROLES if can_grant(principal.role, r)],
        can_write=principal.has("tokens:write"),
        csrf=csrf_token(request, token),
        created=created,
        error=error,
    )
    return _render(request, "tokens.html", ctx, pair, status_code=status_code)


async def _checked(request: Request, session: AsyncSession, csrf: str) -> tuple[Principal, str, TokenPair | None]:
    principal, token, pair = await console_principal(request, session)
    if not hmac.compare_digest(csrf, csrf_token(request, request.cookies.get(ACCESS_COOKIE, ""))):
        raise Problem(403, "csrf: the form has expired; reload the page", field="csrf")
    return principal, token, pair


@router.get("/api-tokens", response_class=HTMLResponse, response_model=None)
async def tokens_page(request: Request, session: SessionDep) -> Response:
    principal, token, pair = await console_principal(request, session)
    return await _tokens_page(request, session, principal, token, pair)


@router.post("/api-tokens", response_class=HTMLResponse, response_model=None)
async def tokens_create(
    request: Request,
    session: SessionDep,
    csrf: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    role: Annotated[str, Form(max_length=16)],
    org_unit_id: Annotated[uuid.UUID, Form()],
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    if not principal.has("tokens:write") or principal.claims.get("api_token_id"):
        raise Problem(403, "missing scope: tokens:write")
    scope = await org_service.scope_of(session, principal)
    try:
        body = ApiTokenCreate.model_validate({"name": name, "role": role, "org_unit_id": org_unit_id})
        _, secret = await identity.create_api_token(session, principal, scope, body)
        await session.commit()
    except (Problem, ValueError) as exc:
        await session.rollback()
        detail = exc.detail if isinstance(exc, Problem) else "invalid input"
        return await _tokens_page(request, session, principal, token, pair, error=detail, status_code=422)
    return await _tokens_page(request, session, principal, token, pair, created=secret, status_code=201)


@router.post("/api-tokens/{token_id}/revoke", response_model=None)
async def tokens_revoke(
    request: Request, session: SessionDep, token_id: uuid.UUID, csrf: Annotated[str, Form(max_length=64)]
) -> Response:
    principal, _, pair = await _checked(request, session, csrf)
    if not principal.has("tokens:write"):
        raise Problem(403, "missing scope: tokens:write")
    await identity.revoke_api_token(session, await org_service.scope_of(session, principal), token_id)
    await session.commit()
    response = RedirectResponse("/console/api-tokens", status_code=303)
    if pair is not None:
        _set_session_cookies(response, pair, _settings(request))
    return response


LISTS: dict[str, ListPage] = {
    "tickets": ListPage(
        "alerts",
        "/v1/tickets",
        "tickets.title",
        [
            ("title", "col.title"),
            ("status", "col.status"),
            ("priority", "col.priority"),
            ("escalation_level", "col.escalation"),
            ("_due", "col.due_in"),
            ("opened_at", "col.created"),
        ],
        (
            Action("acknowledged", "action.acknowledge", ("open",)),
            Action("resolved", "action.resolve", ("open", "acknowledged", "in_progress", "waiting_customer")),
        ),
        filters=(
            ("status", "col.status", ("open", "acknowledged", "in_progress", "waiting_customer", "resolved", "closed")),
            ("priority", "col.priority", ("P1", "P2", "P3", "P4")),
        ),
        link="title",
        read_scope="tickets:read",
    ),
    "tasks": ListPage(
        "alerts",
        "/v1/tasks",
        "tasks.title",
        [("title", "col.title"), ("status", "col.status"), ("aspect_path", "col.aspect"), ("due_date", "col.due")],
        (
            Action("approve", "action.approve", ("submitted",)),
            Action("reject", "action.reject", ("submitted",)),
            Action("accept", "action.accept", ("completed",)),
        ),
        read_scope="tasks:read",
    ),
    "feedback": ListPage(
        "ingest",
        "/v1/feedback",
        "feedback.title",
        [
            ("channel", "col.channel"),
            ("text", "col.text"),
            ("sentiment", "col.sentiment"),
            ("created_at", "col.created"),
        ],
        filters=(
            ("channel", "col.channel", ("survey", "hotline", "chat", "email", "review", "social", "store", "crm")),
            ("sentiment", "col.sentiment", ("negative", "neutral", "positive")),
            ("q", "filter.text", ()),
        ),
        link="text",
        read_scope="feedback:read",
    ),
    "surveys": ListPage(
        "survey",
        "/v1/surveys",
        "surveys.title",
        [
            ("title", "col.title"),
            ("status", "col.status"),
            ("current_version", "col.version"),
            ("created_at", "col.created"),
        ],
        link="title",
        create="forms/survey_new.html",
        read_scope="surveys:read",
    ),
    "audit": ListPage(
        "alerts",
        "/v1/audit",
        "audit.title",
        [
            ("occurred_at", "col.created"),
            ("actor_id", "col.actor"),
            ("action", "col.action"),
            ("entity_type", "col.entity"),
            ("entity_id", "col.id"),
        ],
        read_scope="audit:read",
        tenant_wide=True,
    ),
    "codebooks": ListPage(
        "ingest",
        "/v1/codebooks",
        "codebooks.title",
        [
            ("name", "col.name"),
            ("primary_language", "col.language"),
            ("latest_version", "col.version"),
            ("active", "col.active"),
        ],
        link="name",
        create="forms/codebook_new.html",
        read_scope="codebooks:read",
    ),
    "rules": ListPage(
        "alerts",
        "/v1/rules",
        "rules.title",
        [
            ("name", "col.name"),
            ("trigger", "col.trigger"),
            ("enabled", "col.enabled"),
            ("version", "col.version"),
            ("updated_at", "col.updated"),
        ],
        (
            Action("enable", "action.enable", ("false",), field="enabled"),
            Action("disable", "action.disable", ("true",), field="enabled"),
        ),
        create="forms/rule_new.html",
        read_scope="rules:read",
    ),
    "partners": ListPage(
        "ingest",
        "/v1/partners",
        "partners.title",
        [
            ("title", "col.title"),
            ("kind", "col.kind"),
            ("default_channel", "col.channel"),
            ("status", "col.status"),
            ("rate_limit_per_minute", "col.rate_limit"),
        ],
        link="title",
        create="forms/partner_new.html",
        read_scope="partners:read",
    ),
}


RESOLUTION_CODES = ("fixed", "explained", "compensated", "no_action")


def csrf_token(request: Request, access_token: str) -> str:
    secret = _settings(request).internal_secret.get_secret_value().encode()
    return hmac.new(secret, access_token.encode(), hashlib.sha256).hexdigest()[:32]


def due_in(value: Any, now: dt.datetime, t: Any) -> str:
    """SLA countdown text for a due timestamp."""
    if not value:
        return ""
    try:
        due = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    seconds = int((due - now).total_seconds())
    hours, minutes = divmod(abs(seconds) // 60, 60)
    text = f"{hours}h {minutes:02d}m"
    return f"{t('sla.overdue')} {text}" if seconds < 0 else text


def _make_list_page(page: str):  # type: ignore[no-untyped-def]
    spec = LISTS[page]

    async def list_page(
        request: Request, session: SessionDep, cursor: Annotated[str | None, Query(max_length=500)] = None
    ) -> Response:
        principal, token, pair = await console_principal(request, session)
        if spec.read_scope and not principal.has(spec.read_scope):
            raise Problem(403, f"missing scope: {spec.read_scope}")
        caller = await caller_units(request, principal)
        ctx = _context(
            request,
            page,
            principal,
            columns=spec.columns,
            actions=spec.actions,
            link=spec.link,
            create=spec.create,
            notice=None,
            items=[],
            next_cursor=None,
            error=None,
            page_name=page,
            resolution_codes=RESOLUTION_CODES if page == "tickets" else (),
            csrf=csrf_token(request, token),
            flash=request.query_params.get("flash"),
        )
        ctx["title"] = ctx["t"](spec.title)
        ctx["detail"] = (request.query_params.get("detail") or "")[:300]
        if page == "rules":
            from cx_gateway.console.pages import RULE_EXAMPLE

            ctx["rule_example"] = RULE_EXAMPLE
        upstreams = cast(Upstreams, request.app.state.runtime.extras["upstreams"])
        params = [("limit", "50")] + ([("cursor", cursor)] if cursor else [])
        chosen: dict[str, str] = {}
        for name, _, choices in spec.filters:
            value = (request.query_params.get(name) or "").strip()[:200]
            if value and (not choices or value in choices):
                chosen[name] = value
                params.append((name, value))
        ctx["filters"], ctx["chosen"] = spec.filters, chosen
        if spec.tenant_wide and caller.subtree is not None:
            ctx["notice"] = ctx["t"]("list.tenant_wide_only")
            return _render(request, "list.html", ctx, pair)
        try:
            answer = await upstreams.request(
                spec.upstream, "GET", spec.path, authorization=f"Bearer {token}", params=params
            )
            if answer.status_code >= 400:
                ctx["error"] = f"HTTP {answer.status_code}"
            else:
                body, _ = filter_scoped(json.loads(answer.content), rule_for(page), caller)
                page_of = body if isinstance(body, dict) else {"items": body if isinstance(body, list) else []}
                items = [i for i in page_of.get("items", []) if isinstance(i, dict)]
                now = dt.datetime.now(dt.UTC)
                for item in items:
                    done = item.get("status") in ("resolved", "closed")
                    item["_due"] = "" if done else due_in(item.get("resolution_due"), now, ctx["t"])
                    if isinstance(item.get("aspect_path"), list):
                        item["aspect_path"] = " › ".join(map(str, item["aspect_path"]))
                ctx["items"] = items
                ctx["next_cursor"] = page_of.get("next_cursor")
        except Problem as exc:
            ctx["error"] = exc.detail
        except ValueError:
            ctx["error"] = "invalid answer"
        return _render(request, "list.html", ctx, pair)

    list_page.__name__ = f"console_{page}"
    return list_page


def _make_action(page: str):  # type: ignore[no-untyped-def]
    spec = LISTS[page]
    names = {a.name for a in spec.actions}

    async def act(
        request: Request,
        session: SessionDep,
        item_id: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
        action: str,
        csrf: Annotated[str, Form(max_length=64)],
        comment: Annotated[str, Form(max_length=4000)] = "",
        resolution_code: Annotated[str, Form(max_length=64)] = "",
        version: Annotated[int | None, Form(ge=0, le=2**31)] = None,
    ) -> Response:
        principal, token, pair = await console_principal(request, session)
        if action not in names:
            raise Problem(404, f"unknown action {action}")
        if not hmac.compare_digest(csrf, csrf_token(request, token)) and (
            pair is None or not hmac.compare_digest(csrf, csrf_token(request, request.cookies.get(ACCESS_COOKIE, "")))
        ):
            raise Problem(403, "csrf: the form has expired; reload the page", field="csrf")
        if page == "tickets":
            path, body = f"{spec.path}/{item_id}/transitions", {"status": action}
            if action == "resolved":
                code = resolution_code.strip()
                body["resolution_code"] = code if code in RESOLUTION_CODES else RESOLUTION_CODES[0]
            if comment.strip():
                body["note"] = comment.strip()
        else:
            path, body = f"{spec.path}/{item_id}/{action}", {"comment": comment}
        payload: dict[str, Any] = {**body}
        if version is not None:  # optimistic locking: the version the form was rendered from
            payload["version"] = version
        upstreams = cast(Upstreams, request.app.state.runtime.extras["upstreams"])
        try:
            await ensure_item_visible(
                upstreams,
                spec.upstream,
                f"{spec.path}/{item_id}",
                f"Bearer {token}",
                rule_for(page),
                await caller_units(request, principal),
                page,
            )
            answer = await upstreams.request(
                spec.upstream,
                "POST",
                path,
                authorization=f"Bearer {token}",
                headers={"content-type": "application/json"},
                content=json.dumps(payload).encode(),
            )
            flash = "done" if answer.status_code < 400 else "failed"
        except Problem:
            flash = "failed"
        response = RedirectResponse(f"/console/{page}?flash={flash}", status_code=303)
        if pair is not None:
            _set_session_cookies(response, pair, _settings(request))
        return response

    act.__name__ = f"console_{page}_action"
    return act


for _page, _spec in LISTS.items():
    router.add_api_route(f"/{_page}", _make_list_page(_page), methods=["GET"], response_class=HTMLResponse)
    if _spec.actions:
        router.add_api_route(f"/{_page}/{{item_id}}/{{action}}", _make_action(_page), methods=["POST"])
