"""Submitting responses (validated against the frozen version, scored, stored, event in the same transaction)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import and_, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from cx.events.v1 import events_pb2
from cx_common.db import new_id, utcnow
from cx_common.errors import Problem
from cx_common.events import add_event
from cx_survey.distributions.incentives import assign_code, code_for
from cx_survey.distributions.models import OutgoingMail, ScheduledMessage
from cx_survey.followups.models import FollowUpRequest
from cx_survey.journeys.service import get_touchpoint
from cx_survey.orgs.models import OrgUnit
from cx_survey.orgs.service import path_of
from cx_survey.responses.models import Invitation, PartialResponse, Response
from cx_survey.responses.schemas import InvitationCreate, ResponseSubmit
from cx_survey.surveys.definition import AnswerError, Definition, clean_answers, hidden_errors, scores
from cx_survey.surveys.models import Survey, SurveyVersion

EVENT_TYPE = "survey.response.submitted"
MAX_TIMED = dt.timedelta(days=24)  # longer is no answering time (and would not fit the duration column)
_DEFINITIONS: dict[uuid.UUID, Definition] = {}  # published versions never change, so parsing once is safe


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class PublishedVersion:
    """The version a respondent answers (its definition is parsed once per process: published versions never change)."""

    id: uuid.UUID
    version: int


_PUBLIC = (
    select(Survey, SurveyVersion.id, SurveyVersion.version)
    .options(defer(Survey.definition))  # the editable draft is not needed here
    .outerjoin(
        SurveyVersion, and_(SurveyVersion.survey_id == Survey.id, SurveyVersion.version == Survey.current_version)
    )
)


def status_problem(status: str, version_id: uuid.UUID | None) -> Problem | None:
    """Why a survey cannot be answered (410 closed, 409 not published), or None when it can."""
    if status == "closed":
        return Problem(410, "this survey is closed", field="survey_id")
    if status != "published" or version_id is None:
        return Problem(409, "this survey is not published", field="survey_id")
    return None


def cached_definition(version_id: uuid.UUID) -> Definition | None:
    return _DEFINITIONS.get(version_id)


def parse_definition(version_id: uuid.UUID, raw: Any) -> Definition:
    """Parse a published version's definition once per process (published versions never change)."""
    definition = _DEFINITIONS.get(version_id)
    if definition is None:
        if len(_DEFINITIONS) > 1024:
            _DEFINITIONS.clear()
        definition = _DEFINITIONS[version_id] = Definition.model_validate(raw)
    return definition


async def public_survey(session: AsyncSession, survey_id: uuid.UUID) -> tuple[Survey, PublishedVersion, Definition]:
    """A survey reachable without login: must exist and be published (409 if draft, 410 if closed). One query."""
    row = (await session.execute(_PUBLIC.where(Survey.id == survey_id))).first()
    if row is None:
        raise Problem(404, f"survey {survey_id} not found")
    survey, version_id, version_no = row
    if (problem := status_problem(survey.status, version_id)) is not None:
        raise problem
    definition = cached_definition(version_id)
    if definition is None:
        raw = await session.scalar(select(SurveyVersion.definition).where(SurveyVersion.id == version_id))
        definition = parse_definition(version_id, raw)
    return survey, PublishedVersion(version_id, version_no), definition


async def link_definition(session: AsyncSession, survey: Survey) -> Definition | None:
    """What a new personal link will be answered with: the published version, else the draft (None: neither)."""
    if survey.current_version is not None:
        version_id, raw = (
            await session.execute(
                select(SurveyVersion.id, SurveyVersion.definition).where(
                    SurveyVersion.survey_id == survey.id, SurveyVersion.version == survey.current_version
                )
            )
        ).one()
        return parse_definition(version_id, raw)
    return Definition.model_validate(survey.definition) if survey.definition is not None else None


def check_link_hidden(definition: Definition | None, hidden: dict[str, str]) -> None:
    """A personal link may only carry hidden fields its survey declares: 422 naming each other one.

    Refused when the link is made, where the caller can correct it, rather than accepted and then refusing every
    answer the respondent gives."""
    if not hidden:
        return
    errors = (
        hidden_errors(definition, hidden)
        if definition is not None
        else [{"field": f"hidden.{k}", "message": "the survey has no definition yet"} for k in hidden]
    )
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(422, detail, title="Invalid hidden fields", field=errors[0]["field"], errors=errors)


def merged_hidden(definition: Definition, from_link: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """The hidden fields of a response: those given with the submission (an undeclared one is refused later, 422),
    overlaid by those of the personal link. The link's come from the send API and win over what the respondent's
    browser sends; one the answered version does not declare (the survey was republished without it) is ignored."""
    declared = definition.hidden_fields
    return {**given, **{k: str(v) for k, v in from_link.items() if k in declared}}


# What the service itself puts on a follow-up's personal link (never declared by a survey, never sent by a browser):
# kept on the response and in its event, so alerts can tell which ticket and request the answer closes.
TICKET_FIELD, REQUEST_FIELD = "cx_ticket_id", "cx_follow_up_id"
LINK_METADATA = (TICKET_FIELD, REQUEST_FIELD)


def with_link_metadata(hidden: dict[str, str], from_link: dict[str, Any]) -> dict[str, str]:
    """The response's hidden fields: the validated ones plus the link's service metadata."""
    extra = {k: str(from_link[k]) for k in LINK_METADATA if from_link.get(k)}
    return {**hidden, **extra} if extra else hidden


async def check_invitation(
    session: AsyncSession, survey_id: uuid.UUID, token: str, *, lock: bool = False
) -> Invitation:
    query = select(Invitation).where(Invitation.token_hash == hash_token(token), Invitation.survey_id == survey_id)
    if lock:
        query = query.with_for_update()
    invitation = (await session.execute(query)).scalar_one_or_none()
    if invitation is None:
        raise Problem(404, "token: unknown invitation link", field="token")
    if invitation.used_at is not None:
        raise Problem(409, "token: this personal link has already been used", field="token")
    if invitation.expires_at <= utcnow():
        raise Problem(410, "token: this personal link has expired", field="token")
    return invitation


def _answer_pb(qtype: str, qid: str, value: Any) -> events_pb2.Answer:
    answer = events_pb2.Answer(question_id=qid, question_type=qtype)
    if qtype in ("nps", "csat", "ces", "rating", "number"):
        answer.number_value = float(value)
    elif qtype in ("single_choice", "dropdown"):
        if isinstance(value, dict):
            answer.choice_ids.append(value["choice"])
            answer.other_text = value.get("other", "")
        else:
            answer.choice_ids.append(value)
    elif qtype == "multiple_choice":
        if isinstance(value, dict):
            answer.choice_ids.extend(value["choices"])
            answer.other_text = value.get("other", "")
        else:
            answer.choice_ids.extend(value)
    elif qtype == "ranking":
        answer.choice_ids.extend(value)
    elif qtype == "matrix":
        answer.matrix_values.update(value)
    elif qtype == "contact":
        answer.text_value = json.dumps(value, ensure_ascii=False)
    else:
        answer.text_value = str(value)
    return answer


def event_payload(
    definition: Definition,
    *,
    response_id: uuid.UUID,
    survey_id: uuid.UUID,
    version: int,
    touchpoint_id: uuid.UUID | None,
    journey_stage: str | None,
    channel: str | None,
    org_unit_id: str | None,
    customer_key: str | None,
    language: str,
    submitted_at: dt.datetime,
    answers: dict[str, Any],
    hidden: dict[str, str],
    score: dict[str, Any],
    invitation_id: uuid.UUID | None,
) -> events_pb2.SurveyResponseSubmitted:
    """The `survey.response.submitted` payload: scores, every answer (open text included), touchpoint, org unit."""
    questions = definition.questions()
    timestamp = Timestamp()
    timestamp.FromDatetime(submitted_at)
    payload = events_pb2.SurveyResponseSubmitted(
        response_id=str(response_id),
        survey_id=str(survey_id),
        survey_version=version,
        touchpoint_id=str(touchpoint_id) if touchpoint_id else "",
        journey_stage=journey_stage or "",
        channel=channel or "",
        org_unit_id=org_unit_id or "",
        customer_key=customer_key or "",
        language=language,
        submitted_at=timestamp,
        answers=[_answer_pb(questions[qid].type, qid, value) for qid, value in answers.items()],
        hidden_fields={k: str(v) for k, v in hidden.items()},
        distribution_id=str(invitation_id) if invitation_id else "",
        survey_title=definition.title.get(language),
    )
    if score["nps"] is not None:
        payload.nps = int(score["nps"])
    if score["csat"] is not None:
        payload.csat = float(score["csat"])
    if score["ces"] is not None:
        payload.ces = float(score["ces"])
    return payload


@dataclass
class Submitted:
    response: Response
    duplicate: bool
    definition: Definition
    incentive_code: str | None = None


async def submit(
    session: AsyncSession,
    survey_id: uuid.UUID,
    data: ResponseSubmit,
    *,
    accept_language: str = "zh-Hans",
    subject_prefix: str = "cx",
) -> Submitted:
    survey, version, definition = await public_survey(session, survey_id)
    tenant_id = survey.tenant_id
    if survey.quota is not None:
        # Serialise submissions while a quota applies.
        await session.refresh(survey, attribute_names=["status", "quota"], with_for_update=True)
        taken = await session.scalar(select(func.count()).select_from(Response).where(Response.survey_id == survey.id))
        if (taken or 0) >= survey.quota:
            raise Problem(410, "this survey has reached its quota of responses", field="survey_id", rule="quota")
    invitation: Invitation | None = None
    submission_key = data.submission_id
    if data.token:
        # Double submission of a personal link with the same key is answered with the first response.
        existing = await _existing(session, survey.id, f"inv:{hash_token(data.token)[:32]}")
        if existing is not None:
            return Submitted(existing, True, definition, await code_for(session, existing.id))
        invitation = await check_invitation(session, survey.id, data.token, lock=True)
        submission_key = f"inv:{invitation.token_hash[:32]}"
    elif submission_key is not None:
        existing = await _existing(session, survey.id, submission_key)
        if existing is not None:
            return Submitted(existing, True, definition, await code_for(session, existing.id))
    if submission_key is None:
        submission_key = f"anon:{uuid.uuid4()}"

    hidden = merged_hidden(definition, invitation.hidden if invitation else {}, data.hidden)
    try:
        answers = clean_answers(definition, data.answers, hidden)
    except AnswerError as exc:
        raise Problem(422, str(exc), title="Invalid answers", errors=exc.errors) from exc
    score = scores(definition, answers)
    if invitation is not None:
        hidden = with_link_metadata(hidden, invitation.hidden)

    touchpoint_id = data.touchpoint_id or (invitation.touchpoint_id if invitation else None) or survey.touchpoint_id
    stage = channel = org_unit_id = None
    if touchpoint_id is not None:
        touchpoint = await get_touchpoint(session, tenant_id, touchpoint_id)
        stage, channel, org_unit_id = touchpoint.stage_key, touchpoint.channel, touchpoint.org_unit_id
    channel = hidden.get("channel") or channel
    org_path = await path_of(session, tenant_id, org_unit_id, field="touchpoint_id")
    customer_key = (invitation.customer_key if invitation else None) or hidden.get("customer_id") or None
    language = data.language or (
        accept_language if accept_language in definition.languages else definition.default_language
    )

    started_at = data.started_at
    if data.resume_id:
        partial = await session.get(PartialResponse, data.resume_id)
        if partial is not None and partial.survey_id == survey.id:
            started_at = started_at or partial.started_at
            await session.delete(partial)
    now = utcnow()
    took = now - started_at if started_at else None
    duration_ms = int(took.total_seconds() * 1000) if took is not None and dt.timedelta(0) <= took < MAX_TIMED else None
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": tenant_id,
        "survey_id": survey.id,
        "version": version.version,
        "version_id": version.id,
        "submission_key": submission_key,
        "invitation_id": invitation.id if invitation else None,
        "touchpoint_id": touchpoint_id,
        "journey_stage": stage,
        "channel": channel,
        "org_unit_id": org_unit_id,
        "org_path": org_path,
        "customer_key": customer_key,
        "language": language,
        "answers": answers,
        "hidden": hidden,
        "nps": score["nps"],
        "nps_category": score["nps_category"],
        "csat": score["csat"],
        "ces": score["ces"],
        "started_at": started_at,
        "submitted_at": now,
        "duration_ms": duration_ms,
    }
    # One statement: a concurrent double submission (same key) inserts nothing and is answered with the first.
    inserted = await session.scalar(
        insert(Response)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Response.survey_id, Response.submission_key])
        .returning(Response.id)
    )
    if inserted is None:
        existing = await _existing(session, survey.id, submission_key)
        if existing is None:
            raise Problem(409, "submission_id: a concurrent submission is in progress", field="submission_id")
        return Submitted(existing, True, definition, await code_for(session, existing.id))
    response = Response(**values)  # what was stored (not attached: the row is written already)
    if invitation is not None:
        invitation.used_at = now
        invitation.response_id = response.id
    incentive = await assign_code(session, survey.id, response.id)

    payload = event_payload(
        definition,
        response_id=response.id,
        survey_id=survey.id,
        version=version.version,
        touchpoint_id=touchpoint_id,
        journey_stage=stage,
        channel=channel,
        org_unit_id=org_unit_id,
        customer_key=customer_key,
        language=language,
        submitted_at=now,
        answers=answers,
        hidden=hidden,
        score=score,
        invitation_id=invitation.id if invitation else None,
    )
    await add_event(
        session,
        tenant_id=tenant_id,
        event_type=EVENT_TYPE,
        payload=payload,
        source="survey",
        subject_prefix=subject_prefix,
    )
    return Submitted(response, False, definition, incentive)


async def _existing(session: AsyncSession, survey_id: uuid.UUID, submission_key: str) -> Response | None:
    result = await session.execute(
        select(Response).where(Response.survey_id == survey_id, Response.submission_key == submission_key)
    )
    return result.scalar_one_or_none()


async def save_partial(
    session: AsyncSession,
    survey: Survey,
    definition: Definition,
    resume_id: str | None,
    answers: dict[str, Any],
    hidden: dict[str, str],
    *,
    replace: bool = False,
    new_id: str | None = None,
) -> PartialResponse:
    """Merge (or with `replace`, set) answers into the saved ones; logic sees the merged set, required is skipped.

    A new partial save gets `new_id` (the personal link's resume id) or a random id."""
    partial = await session.get(PartialResponse, resume_id) if resume_id else None
    if partial is not None and partial.survey_id != survey.id:
        partial, new_id = None, None
    if partial is None:
        partial = PartialResponse(
            id=new_id or secrets.token_urlsafe(18),
            tenant_id=survey.tenant_id,
            survey_id=survey.id,
            answers={},
            started_at=utcnow(),
        )
        session.add(partial)
    try:
        cleaned = clean_answers(
            definition, answers if replace else {**partial.answers, **answers}, hidden, partial=True
        )
    except AnswerError as exc:
        raise Problem(422, str(exc), title="Invalid answers", errors=exc.errors) from exc
    partial.answers = cleaned
    partial.updated_at = utcnow()
    await session.flush()
    return partial


async def create_invitation(session: AsyncSession, survey: Survey, data: InvitationCreate) -> tuple[Invitation, str]:
    check_link_hidden(await link_definition(session, survey), data.hidden)
    if data.touchpoint_id is not None:
        await get_touchpoint(session, survey.tenant_id, data.touchpoint_id)
    token = new_token()
    invitation = Invitation(
        tenant_id=survey.tenant_id,
        survey_id=survey.id,
        token_hash=hash_token(token),
        customer_key=data.customer_key,
        touchpoint_id=data.touchpoint_id,
        hidden=data.hidden,
        expires_at=utcnow() + dt.timedelta(hours=data.expires_in_hours),
    )
    session.add(invitation)
    await session.flush()
    return invitation, token


async def visible_org_filter(session: AsyncSession, tenant_id: uuid.UUID, org_unit_id: str | None) -> str | None:
    """The org unit a principal is confined to, or None when it sees the whole tenant (no unit, or the root)."""
    if not org_unit_id:
        return None
    unit = await session.get(OrgUnit, (tenant_id, org_unit_id))
    if unit is not None and not unit.ancestor_ids:
        return None
    return org_unit_id


async def delete_customer(session: AsyncSession, tenant_id: uuid.UUID, customer_key: str) -> tuple[int, int, int]:
    """A privacy request: the customer's responses, personal links, the messages sent to them (schedule rows and
    mail-sink copies, which hold the address) and the follow-ups asked for them. Returns (responses, invitations,
    messages) deleted."""
    messages = select(ScheduledMessage.id).where(
        ScheduledMessage.tenant_id == tenant_id, ScheduledMessage.customer_key == customer_key
    )
    await session.execute(
        delete(OutgoingMail).where(OutgoingMail.tenant_id == tenant_id, OutgoingMail.message_id.in_(messages))
    )
    sent = await session.execute(
        delete(ScheduledMessage).where(
            ScheduledMessage.tenant_id == tenant_id, ScheduledMessage.customer_key == customer_key
        )
    )
    responses = await session.execute(
        delete(Response).where(Response.tenant_id == tenant_id, Response.customer_key == customer_key)
    )
    invitations = await session.execute(
        delete(Invitation).where(Invitation.tenant_id == tenant_id, Invitation.customer_key == customer_key)
    )
    await session.execute(
        delete(FollowUpRequest).where(
            FollowUpRequest.tenant_id == tenant_id, FollowUpRequest.customer_key == customer_key
        )
    )
    counts = (responses.rowcount, invitations.rowcount, sent.rowcount)  # type: ignore[attr-defined]
    return counts[0] or 0, counts[1] or 0, counts[2] or 0
