"""The respondent page: server-rendered, one survey page at a time, answers saved after each page (resume link)."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import URL, FormData

from cx_common.app import SessionDep, get_runtime
from cx_common.errors import Problem
from cx_common.openapi import problem_response
from cx_survey.distributions.incentives import code_for
from cx_survey.journeys.models import Touchpoint
from cx_survey.respondent.i18n import LANGUAGE_NAMES, STATUS_MESSAGE, UI
from cx_survey.responses import service, submission
from cx_survey.responses.models import PartialResponse
from cx_survey.responses.models import Response as ResponseRow
from cx_survey.responses.schemas import AutosaveRead, ResponseSubmit
from cx_survey.responses.views import preferred_language
from cx_survey.surveys.definition import (
    SCALES,
    AnswerError,
    Definition,
    LocalText,
    Page,
    Question,
    clean_answers,
    depends_on_page,
    visible_path,
)

router = APIRouter(tags=["respondent page"])


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


# What the page answers besides itself: a page saying why it cannot be answered, or the middleware's problem+json.
PAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    404: _html("no such survey (a page saying so)"),
    409: _html("not published yet, or the personal link was used already (a page saying so)"),
    410: _html("closed, or the personal link expired (a page saying so)"),
    413: problem_response(413),
    422: _html("the page again, each problem next to its question"),
    429: problem_response(429),
}
POST_ANSWERS: dict[int | str, dict[str, Any]] = {
    **PAGE_ANSWERS,
    303: {"description": "saved: on to the next page, or to the thank-you page (Location)"},
}
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    enable_async=False,
)
_page = _env.get_template("page.html")


def _lang(request: Request, definition: Definition | None, explicit: str | None) -> str:
    lang = explicit if explicit in UI else preferred_language(request.headers.get("accept-language"))
    if definition is not None and lang not in definition.languages:
        lang = definition.default_language
    return lang


def _render(request: Request, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
    def lang_url(code: str) -> str:
        return str(request.url.include_query_params(lang=code))

    def t(text: LocalText | None) -> str:
        return text.get(lang) if text is not None else ""

    def scale(q: Question) -> tuple[int, int]:
        return SCALES.get(q.type, (1, q.scale))

    base: dict[str, Any] = {
        "lang": lang,
        "ui": UI[lang],
        "languages": LANGUAGE_NAMES,
        "lang_url": lang_url,
        "t": t,
        "scale": scale,
        "message": None,
        "incentive": None,
        "errors": {},
        "hidden": {},
        "answers": {},
        "intro": None,
    }
    base.update(context)
    html = _page.render(**base)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _problem_page(request: Request, exc: Problem, lang: str) -> HTMLResponse:
    key = STATUS_MESSAGE.get(exc.status, "missing")
    if exc.status == 409 and "used" in exc.detail:
        key = "used"
    if exc.status == 410 and "expired" in exc.detail:
        key = "expired"
    return _render(request, lang, exc.status, title=UI[lang][key], message=UI[lang][key])


def token_resume_id(token: str) -> str:
    """The partial save of a personal link: reopening the link resumes it (derived from the token, not its hash)."""
    return "t" + hashlib.sha256(f"resume:{token}".encode()).hexdigest()[:40]


def _form_answers(form: FormData, questions: list[Question]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in questions:
        fid = f"q_{q.id}"
        value: Any = None
        if q.type == "multiple_choice":
            picked = [str(v) for v in form.getlist(fid)]
            other = str(form.get(f"{fid}__other") or "")
            value = {"choices": picked, "other": other} if "other" in picked else picked
        elif q.type == "single_choice":
            choice = str(form.get(fid) or "")
            value = {"choice": choice, "other": str(form.get(f"{fid}__other") or "")} if choice == "other" else choice
        elif q.type == "matrix":
            value = {r.id: str(form[f"{fid}__{r.id}"]) for r in q.rows if form.get(f"{fid}__{r.id}")}
        elif q.type == "ranking":
            ranks = {c.id: str(form.get(f"{fid}__{c.id}") or "") for c in q.choices}
            if any(ranks.values()):
                try:
                    value = [cid for cid, _ in sorted(ranks.items(), key=lambda kv: int(kv[1] or 10_000))]
                except ValueError:
                    value = ["invalid"]
        elif q.type == "contact":
            value = {f: str(form.get(f"{fid}__{f}") or "") for f in q.contact_fields if form.get(f"{fid}__{f}")}
        else:
            value = str(form.get(fid) or "").strip()
        if value not in (None, "", [], {}):
            out[q.id] = value
    return out


@router.get(
    "/s/{survey_id}",
    response_class=HTMLResponse,
    name="respondent_page",
    summary="Respondent page",
    responses=PAGE_ANSWERS,
)
async def respondent_page(survey_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    params = request.query_params
    explicit = params.get("lang")
    try:
        survey, _version, definition = await service.public_survey(session, survey_id)
    except Problem as exc:
        return _problem_page(request, exc, _lang(request, None, explicit))
    lang = _lang(request, definition, explicit)
    token = params.get("t")
    if token:
        try:
            await service.check_invitation(session, survey.id, token)
        except Problem as exc:
            return _problem_page(request, exc, lang)
    hidden = {k: params[k][:200] for k in definition.hidden_fields if params.get(k)}
    resume_id = params.get("r") or (token_resume_id(token) if token else None)
    answers: dict[str, Any] = {}
    if resume_id:
        partial = await session.get(PartialResponse, resume_id)
        if partial is not None and partial.survey_id == survey.id:
            answers = partial.answers
    return _show(
        request,
        definition,
        lang,
        survey.id,
        params.get("page"),
        answers,
        hidden,
        resume_id,
        token,
        params.get("sid") or uuid.uuid4().hex,
        {},
        200,
    )


def _show(
    request: Request,
    definition: Definition,
    lang: str,
    survey_id: uuid.UUID,
    page_id: str | None,
    answers: dict[str, Any],
    hidden: dict[str, str],
    resume_id: str | None,
    token: str | None,
    submission_id: str,
    errors: dict[str, str],
    status: int,
) -> HTMLResponse:
    path = visible_path(definition, answers, hidden)
    index = next((i for i, (p, _) in enumerate(path) if p.id == page_id), 0)
    page, shown = path[index]
    # Questions conditioned on answers of this same page are rendered too; the server drops them on submit if hidden.
    questions = [q for q in page.questions if q in shown or depends_on_page(q, page)]
    return _render(
        request,
        lang,
        status,
        title=definition.title.get(lang),
        intro=definition.intro.get(lang) if definition.intro and index == 0 else None,
        page=page,
        questions=questions,
        answers=answers,
        hidden=hidden,
        errors=errors,
        step=index + 1,
        steps=len(path),
        last=index == len(path) - 1,
        resume_id=resume_id,
        token=token,
        submission_id=submission_id,
        action=_with_token(request.url_for("respondent_submit", survey_id=str(survey_id)), token),
        save_url=_with_token(request.url_for("respondent_save", survey_id=str(survey_id)), token),
    )


def _with_token(url: URL, token: str | None) -> str:
    """Links carry the personal token in the query too, so the rate limiter can key on it without reading bodies."""
    return str(url.include_query_params(t=token)) if token else str(url)


@router.post(
    "/s/{survey_id}",
    response_class=HTMLResponse,
    name="respondent_submit",
    summary="Post one page",
    responses=POST_ANSWERS,
)
async def respondent_submit(survey_id: uuid.UUID, request: Request, session: SessionDep) -> Response:
    form = await request.form()
    explicit = str(form.get("_lang") or "") or None
    try:
        survey, _version, definition = await service.public_survey(session, survey_id)
    except Problem as exc:
        return _problem_page(request, exc, _lang(request, None, explicit))
    lang = _lang(request, definition, explicit)
    token = str(form.get("_t") or "") or None
    resume_id = str(form.get("_r") or "") or None
    submission_id = str(form.get("_sid") or "")[:128] or uuid.uuid4().hex
    if token and not resume_id:
        resume_id = token_resume_id(token)
    page, hidden, answers = await _merged(session, survey.id, definition, form, resume_id)

    def again(errors: dict[str, str]) -> HTMLResponse:
        return _show(
            request, definition, lang, survey.id, page.id, answers, hidden, resume_id, token, submission_id, errors, 422
        )

    try:
        clean_answers(definition, answers, hidden, partial=True)
    except AnswerError as exc:
        return again({e["field"].split(".", 1)[1]: e["message"] for e in exc.errors if "." in e["field"]})
    path = visible_path(definition, answers, hidden)
    shown = next((qs for p, qs in path if p.id == page.id), [])
    missing = {q.id: UI[lang]["is_required"] for q in shown if q.required and q.id not in answers}
    if missing:
        return again(missing)
    partial = await service.save_partial(
        session,
        survey,
        definition,
        resume_id,
        answers,
        hidden,
        replace=True,
        new_id=token_resume_id(token) if token else None,
    )
    await session.commit()
    resume_id = partial.id
    ids = [p.id for p, _ in path]
    position = ids.index(page.id) if page.id in ids else len(ids) - 1
    if position < len(ids) - 1:
        query: dict[str, str] = {
            "r": resume_id,
            "page": ids[position + 1],
            "lang": lang,
            "sid": submission_id,
            **hidden,
        }
        if token:
            query["t"] = token
        url = URL(str(request.url_for("respondent_page", survey_id=str(survey.id)))).include_query_params(**query)
        return RedirectResponse(str(url), status_code=303)
    body = ResponseSubmit(
        answers=answers,
        hidden=hidden,
        language=lang,
        submission_id=submission_id if len(submission_id) >= 8 else None,
        token=token,
        resume_id=resume_id,
        touchpoint_id=None if token else await _link_touchpoint(session, survey.tenant_id, hidden),
    )
    try:
        result = await submission.submit(
            get_runtime(request), survey.id, body, subject_prefix=request.app.state.settings.events_subject_prefix
        )
    except Problem as exc:
        if exc.status == 422:
            errors = {
                e["field"].split(".", 1)[1]: e["message"] for e in exc.extensions.get("errors", []) if "." in e["field"]
            }
            return again(errors)
        return _problem_page(request, exc, lang)
    done = request.url_for("respondent_done", survey_id=str(survey.id), response_id=str(result.id))
    return RedirectResponse(str(done.include_query_params(lang=lang)), status_code=303)


async def _link_touchpoint(session: AsyncSession, tenant_id: uuid.UUID, hidden: dict[str, str]) -> uuid.UUID | None:
    """A public link for one touchpoint (e.g. the QR code at a store's checkout: `/s/<survey>?touchpoint=<id>`)
    attributes its responses to it. A value that names none of the tenant's touchpoints stays a plain hidden value:
    the respondent cannot fix the link, so it never blocks the answer."""
    try:
        touchpoint_id = uuid.UUID(hidden.get("touchpoint", ""))
    except ValueError:
        return None
    found = await session.scalar(
        select(Touchpoint.id).where(Touchpoint.tenant_id == tenant_id, Touchpoint.id == touchpoint_id)
    )
    return found


async def _merged(
    session: AsyncSession, survey_id: uuid.UUID, definition: Definition, form: FormData, resume_id: str | None
) -> tuple[Page, dict[str, str], dict[str, Any]]:
    """The posted page's answers over those saved earlier (the page's own earlier answers are replaced)."""
    hidden = {str(k)[2:]: str(v)[:200] for k, v in form.multi_items() if str(k).startswith("h_")}
    hidden = {k: v for k, v in hidden.items() if k in definition.hidden_fields}
    page_id = str(form.get("_page") or "")
    page = next((p for p in definition.pages if p.id == page_id), definition.pages[0])
    saved: dict[str, Any] = {}
    if resume_id:
        partial = await session.get(PartialResponse, resume_id)
        if partial is not None and partial.survey_id == survey_id:
            saved = dict(partial.answers)
    for q in page.questions:
        saved.pop(q.id, None)
    return page, hidden, {**saved, **_form_answers(form, page.questions)}


@router.post(
    "/s/{survey_id}/save",
    response_model=AutosaveRead,
    name="respondent_save",
    summary="Autosave the page being answered (the page's script posts the form on every change)",
    responses={
        status: problem_response(status) | ({"description": text} if text else {})
        for status, text in (
            (404, "unknown survey, or unknown personal link"),
            (409, "not published, or the personal link was used"),
            (410, "closed, or the personal link expired"),
            (413, ""),
            (422, "answers that cannot be saved; `errors` name each one"),
            (429, ""),
        )
    },
)
async def respondent_save(survey_id: uuid.UUID, request: Request, session: SessionDep) -> AutosaveRead:
    form = await request.form()
    survey, _version, definition = await service.public_survey(session, survey_id)
    token = str(form.get("_t") or "") or None
    if token:
        await service.check_invitation(session, survey.id, token)
    resume_id = str(form.get("_r") or "")[:64] or (token_resume_id(token) if token else None)
    _page, hidden, answers = await _merged(session, survey.id, definition, form, resume_id)
    partial = await service.save_partial(
        session,
        survey,
        definition,
        resume_id,
        answers,
        hidden,
        replace=True,
        new_id=token_resume_id(token) if token else None,
    )
    await session.commit()
    return AutosaveRead(resume_id=partial.id, answered=len(partial.answers))


@router.get(
    "/s/{survey_id}/done/{response_id}",
    response_class=HTMLResponse,
    name="respondent_done",
    summary="Thank-you page (with the incentive code, if any)",
    responses={404: PAGE_ANSWERS[404], 429: PAGE_ANSWERS[429]},
)
async def respondent_done(
    survey_id: uuid.UUID, response_id: uuid.UUID, request: Request, session: SessionDep
) -> Response:
    response = await session.get(ResponseRow, response_id)
    lang = _lang(request, None, request.query_params.get("lang"))
    if response is None or response.survey_id != survey_id:
        return _render(request, lang, 404, title=UI[lang]["missing"], message=UI[lang]["missing"])
    try:
        _survey, _version, definition = await service.public_survey(session, survey_id)
        message = definition.thank_you.get(lang) if definition.thank_you else UI[lang]["thanks"]
        title = definition.title.get(lang)
    except Problem:
        message = title = UI[lang]["thanks"]
    code = await code_for(session, response.id)
    return _render(request, lang, 200, title=title, message=message, incentive=code)
