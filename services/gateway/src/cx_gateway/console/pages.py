"""Console detail and admin pages: a ticket with comments and escalation history, a feedback item with its analysis,
a survey with its editor and results, the codebook editor, alert rules, partners with their API keys, and the org /
user admin forms. Reads come from the owning service with the caller's token and pass the gateway's scope rules
(`proxy/scoping.py`); writes go there as the caller, after the same check; every form carries the CSRF token."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cx_common.app import SessionDep
from cx_common.auth import Principal
from cx_common.errors import Problem
from cx_gateway.analytics import service as analytics
from cx_gateway.console.views import (
    RESOLUTION_CODES,
    _checked,
    _context,
    _render,
    _set_session_cookies,
    _settings,
    console_principal,
    csrf_token,
    due_in,
    templates,
)
from cx_gateway.identity import service as identity
from cx_gateway.identity.models import User
from cx_gateway.identity.roles import ROLES, can_grant
from cx_gateway.identity.schemas import TokenPair, UserCreate
from cx_gateway.org import service as org_service
from cx_gateway.org.models import OrgUnit
from cx_gateway.org.schemas import OrgUnitCreate
from cx_gateway.proxy.client import Upstreams
from cx_gateway.proxy.routes import Upstream
from cx_gateway.proxy.scoping import filter_scoped, rule_for, visible
from cx_gateway.proxy.views import caller_units

router = APIRouter(prefix="/console", include_in_schema=False)

ItemId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Csrf = Annotated[str, Form(max_length=64)]
QUESTION_TYPES = ("nps", "csat", "ces", "rating", "single_choice", "multiple_choice", "dropdown", "text", "number")
CHOICE_TYPES = {"single_choice", "multiple_choice", "dropdown"}
UNIT_KINDS = ("region", "city", "store", "department")


# -- talking to the owning services ----------------------------------------------------------------------------------


def _upstreams(request: Request) -> Upstreams:
    return cast(Upstreams, request.app.state.runtime.extras["upstreams"])


def _detail(body: Any, status: int) -> str:
    """The owner's problem detail (naming the field) for the flash message."""
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, list):  # a plain FastAPI validation error
            detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in detail[:3])
        if detail:
            return str(detail)[:300]
    return f"HTTP {status}"


async def _get(
    request: Request, upstream: Upstream, path: str, token: str, params: Sequence[tuple[str, str]] = ()
) -> Any:
    answer = await _upstreams(request).request(
        upstream, "GET", path, authorization=f"Bearer {token}", params=list(params)
    )
    if answer.status_code == 404:
        raise Problem(404, "not found")
    if answer.status_code >= 400:
        status = answer.status_code if answer.status_code < 500 else 502
        raise Problem(status, _detail(_json(answer.content), answer.status_code))
    body = _json(answer.content)
    if body is None:
        raise Problem(502, f"the {upstream} service sent an invalid answer")
    return body


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


async def _call(
    request: Request, upstream: Upstream, method: str, path: str, token: str, payload: Any = None
) -> tuple[bool, str, Any]:
    """(ok, problem detail, answer body) of a write on the owning service as the caller."""
    try:
        answer = await _upstreams(request).request(
            upstream,
            method,
            path,
            authorization=f"Bearer {token}",
            headers={"content-type": "application/json"} if payload is not None else None,
            content=json.dumps(payload, ensure_ascii=False).encode() if payload is not None else None,
        )
    except Problem as exc:
        return False, exc.detail, None
    body = _json(answer.content)
    if answer.status_code >= 400:
        return False, _detail(body, answer.status_code), body
    return True, "", body


def _back(url: str, ok: bool, detail: str, pair: TokenPair | None, request: Request) -> RedirectResponse:
    query = {"flash": "done"} if ok else {"flash": "failed", "detail": detail[:300]}
    response = RedirectResponse(f"{url}?{urlencode(query)}", status_code=303)
    if pair is not None:
        _set_session_cookies(response, pair, _settings(request))
    return response


def _need(principal: Principal, scope: str) -> None:
    if not principal.has(scope):
        raise Problem(403, f"missing scope: {scope}")


async def _visible_item(
    request: Request, principal: Principal, resource: str, upstream: Upstream, path: str, token: str
) -> dict[str, Any]:
    """The item, or 404 when it is outside the caller's org scope (or does not exist)."""
    item = await _get(request, upstream, path, token)
    if not isinstance(item, dict) or not visible(item, rule_for(resource), await caller_units(request, principal)):
        raise Problem(404, f"{resource} not found")
    return item


def _uuids(values: set[str]) -> list[uuid.UUID]:
    wanted = []
    for value in values:
        try:
            wanted.append(uuid.UUID(value))
        except (ValueError, TypeError):
            continue
    return wanted


async def _unit_names(session: AsyncSession, tenant: uuid.UUID, ids: set[str]) -> dict[str, str]:
    if not (wanted := _uuids(ids)):
        return {}
    rows = await session.execute(
        select(OrgUnit.id, OrgUnit.name).where(OrgUnit.tenant_id == tenant, OrgUnit.id.in_(wanted))
    )
    return {str(i): n for i, n in rows.all()}


async def _user_names(session: AsyncSession, tenant: uuid.UUID, ids: set[str]) -> dict[str, str]:
    if not (wanted := _uuids(ids)):
        return {}
    rows = await session.execute(
        select(User.id, User.display_name).where(User.tenant_id == tenant, User.id.in_(wanted))
    )
    return {str(i): n for i, n in rows.all()}


def when(value: Any) -> str:
    """ISO timestamp → `YYYY-MM-DD HH:MM` (UTC) for the pages."""
    if not value:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


templates.env.filters["when"] = when


def _flash(request: Request) -> dict[str, str | None]:
    return {"flash": request.query_params.get("flash"), "detail": (request.query_params.get("detail") or "")[:300]}


async def _enter(request: Request, session: AsyncSession) -> tuple[Principal, str, TokenPair | None]:
    return await console_principal(request, session)


# -- tickets ---------------------------------------------------------------------------------------------------------


def _history(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        after = e.get("after") if isinstance(e.get("after"), dict) else {}
        out.append(
            {
                "at": e.get("occurred_at", ""),
                "actor": e.get("actor_id", ""),
                "action": e.get("action", ""),
                "assigned": (after or {}).get("assigned_org_unit_id", "") if e.get("action") == "escalated" else "",
                "reason": (after or {}).get("reason", ""),
                "level": (after or {}).get("escalation_level"),
            }
        )
    return out


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse, response_model=None)
async def ticket_page(request: Request, session: SessionDep, ticket_id: ItemId) -> Response:
    principal, token, pair = await _enter(request, session)
    _need(principal, "tickets:read")
    ticket = await _visible_item(request, principal, "tickets", "alerts", f"/v1/tickets/{ticket_id}", token)
    comments = await _get(request, "alerts", f"/v1/tickets/{ticket_id}/comments", token)
    history: list[dict[str, Any]] = []
    if principal.has("audit:read"):
        trail = await _get(
            request,
            "alerts",
            "/v1/audit",
            token,
            [("entity_type", "ticket"), ("entity_id", ticket_id), ("limit", "200")],
        )
        history = _history([e for e in trail.get("items", []) if isinstance(e, dict)])
    ids = {str(ticket.get("org_unit_id", "")), str(ticket.get("assigned_org_unit_id", ""))}
    ids.update(h["assigned"] for h in history if h["assigned"])
    now = dt.datetime.now(dt.UTC)
    ctx = _context(request, "tickets", principal)
    ctx.update(
        ticket=ticket,
        comments=comments if isinstance(comments, list) else [],
        history=history,
        names=await _unit_names(session, principal.tenant_id, ids),
        people=await _user_names(
            session,
            principal.tenant_id,
            {h["actor"] for h in history} | {str(c.get("author_id", "")) for c in comments if isinstance(c, dict)},
        ),
        due_first=due_in(ticket.get("first_response_due"), now, ctx["t"]),
        due_resolution=due_in(ticket.get("resolution_due"), now, ctx["t"]),
        transitions=[s for s in ticket.get("allowed_transitions", []) if isinstance(s, str)],
        resolution_codes=RESOLUTION_CODES,
        csrf=csrf_token(request, token),
        **_flash(request),
    )
    return _render(request, "ticket.html", ctx, pair)


@router.post("/tickets/{ticket_id}/comments", response_model=None)
async def ticket_comment(
    request: Request,
    session: SessionDep,
    ticket_id: ItemId,
    csrf: Csrf,
    body: Annotated[str, Form(min_length=1, max_length=20000)],
    internal: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "tickets:write")
    await _visible_item(request, principal, "tickets", "alerts", f"/v1/tickets/{ticket_id}", token)
    ok, detail, _ = await _call(
        request,
        "alerts",
        "POST",
        f"/v1/tickets/{ticket_id}/comments",
        token,
        {"body": body, "internal": bool(internal)},
    )
    return _back(f"/console/tickets/{ticket_id}", ok, detail, pair, request)


@router.post("/tickets/{ticket_id}/transition", response_model=None)
async def ticket_transition(
    request: Request,
    session: SessionDep,
    ticket_id: ItemId,
    csrf: Csrf,
    status: Annotated[str, Form(pattern=r"^[a-z_]{1,32}$")],
    version: Annotated[int, Form(ge=0, le=2**31)],
    resolution_code: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "tickets:write")
    await _visible_item(request, principal, "tickets", "alerts", f"/v1/tickets/{ticket_id}", token)
    payload: dict[str, Any] = {"status": status, "version": version}
    if status == "resolved":
        payload["resolution_code"] = resolution_code if resolution_code in RESOLUTION_CODES else RESOLUTION_CODES[0]
    if note.strip():
        payload["note"] = note.strip()
    ok, detail, _ = await _call(request, "alerts", "POST", f"/v1/tickets/{ticket_id}/transitions", token, payload)
    return _back(f"/console/tickets/{ticket_id}", ok, detail, pair, request)


# -- feedback --------------------------------------------------------------------------------------------------------


@router.get("/feedback/{item_id}", response_class=HTMLResponse, response_model=None)
async def feedback_page(request: Request, session: SessionDep, item_id: ItemId) -> Response:
    principal, token, pair = await _enter(request, session)
    _need(principal, "feedback:read")
    item = await _visible_item(request, principal, "feedback", "ingest", f"/v1/feedback/{item_id}", token)
    analysis = item.get("analysis") if isinstance(item.get("analysis"), dict) else None
    ctx = _context(
        request,
        "feedback",
        principal,
        item=item,
        analysis=analysis,
        names=await _unit_names(session, principal.tenant_id, {str(item.get("org_unit_id", ""))}),
    )
    return _render(request, "feedback_item.html", ctx, pair)


# -- surveys ---------------------------------------------------------------------------------------------------------


def _local(text: Any, lang: str) -> str:
    if isinstance(text, str):
        return text
    if not isinstance(text, dict):
        return ""
    order = [lang, "zh-Hans", "zh-Hant", "en"] if lang != "zh-Hant" else ["zh-Hant", "zh-Hans", "en"]
    return next((str(text[k]) for k in order if text.get(k)), "")


def _questions(definition: Any, lang: str) -> list[dict[str, Any]]:
    out = []
    pages = definition.get("pages", []) if isinstance(definition, dict) else []
    for page in pages if isinstance(pages, list) else []:
        for q in page.get("questions", []) if isinstance(page, dict) else []:
            if not isinstance(q, dict):
                continue
            out.append(
                {
                    "page": page.get("id", ""),
                    "id": q.get("id", ""),
                    "type": q.get("type", ""),
                    "title": _local(q.get("title"), lang),
                    "required": bool(q.get("required")),
                    "choices": [_local(c.get("label"), lang) for c in q.get("choices", []) if isinstance(c, dict)],
                }
            )
    return out


@router.post("/surveys", response_model=None)
async def survey_create(
    request: Request,
    session: SessionDep,
    csrf: Csrf,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    template: Annotated[str, Form(pattern=r"^[a-z_]{1,64}$")],
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "surveys:write")
    ok, detail, body = await _call(
        request, "survey", "POST", "/v1/surveys", token, {"title": title, "template": template}
    )
    if ok and isinstance(body, dict) and body.get("id"):
        return _back(f"/console/surveys/{body['id']}", True, "", pair, request)
    return _back("/console/surveys", False, detail, pair, request)


@router.get("/surveys/{survey_id}", response_class=HTMLResponse, response_model=None)
async def survey_page(request: Request, session: SessionDep, survey_id: ItemId) -> Response:
    principal, token, pair = await _enter(request, session)
    _need(principal, "surveys:read")
    survey = await _get(request, "survey", f"/v1/surveys/{survey_id}", token)
    ctx = _context(request, "surveys", principal)
    lang = ctx["lang"]
    results = None
    if principal.has("analytics:read"):
        scope = await org_service.scope_of(session, principal)
        today = dt.datetime.now(dt.UTC).date()
        results = await analytics.survey_results(
            session, scope, analytics.Filters(today - dt.timedelta(days=364), today), survey_id
        )
    latest: list[dict[str, Any]] = []
    if principal.has("responses:read"):
        body = await _get(request, "survey", "/v1/responses", token, [("survey_id", survey_id), ("limit", "20")])
        body, _ = filter_scoped(body, rule_for("responses"), await caller_units(request, principal))
        latest = [r for r in body.get("items", []) if isinstance(r, dict)]
    definition = survey.get("definition") or {}
    questions = _questions(definition, lang)
    ctx.update(
        survey=survey,
        questions=questions,
        pages=sorted({q["page"] for q in questions}),
        definition_json=json.dumps(definition, ensure_ascii=False, indent=2),
        results=results,
        latest=latest,
        names=await _unit_names(session, principal.tenant_id, {str(r.get("org_unit_id", "")) for r in latest}),
        question_types=QUESTION_TYPES,
        csrf=csrf_token(request, token),
        **_flash(request),
    )
    return _render(request, "survey.html", ctx, pair)


async def _patch_definition(
    request: Request, token: str, survey_id: str, definition: dict[str, Any], title: str | None = None
) -> tuple[bool, str]:
    payload: dict[str, Any] = {"definition": definition}
    if title:
        payload["title"] = title
    ok, detail, _ = await _call(request, "survey", "PATCH", f"/v1/surveys/{survey_id}", token, payload)
    return ok, detail


@router.post("/surveys/{survey_id}/definition", response_model=None)
async def survey_edit(
    request: Request,
    session: SessionDep,
    survey_id: ItemId,
    csrf: Csrf,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    definition: Annotated[str, Form(min_length=2, max_length=200_000)],
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "surveys:write")
    try:
        parsed = json.loads(definition)
    except ValueError as exc:
        return _back(f"/console/surveys/{survey_id}", False, f"definition: not JSON ({exc})", pair, request)
    if not isinstance(parsed, dict):
        return _back(f"/console/surveys/{survey_id}", False, "definition: must be an object", pair, request)
    ok, detail = await _patch_definition(request, token, survey_id, parsed, title)
    return _back(f"/console/surveys/{survey_id}", ok, detail, pair, request)


def _choices(text: str) -> list[dict[str, Any]]:
    """`id: label` per line (a bare label gets `c<n>`)."""
    out = []
    for n, line in enumerate(raw.strip() for raw in text.splitlines()):
        if not line:
            continue
        key, _, label = line.partition(":")
        if not label:
            key, label = f"c{n + 1}", key
        choice_id = re.sub(r"[^A-Za-z0-9_-]", "_", key.strip())[:64] or f"c{n + 1}"
        out.append({"id": choice_id, "label": {"zh-Hans": label.strip()}})
    return out


@router.post("/surveys/{survey_id}/questions", response_model=None)
async def survey_add_question(
    request: Request,
    session: SessionDep,
    survey_id: ItemId,
    csrf: Csrf,
    page_id: Annotated[str, Form(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")],
    question_id: Annotated[str, Form(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")],
    type: Annotated[str, Form(pattern=r"^[a-z_]{1,32}$")],
    title_zh_hans: Annotated[str, Form(max_length=2000)] = "",
    title_zh_hant: Annotated[str, Form(max_length=2000)] = "",
    title_en: Annotated[str, Form(max_length=2000)] = "",
    choices: Annotated[str, Form(max_length=20000)] = "",
    required: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "surveys:write")
    back = f"/console/surveys/{survey_id}"
    survey = await _get(request, "survey", f"/v1/surveys/{survey_id}", token)
    definition = survey.get("definition") or {}
    title = _names(title_zh_hans, title_zh_hant, title_en)
    question: dict[str, Any] = {"id": question_id, "type": type, "title": title, "required": bool(required)}
    if type in CHOICE_TYPES:
        question["choices"] = _choices(choices)
    pages = definition.setdefault("pages", [])
    page = next((p for p in pages if isinstance(p, dict) and p.get("id") == page_id), None)
    if page is None:
        page = {"id": page_id, "questions": []}
        pages.append(page)
    if any(isinstance(q, dict) and q.get("id") == question_id for p in pages for q in p.get("questions", [])):
        return _back(back, False, f"question_id: {question_id} exists already", pair, request)
    page["questions"].append(question)
    ok, detail = await _patch_definition(request, token, survey_id, definition)
    return _back(back, ok, detail, pair, request)


@router.post("/surveys/{survey_id}/questions/{question_id}/delete", response_model=None)
async def survey_delete_question(
    request: Request, session: SessionDep, survey_id: ItemId, question_id: ItemId, csrf: Csrf
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "surveys:write")
    survey = await _get(request, "survey", f"/v1/surveys/{survey_id}", token)
    definition = survey.get("definition") or {}
    for page in definition.get("pages", []):
        page["questions"] = [q for q in page.get("questions", []) if q.get("id") != question_id]
    definition["pages"] = [p for p in definition.get("pages", []) if p.get("questions")]
    ok, detail = await _patch_definition(request, token, survey_id, definition)
    return _back(f"/console/surveys/{survey_id}", ok, detail, pair, request)


@router.post("/surveys/{survey_id}/{action}", response_model=None)
async def survey_action(request: Request, session: SessionDep, survey_id: ItemId, action: str, csrf: Csrf) -> Response:
    if action not in ("publish", "close"):
        raise Problem(404, f"unknown action {action}")
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "surveys:write")
    ok, detail, _ = await _call(request, "survey", "POST", f"/v1/surveys/{survey_id}/{action}", token)
    return _back(f"/console/surveys/{survey_id}", ok, detail, pair, request)


# -- codebooks -------------------------------------------------------------------------------------------------------


def _tree(nodes: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for n in nodes:
        by_parent.setdefault(str(n.get("parent_id") or ""), []).append(n)

    def build(parent: str) -> list[dict[str, Any]]:
        return [
            {**n, "name": _local(n.get("names"), lang), "children": build(str(n.get("id")))}
            for n in sorted(by_parent.get(parent, []), key=lambda x: str(x.get("id")))
        ]

    return build("")


@router.post("/codebooks", response_model=None)
async def codebook_create(
    request: Request,
    session: SessionDep,
    csrf: Csrf,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    primary_language: Annotated[str, Form(pattern=r"^(zh-Hans|zh-Hant|en)$")],
    template: Annotated[str, Form(pattern=r"^[a-z_]{0,64}$")] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "codebooks:write")
    payload: dict[str, Any] = {"name": name, "primary_language": primary_language}
    if template:
        payload["template"] = template
    ok, detail, body = await _call(request, "ingest", "POST", "/v1/codebooks", token, payload)
    if ok and isinstance(body, dict) and body.get("id"):
        return _back(f"/console/codebooks/{body['id']}", True, "", pair, request)
    return _back("/console/codebooks", False, detail, pair, request)


@router.get("/codebooks/{codebook_id}", response_class=HTMLResponse, response_model=None)
async def codebook_page(request: Request, session: SessionDep, codebook_id: ItemId) -> Response:
    principal, token, pair = await _enter(request, session)
    _need(principal, "codebooks:read")
    codebook = await _get(request, "ingest", f"/v1/codebooks/{codebook_id}", token)
    versions = await _get(request, "ingest", f"/v1/codebooks/{codebook_id}/versions", token)
    ctx = _context(request, "codebooks", principal)
    nodes = [n for n in codebook.get("draft_nodes", []) if isinstance(n, dict)]
    for n in nodes:
        n["name"] = _local(n.get("names"), ctx["lang"])
    ctx.update(
        codebook=codebook,
        tree=_tree(nodes, ctx["lang"]),
        nodes=sorted(nodes, key=lambda n: (n.get("level", 0), str(n.get("name")))),
        versions=versions if isinstance(versions, list) else [],
        csrf=csrf_token(request, token),
        **_flash(request),
    )
    return _render(request, "codebook.html", ctx, pair)


def _names(zh_hans: str, zh_hant: str, en: str) -> dict[str, str]:
    return {k: v.strip() for k, v in (("zh-Hans", zh_hans), ("zh-Hant", zh_hant), ("en", en)) if v.strip()}


def _keywords(text: str) -> list[str]:
    return [k.strip() for k in re.split(r"[,，、\n]", text) if k.strip()][:200]


@router.post("/codebooks/{codebook_id}/nodes", response_model=None)
async def codebook_add_node(
    request: Request,
    session: SessionDep,
    codebook_id: ItemId,
    csrf: Csrf,
    parent_id: Annotated[str, Form(max_length=64)] = "",
    name_zh_hans: Annotated[str, Form(max_length=200)] = "",
    name_zh_hant: Annotated[str, Form(max_length=200)] = "",
    name_en: Annotated[str, Form(max_length=200)] = "",
    keywords: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "codebooks:write")
    payload = {
        "parent_id": parent_id or None,
        "names": _names(name_zh_hans, name_zh_hant, name_en),
        "keywords": _keywords(keywords),
    }
    ok, detail, _ = await _call(request, "ingest", "POST", f"/v1/codebooks/{codebook_id}/nodes", token, payload)
    return _back(f"/console/codebooks/{codebook_id}", ok, detail, pair, request)


@router.post("/codebooks/{codebook_id}/nodes/edit", response_model=None)
async def codebook_edit_node(
    request: Request,
    session: SessionDep,
    codebook_id: ItemId,
    csrf: Csrf,
    node_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_\-.]{1,64}$")],
    name_zh_hans: Annotated[str, Form(max_length=200)] = "",
    name_zh_hant: Annotated[str, Form(max_length=200)] = "",
    name_en: Annotated[str, Form(max_length=200)] = "",
    keywords: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "codebooks:write")
    payload: dict[str, Any] = {}
    if names := _names(name_zh_hans, name_zh_hant, name_en):
        payload["names"] = names
    if keywords.strip():
        payload["keywords"] = _keywords(keywords)
    path = f"/v1/codebooks/{codebook_id}/nodes/{node_id}"
    ok, detail, _ = await _call(request, "ingest", "PATCH", path, token, payload)
    return _back(f"/console/codebooks/{codebook_id}", ok, detail, pair, request)


@router.post("/codebooks/{codebook_id}/nodes/delete", response_model=None)
async def codebook_delete_node(
    request: Request,
    session: SessionDep,
    codebook_id: ItemId,
    csrf: Csrf,
    node_id: Annotated[str, Form(pattern=r"^[A-Za-z0-9_\-.]{1,64}$")],
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "codebooks:write")
    path = f"/v1/codebooks/{codebook_id}/nodes/{node_id}"
    ok, detail, _ = await _call(request, "ingest", "DELETE", path, token)
    return _back(f"/console/codebooks/{codebook_id}", ok, detail, pair, request)


@router.post("/codebooks/{codebook_id}/publish", response_model=None)
async def codebook_publish(
    request: Request,
    session: SessionDep,
    codebook_id: ItemId,
    csrf: Csrf,
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "codebooks:write")
    path = f"/v1/codebooks/{codebook_id}/versions"
    ok, detail, _ = await _call(request, "ingest", "POST", path, token, {"note": note})
    return _back(f"/console/codebooks/{codebook_id}", ok, detail, pair, request)


@router.post("/codebooks/{codebook_id}/activate", response_model=None)
async def codebook_activate(request: Request, session: SessionDep, codebook_id: ItemId, csrf: Csrf) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "codebooks:write")
    ok, detail, _ = await _call(request, "ingest", "POST", f"/v1/codebooks/{codebook_id}:activate", token)
    return _back(f"/console/codebooks/{codebook_id}", ok, detail, pair, request)


# -- alert rules -----------------------------------------------------------------------------------------------------

RULE_EXAMPLE = json.dumps(
    {
        "trigger": "survey.response.submitted",
        "condition": {"type": "score", "metric": "nps", "op": "<=", "value": 6},
        "scope": {"org_unit_ids": [], "touchpoint_ids": [], "channels": []},
        "actions": {"severity": "warning", "open_ticket": {"priority": "P2"}, "notify": {"notify_owner": True}},
    },
    indent=2,
)


@router.post("/rules", response_model=None)
async def rule_create(
    request: Request,
    session: SessionDep,
    csrf: Csrf,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    definition: Annotated[str, Form(min_length=2, max_length=20000)],
    description: Annotated[str, Form(max_length=4000)] = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "rules:write")
    try:
        parsed = json.loads(definition)
    except ValueError as exc:
        return _back("/console/rules", False, f"definition: not JSON ({exc})", pair, request)
    payload = {"name": name, "description": description, "enabled": bool(enabled), "definition": parsed}
    ok, detail, _ = await _call(request, "alerts", "POST", "/v1/rules", token, payload)
    return _back("/console/rules", ok, detail, pair, request)


# -- partners and their API keys -------------------------------------------------------------------------------------


@router.post("/partners", response_model=None)
async def partner_create(
    request: Request,
    session: SessionDep,
    csrf: Csrf,
    title: Annotated[str, Form(min_length=1, max_length=200)],
    kind: Annotated[str, Form(pattern=r"^[a-z]{1,32}$")],
    default_channel: Annotated[str, Form(pattern=r"^[a-z]{1,32}$")],
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "partners:write")
    payload = {"title": title, "kind": kind, "default_channel": default_channel}
    ok, detail, body = await _call(request, "ingest", "POST", "/v1/partners", token, payload)
    if ok and isinstance(body, dict) and body.get("id"):
        return _back(f"/console/partners/{body['id']}", True, "", pair, request)
    return _back("/console/partners", False, detail, pair, request)


async def _partner_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    token: str,
    pair: TokenPair | None,
    partner_id: str,
    *,
    created: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    _need(principal, "partners:read")
    partner = await _get(request, "ingest", f"/v1/partners/{partner_id}", token)
    keys = await _get(request, "ingest", f"/v1/partners/{partner_id}/keys", token)
    ctx = _context(
        request,
        "partners",
        principal,
        partner=partner,
        keys=keys if isinstance(keys, list) else keys.get("items", []),
        created=created,
        csrf=csrf_token(request, token),
        **_flash(request),
    )
    return _render(request, "partner.html", ctx, pair, status_code=status_code)


@router.get("/partners/{partner_id}", response_class=HTMLResponse, response_model=None)
async def partner_page(request: Request, session: SessionDep, partner_id: ItemId) -> Response:
    principal, token, pair = await _enter(request, session)
    return await _partner_page(request, session, principal, token, pair, partner_id)


@router.post("/partners/{partner_id}/keys", response_model=None)
async def partner_key_create(
    request: Request,
    session: SessionDep,
    partner_id: ItemId,
    csrf: Csrf,
    name: Annotated[str, Form(max_length=200)] = "",
    expires_in_days: Annotated[str, Form(pattern=r"^\d{0,4}$")] = "",
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "partners:write")
    payload: dict[str, Any] = {"name": name}
    if expires_in_days:
        payload["expires_in_days"] = int(expires_in_days)
    ok, detail, body = await _call(request, "ingest", "POST", f"/v1/partners/{partner_id}/keys", token, payload)
    if not ok or not isinstance(body, dict):
        return _back(f"/console/partners/{partner_id}", False, detail, pair, request)
    # the key is shown in this answer only (never put in a URL or a cookie)
    return await _partner_page(request, session, principal, token, pair, partner_id, created=body, status_code=201)


@router.post("/partners/{partner_id}/keys/{key_id}/revoke", response_model=None)
async def partner_key_revoke(
    request: Request, session: SessionDep, partner_id: ItemId, key_id: ItemId, csrf: Csrf
) -> Response:
    principal, token, pair = await _checked(request, session, csrf)
    _need(principal, "partners:write")
    path = f"/v1/partners/{partner_id}/keys/{key_id}"
    ok, detail, _ = await _call(request, "ingest", "DELETE", path, token)
    return _back(f"/console/partners/{partner_id}", ok, detail, pair, request)


# -- org units and users (the gateway's own) -------------------------------------------------------------------------


def _problem_text(exc: Exception) -> str:
    if isinstance(exc, Problem):
        return exc.detail
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first.get('loc', [])))}: {first.get('msg', '')}"
    return "invalid input"


@router.post("/org/units", response_model=None)
async def org_unit_create(
    request: Request,
    session: SessionDep,
    csrf: Csrf,
    parent_id: Annotated[uuid.UUID, Form()],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    code: Annotated[str, Form(min_length=1, max_length=64)],
    kind: Annotated[str, Form(max_length=32)],
) -> Response:
    principal, _, pair = await _checked(request, session, csrf)
    _need(principal, "org:write")
    scope = await org_service.scope_of(session, principal)
    try:
        body = OrgUnitCreate.model_validate({"parent_id": parent_id, "name": name, "code": code, "kind": kind})
        await org_service.create(session, principal.tenant_id, body, _settings(request).events_subject_prefix, scope)
        await session.commit()
    except (Problem, ValidationError) as exc:
        await session.rollback()
        return _back("/console/org", False, _problem_text(exc), pair, request)
    return _back("/console/org", True, "", pair, request)


@router.post("/org/users", response_model=None)
async def org_user_create(
    request: Request,
    session: SessionDep,
    csrf: Csrf,
    email: Annotated[str, Form(max_length=320)],
    display_name: Annotated[str, Form(min_length=1, max_length=200)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=16)],
    org_unit_id: Annotated[uuid.UUID, Form()],
    locale: Annotated[str, Form(max_length=8)] = "zh-Hans",
) -> Response:
    principal, _, pair = await _checked(request, session, csrf)
    _need(principal, "users:write")
    scope = await org_service.scope_of(session, principal)
    try:
        body = UserCreate.model_validate(
            {
                "email": email,
                "display_name": display_name,
                "password": password,
                "role": role,
                "org_unit_id": org_unit_id,
                "locale": locale,
            }
        )
        await identity.create_user(
            session, principal.tenant_id, body, _settings(request), granter_role=principal.role, scope=scope
        )
        await session.commit()
    except (Problem, ValidationError) as exc:
        await session.rollback()
        return _back("/console/org", False, _problem_text(exc), pair, request)
    return _back("/console/org", True, "", pair, request)


def org_form_context(principal: Principal, units: list[tuple[str, str]]) -> dict[str, Any]:
    """What the org page's admin forms need."""
    return {
        "unit_choices": units,
        "unit_kinds": UNIT_KINDS,
        "grantable_roles": [r for r in ROLES if can_grant(principal.role, r)],
    }
