"""Submitting a response: the common case in one SQL statement, every other case through the ORM path.

Hot path. The published version a survey is answered at is remembered per process (a hint, re-checked by the
statement itself), so no read precedes the write: the answers are validated and scored against the frozen definition,
the event is encoded, and one statement — its own implicit transaction — checks that the survey is still published at
that version with no quota, resolves the org path of the touchpoint's unit, marks a personal link used, inserts the
response (idempotent on the submission key), deletes the partial save, assigns an incentive code, writes the outbox
row and notifies the relay. One round trip; with a personal link, one more first, to read the invitation.

Careful path (`service.submit`, one ORM transaction, which re-reads everything and answers with the precise problem):
the first submission to a survey, surveys with a quota, a used, expired or unknown link, answers that fail validation
under a submission key (a resubmission is answered with the first response), an unknown touchpoint, and whenever the
statement reports that its checks failed (survey closed or republished, unknown org unit) or that the submission key
was taken (a double submission). Both paths store the same row and the same event.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from cx_common.app import Runtime
from cx_common.db import new_id, utcnow
from cx_common.errors import Problem
from cx_common.events import build_envelope, subject_for
from cx_common.events.outbox import OUTBOX_CHANNEL
from cx_common.logging import get_logger
from cx_survey.pg import Pool, pool_of
from cx_survey.responses import service
from cx_survey.responses.schemas import ResponseSubmit, SubmitResult
from cx_survey.surveys.definition import AnswerError, Definition, clean_answers, scores

_CACHE_LIMIT = 4096
NOTIFY_EVERY = 0.02  # seconds: at most this long between a commit and the relay's wake-up call
log = get_logger(__name__)
SUBMISSIONS = Counter(
    "cx_survey_submissions_total",
    "Submitted responses by path: hot (one statement) or careful (ORM transaction: first, quota, refusals, doubles)",
    ["path"],
)
_HOT, _CAREFUL = SUBMISSIONS.labels("hot"), SUBMISSIONS.labels("careful")


@dataclass(frozen=True)
class SurveyHint:
    """What the last fresh read said about a published survey without a quota (the statement re-checks it)."""

    tenant_id: uuid.UUID
    version: int
    version_id: uuid.UUID
    touchpoint_id: uuid.UUID | None
    definition: Definition


@dataclass(frozen=True)
class TouchpointInfo:
    """Touchpoints are never edited, so what one says can be remembered."""

    stage: str
    channel: str
    org_unit_id: str | None


def _positional(sql: str, types: dict[str, str]) -> tuple[str, list[str]]:
    """`:name` → `$n::type` (every occurrence cast alike, so Postgres never deduces two types for one parameter)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}::{types[name]}"

    return re.sub(r"(?<!:):([a-z_]+)", number, sql), order


_TYPES = {
    "survey_id": "uuid",
    "version": "int",
    "survey_touchpoint_id": "uuid",
    "tenant_id": "uuid",
    "org_unit_id": "varchar",
    "invitation_id": "uuid",
    "now": "timestamptz",
    "response_id": "uuid",
    "started_at": "timestamptz",
    "resume_id": "varchar",
    "version_id": "uuid",
    "submission_key": "varchar",
    "touchpoint_id": "uuid",
    "journey_stage": "varchar",
    "channel": "varchar",
    "customer_key": "varchar",
    "language": "varchar",
    "answers": "jsonb",
    "hidden": "jsonb",
    "nps": "int",
    "nps_category": "varchar",
    "csat": "float8",
    "ces": "float8",
    "event_id": "uuid",
    "subject": "text",
    "event_type": "text",
    "tenant_text": "text",
    "payload": "bytea",
    "trace_id": "text",
    "notify_channel": "text",
    "notify": "bool",
}
_SUBMIT, _ORDER = _positional(
    """
WITH g AS (
    SELECT 1 FROM surveys
    WHERE id = :survey_id AND status = 'published' AND current_version = :version AND quota IS NULL
      AND touchpoint_id IS NOT DISTINCT FROM :survey_touchpoint_id
), o AS (
    SELECT CASE
        WHEN :org_unit_id IS NULL THEN '{}'::varchar[]
        ELSE COALESCE(
            (SELECT u.ancestor_ids || u.id FROM org_units u
             WHERE u.tenant_id = :tenant_id AND u.id = :org_unit_id AND NOT u.deleted),
            CASE WHEN EXISTS (SELECT 1 FROM org_units u WHERE u.tenant_id = :tenant_id) THEN NULL
                 ELSE ARRAY[:org_unit_id] END)
    END AS path
), inv AS (
    UPDATE invitations SET used_at = :now, response_id = :response_id, updated_at = :now
    WHERE id = :invitation_id AND used_at IS NULL AND expires_at > :now
      AND EXISTS (SELECT 1 FROM g) AND (SELECT path FROM o) IS NOT NULL
    RETURNING id
), ok AS (
    SELECT o.path FROM g, o
    WHERE o.path IS NOT NULL AND (:invitation_id IS NULL OR EXISTS (SELECT 1 FROM inv))
), st AS (
    SELECT COALESCE(:started_at, (
        SELECT p.started_at FROM partial_responses p WHERE p.id = :resume_id AND p.survey_id = :survey_id
    )) AS started_at
), ins AS (
    INSERT INTO responses (
        id, tenant_id, survey_id, version, version_id, submission_key, invitation_id, touchpoint_id, journey_stage,
        channel, org_unit_id, org_path, customer_key, language, answers, hidden, nps, nps_category, csat, ces,
        started_at, submitted_at, duration_ms)
    SELECT :response_id, :tenant_id, :survey_id, :version, :version_id, :submission_key, :invitation_id,
        :touchpoint_id, :journey_stage, :channel, :org_unit_id, ok.path, :customer_key, :language, :answers, :hidden,
        :nps, :nps_category, :csat, :ces, st.started_at, :now,
        CASE WHEN st.started_at <= :now AND st.started_at > :now - interval '24 days'  -- clamped below as well:
             THEN floor(extract(epoch FROM :now - LEAST(GREATEST(st.started_at, :now - interval '24 days'), :now))
                  * 1000)::int END  -- Postgres may fold the branch for a constant start even when it is not taken
    FROM ok, st
    ON CONFLICT (survey_id, submission_key) DO NOTHING
    RETURNING id, started_at, duration_ms
), part AS (
    DELETE FROM partial_responses
    WHERE id = :resume_id AND survey_id = :survey_id AND EXISTS (SELECT 1 FROM ins)
), code AS (
    UPDATE incentive_codes SET response_id = :response_id, assigned_at = :now
    WHERE EXISTS (SELECT 1 FROM ins) AND id = (
        SELECT c.id FROM incentive_codes c WHERE c.survey_id = :survey_id AND c.response_id IS NULL
        ORDER BY c.id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING code
), ev AS (
    INSERT INTO outbox (event_id, subject, event_type, tenant_id, payload, trace_id)
    SELECT :event_id, :subject, :event_type, :tenant_text, :payload, :trace_id FROM ins
)
SELECT EXISTS (SELECT 1 FROM ok) AS ok, ins.id, ins.started_at, ins.duration_ms, (SELECT code FROM code) AS code,
    CASE WHEN ins.id IS NOT NULL AND :notify THEN pg_notify(:notify_channel, '') END AS notified
FROM (SELECT 1) AS one LEFT JOIN ins ON true
""",
    _TYPES,
)
_HINT = (
    "SELECT s.tenant_id, s.status, s.touchpoint_id, s.quota, v.id AS version_id, v.version, v.definition "
    "FROM surveys s LEFT JOIN survey_versions v ON v.survey_id = s.id AND v.version = s.current_version "
    "WHERE s.id = $1"
)
_TOUCHPOINT = "SELECT stage_key, channel, org_unit_id FROM touchpoints WHERE tenant_id = $1 AND id = $2"
_INVITATION = (
    "SELECT id, customer_key, touchpoint_id, hidden, used_at, expires_at FROM invitations "
    "WHERE token_hash = $1 AND survey_id = $2"
)


class Submissions:
    """The hot path's per-app state: the pool, what it remembers about surveys and touchpoints, and the relay's
    wake-up calls.

    Every outbox row could carry its own NOTIFY to wake the relay, but Postgres serialises the commits of all
    notifying transactions on one lock, which under many concurrent submissions costs more throughput than anything
    else in the statement. So a submission notifies only if none did in the last `notify_every` seconds; one that
    did not makes sure a NOTIFY follows its commit within that time (sent on its own). The relay, woken, publishes
    everything committed so far; it also polls, so a lost wake-up only delays an event, never loses it."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.hints: dict[uuid.UUID, SurveyHint] = {}
        self.touchpoints: dict[tuple[uuid.UUID, uuid.UUID], TouchpointInfo] = {}
        self.notify_every = NOTIFY_EVERY
        self.notified_at = -NOTIFY_EVERY
        self._follow_up: asyncio.TimerHandle | None = None
        self._sending: asyncio.Task[None] | None = None

    def claim_notify(self) -> bool:
        """Whether this submission's statement notifies the relay itself."""
        now = time.monotonic()
        if now - self.notified_at >= self.notify_every:
            self.notified_at = now
            return True
        return False

    def follow_up(self) -> None:
        """Called after a commit that did not notify: a NOTIFY is sent within `notify_every` from now."""
        if self._follow_up is None:
            self._follow_up = asyncio.get_running_loop().call_later(self.notify_every, self._send_follow_up)

    def _send_follow_up(self) -> None:
        self._follow_up = None  # from here on a commit schedules another one: this NOTIFY may precede it
        self.notified_at = time.monotonic()
        self._sending = asyncio.ensure_future(self._notify())

    async def _notify(self) -> None:
        try:
            await self.pool.fetchrow("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
        except Exception as exc:  # the relay's poll picks the rows up
            log.warning("outbox_wakeup_failed", error=repr(exc))

    async def close(self) -> None:
        if self._follow_up is not None:
            self._follow_up.cancel()
            self._follow_up = None
            await self._notify()
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)

    async def hint(self, survey_id: uuid.UUID) -> SurveyHint | None:
        """The remembered state, or a fresh read (404/409/410 as `service.public_survey`); None for a quota."""
        if (known := self.hints.get(survey_id)) is not None:
            return known
        row = await self.pool.fetchrow(_HINT, survey_id)
        if row is None:
            raise Problem(404, f"survey {survey_id} not found")
        if (problem := service.status_problem(row["status"], row["version_id"])) is not None:
            raise problem
        if row["quota"] is not None:
            return None  # counted under a lock: the careful path
        if len(self.hints) >= _CACHE_LIMIT:
            self.hints.clear()
        hint = self.hints[survey_id] = SurveyHint(
            tenant_id=row["tenant_id"],
            version=row["version"],
            version_id=row["version_id"],
            touchpoint_id=row["touchpoint_id"],
            definition=service.parse_definition(row["version_id"], row["definition"]),
        )
        return hint

    async def touchpoint(self, tenant_id: uuid.UUID, touchpoint_id: uuid.UUID) -> TouchpointInfo | None:
        key = (tenant_id, touchpoint_id)
        if (known := self.touchpoints.get(key)) is not None:
            return known
        row = await self.pool.fetchrow(_TOUCHPOINT, tenant_id, touchpoint_id)
        info = TouchpointInfo(row["stage_key"], row["channel"], row["org_unit_id"]) if row else None
        if info is not None:  # an unknown one may be created later
            if len(self.touchpoints) >= _CACHE_LIMIT:
                self.touchpoints.clear()
            self.touchpoints[key] = info
        return info


async def close_submissions(runtime: Runtime) -> None:
    """Shutdown: the last wake-up call goes out before the pool closes."""
    found = runtime.extras.pop("submissions", None)
    if isinstance(found, Submissions):
        await found.close()


def submissions_of(runtime: Runtime) -> Submissions | None:
    found = runtime.extras.get("submissions")
    if isinstance(found, Submissions):
        return found
    pool = pool_of(runtime)
    if pool is None:
        return None
    made = runtime.extras["submissions"] = Submissions(pool)
    return made


async def submit(
    runtime: Runtime,
    survey_id: uuid.UUID,
    data: ResponseSubmit,
    *,
    accept_language: str = "zh-Hans",
    subject_prefix: str = "cx",
) -> SubmitResult:
    """Store a response and its event (201), or answer a double submission with the first response (`duplicate`)."""
    subs = submissions_of(runtime)
    if subs is None:
        return await careful(runtime, survey_id, data, accept_language=accept_language, subject_prefix=subject_prefix)
    stored = await _hot(subs, survey_id, data, accept_language=accept_language, subject_prefix=subject_prefix)
    if stored is None:
        return await careful(runtime, survey_id, data, accept_language=accept_language, subject_prefix=subject_prefix)
    _HOT.inc()
    return stored


async def careful(
    runtime: Runtime, survey_id: uuid.UUID, data: ResponseSubmit, *, accept_language: str, subject_prefix: str
) -> SubmitResult:
    if runtime.sessions is None:
        raise Problem(503, "database is not configured")
    _CAREFUL.inc()
    async with runtime.sessions() as session:
        done = await service.submit(
            session, survey_id, data, accept_language=accept_language, subject_prefix=subject_prefix
        )
        await session.commit()
    return SubmitResult.model_validate(done.response).model_copy(
        update={"duplicate": done.duplicate, "incentive_code": done.incentive_code}
    )


async def _hot(
    subs: Submissions, survey_id: uuid.UUID, data: ResponseSubmit, *, accept_language: str, subject_prefix: str
) -> SubmitResult | None:
    """The one-statement path; None hands the submission to the careful path (which may still store it)."""
    hint = await subs.hint(survey_id)
    if hint is None:
        return None
    definition = hint.definition
    invitation = None
    token_hash: str | None = None
    if data.token:
        token_hash = service.hash_token(data.token)
        invitation = await subs.pool.fetchrow(_INVITATION, token_hash, survey_id)
        if invitation is None or invitation["used_at"] is not None or invitation["expires_at"] <= utcnow():
            return None  # a double submission of the link, or a 404/409/410 to explain
    hidden = service.merged_hidden(definition, invitation["hidden"] if invitation else {}, data.hidden)
    try:
        answers = clean_answers(definition, data.answers, hidden)
    except AnswerError as exc:
        if data.submission_id or data.token:
            return None  # a resubmission under the same key is answered with the first response
        raise Problem(422, str(exc), title="Invalid answers", errors=exc.errors) from exc
    score = scores(definition, answers)
    if invitation is not None:
        hidden = service.with_link_metadata(hidden, invitation["hidden"])

    touchpoint_id = data.touchpoint_id or (invitation["touchpoint_id"] if invitation else None) or hint.touchpoint_id
    stage = channel = org_unit_id = None
    if touchpoint_id is not None:
        touchpoint = await subs.touchpoint(hint.tenant_id, touchpoint_id)
        if touchpoint is None:
            return None  # 422 (unless it is a double submission)
        stage, channel, org_unit_id = touchpoint.stage, touchpoint.channel, touchpoint.org_unit_id
    channel = hidden.get("channel") or channel
    customer_key = (invitation["customer_key"] if invitation else None) or hidden.get("customer_id") or None
    language = data.language or (
        accept_language if accept_language in definition.languages else definition.default_language
    )
    if token_hash is not None:
        submission_key = f"inv:{token_hash[:32]}"
    else:
        submission_key = data.submission_id or f"anon:{uuid.uuid4()}"
    invitation_id: uuid.UUID | None = invitation["id"] if invitation else None
    response_id, now = new_id(), utcnow()
    payload = service.event_payload(
        definition,
        response_id=response_id,
        survey_id=survey_id,
        version=hint.version,
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
        invitation_id=invitation_id,
    )
    event_id = new_id()
    envelope = build_envelope(
        tenant_id=hint.tenant_id,
        event_type=service.EVENT_TYPE,
        payload=payload,
        source="survey",
        event_id=event_id,
        occurred_at=now,
    )
    params: dict[str, Any] = {
        "survey_id": survey_id,
        "version": hint.version,
        "survey_touchpoint_id": hint.touchpoint_id,
        "tenant_id": hint.tenant_id,
        "org_unit_id": org_unit_id,
        "invitation_id": invitation_id,
        "now": now,
        "response_id": response_id,
        "started_at": data.started_at,
        "resume_id": data.resume_id,
        "version_id": hint.version_id,
        "submission_key": submission_key,
        "touchpoint_id": touchpoint_id,
        "journey_stage": stage,
        "channel": channel,
        "customer_key": customer_key,
        "language": language,
        "answers": answers,
        "hidden": hidden,
        "nps": score["nps"],
        "nps_category": score["nps_category"],
        "csat": score["csat"],
        "ces": score["ces"],
        "event_id": event_id,
        "subject": subject_for(service.EVENT_TYPE, subject_prefix),
        "event_type": service.EVENT_TYPE,
        "tenant_text": str(hint.tenant_id),
        "payload": envelope.SerializeToString(),
        "trace_id": envelope.trace_id,
        "notify_channel": OUTBOX_CHANNEL,
    }
    params["notify"] = notify = subs.claim_notify()
    # On a dropped connection the pool sends it once more: everything or nothing was stored, and the same submission
    # key then either stores it or finds it stored (a double submission, answered by the careful path with it).
    row = await subs.pool.fetchrow(_SUBMIT, *[params[name] for name in _ORDER])
    if not row["ok"]:
        subs.hints.pop(survey_id, None)  # closed, republished, quota set, link used meanwhile, unknown org unit
        return None
    if row["id"] is None:
        return None  # the key was taken: a double submission
    if not notify:
        subs.follow_up()
    return SubmitResult(
        id=response_id,
        survey_id=survey_id,
        version=hint.version,
        touchpoint_id=touchpoint_id,
        journey_stage=stage,
        channel=channel,
        org_unit_id=org_unit_id,
        customer_key=customer_key,
        language=language,
        answers=answers,
        hidden=hidden,
        nps=score["nps"],
        nps_category=score["nps_category"],
        csat=score["csat"],
        ces=score["ces"],
        started_at=row["started_at"],
        submitted_at=now,
        duration_ms=row["duration_ms"],
        duplicate=False,
        incentive_code=row["code"],
    )
