"""The analysis worker (a background task inside the service process).

Durability: the queue is the `feedback_items` table itself. A worker claims a micro-batch with
`FOR UPDATE SKIP LOCKED`, marking rows `processing` with a fresh claim token and a lease. Results are written with
`WHERE claim_token = <token>` in the same transaction as the `feedback.analyzed` outbox rows, so:
- a worker that dies mid-batch leaves rows whose lease expires; another worker re-claims them (new token);
- a slow worker whose lease was taken over cannot write any more (its token no longer matches);
- a re-coding backfill that resets an item in flight (token cleared) makes the worker's result go nowhere;
- hence each item version is stored and announced exactly once, and nothing is skipped.
Failures are told apart by their status code:
- NLP down or overloaded (UNAVAILABLE, RESOURCE_EXHAUSTED, ...): the circuit breaker counts a failure (claims pause
  once it opens), the claim's rows go back to pending without using up their attempts, and the backlog drains when
  NLP is back;
- NLP refused the request (INVALID_ARGUMENT, ...): the batch is bisected until the refused items are alone;
- NLP failed on the request (INTERNAL, UNKNOWN, DEADLINE_EXCEEDED): either an item makes it fail (a poison text) or
  NLP is broken or overloaded. A known-good canary text decides: when NLP analyses it, the batch is bisected like a
  refusal; when not, it is an outage. (Half of a bisected batch going through vouches for NLP just as well.)
An item that fails alone counts against `analysis_max_attempts` with exponential backoff; then it is `failed` with
NLP's reason. While a batch is being bisected the claim's lease is renewed before every further call, so another
worker does not take the items over however many calls that takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

import grpc
from prometheus_client import Counter, Gauge
from sqlalchemy import CursorResult, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cx.events.v1 import events_pb2
from cx.nlp.v1 import nlp_pb2
from cx_common.logging import get_logger
from cx_ingest.analysis.breaker import CircuitBreaker
from cx_ingest.codebooks import service as codebooks
from cx_ingest.feedback.records import feedback_context
from cx_ingest.feedback.service import SOURCE
from cx_ingest.outbox_bulk import add_events
from cx_ingest.pg import SessionDb
from cx_ingest.settings import Settings

log = get_logger(__name__)

ANALYZED = Counter("cx_ingest_analysis_items_total", "Feedback items through the analysis worker", ["outcome"])
BREAKER = Gauge("cx_ingest_nlp_breaker_open", "1 while the NLP circuit breaker is open")

# NLP is down or overloaded (a connection failure is UNAVAILABLE too), or keeps not knowing a codebook it was just
# given (FAILED_PRECONDITION after registering it everywhere): never the items' fault.
OUTAGE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
}
# NLP failed while working on the request: an item in it or NLP itself (the canary tells which).
AMBIGUOUS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}
CANARY_TEXT = "ok"
REGISTRATION_FANOUT = 8  # concurrent registrations when one did not reach the replica that answers (replicas <= 8)
SENTIMENT = {
    nlp_pb2.SENTIMENT_NEGATIVE: "negative",
    nlp_pb2.SENTIMENT_NEUTRAL: "neutral",
    nlp_pb2.SENTIMENT_POSITIVE: "positive",
}
NEED = {
    nlp_pb2.NEED_LAYER_PAIN_POINT: "pain",
    nlp_pb2.NEED_LAYER_ITCH_POINT: "itch",
    nlp_pb2.NEED_LAYER_DELIGHT_POINT: "delight",
}

_GIVE_UP = text(
    "UPDATE feedback_items SET analysis_state = 'failed', claim_token = NULL, lease_until = NULL, "
    "last_error = coalesce(last_error, 'lease expired') || ' (gave up after ' || attempts || ' attempts)' "
    "WHERE analysis_state = 'processing' AND lease_until < now() AND attempts >= :max_attempts"
)
_CLAIM = text(
    """
    WITH picked AS (
        SELECT id FROM feedback_items
        WHERE (analysis_state = 'pending' AND next_attempt_at <= now())
           OR (analysis_state = 'processing' AND lease_until < now())
        ORDER BY next_attempt_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE feedback_items f
    SET analysis_state = 'processing', claim_token = :token, attempts = f.attempts + 1,
        lease_until = now() + make_interval(secs => :lease)
    FROM picked WHERE f.id = picked.id
    RETURNING f.id, f.tenant_id, f.partner_id, f.external_id, f.channel, f.touchpoint_id, f.journey_stage,
              f.org_unit_id, f.customer_key, f.product_sku, f.agent_id, f.language, f.occurred_at, f.title, f.text,
              f.turns, f.source_response_id, f.attempts
    """
)
_RELEASE = text(
    """
    UPDATE feedback_items
    SET analysis_state = CASE WHEN :transient OR attempts < :max_attempts THEN 'pending' ELSE 'failed' END,
        attempts = CASE WHEN :transient THEN greatest(attempts - 1, 0) ELSE attempts END,
        next_attempt_at = now() + make_interval(secs => :delay),
        claim_token = NULL, lease_until = NULL, last_error = :error
    WHERE id = ANY(CAST(:ids AS uuid[])) AND claim_token = :token AND analysis_state = 'processing'
    """
)
_RENEW = text(
    "UPDATE feedback_items SET lease_until = now() + make_interval(secs => :lease) "
    "WHERE id = ANY(CAST(:ids AS uuid[])) AND claim_token = :token AND analysis_state = 'processing'"
)
_STORE = text(
    """
    UPDATE feedback_items f
    SET analysis_state = 'done', analysis = d.analysis::jsonb, sentiment = d.sentiment,
        sentiment_score = d.score, unmatched = d.unmatched, analyzed_at = now(),
        embedding = CAST(NULLIF(d.embedding, '') AS real[]),
        analysis_count = f.analysis_count + 1, claim_token = NULL, lease_until = NULL, last_error = NULL
    FROM (
        SELECT unnest(CAST(:ids AS uuid[])) AS id, unnest(CAST(:analyses AS text[])) AS analysis,
               unnest(CAST(:sentiments AS text[])) AS sentiment, unnest(CAST(:scores AS float8[])) AS score,
               unnest(CAST(:unmatched AS bool[])) AS unmatched, unnest(CAST(:embeddings AS text[])) AS embedding
    ) d
    WHERE f.id = d.id AND f.claim_token = :token AND f.analysis_state = 'processing'
    RETURNING f.id, f.tenant_id, f.partner_id, f.external_id, f.channel, f.touchpoint_id, f.journey_stage,
              f.org_unit_id, f.customer_key, f.product_sku, f.agent_id, f.language, f.occurred_at, f.title, f.text,
              f.turns, f.source_response_id, f.attempts
    """
)


def analysis_text(row: dict[str, Any]) -> str:
    parts = [p for p in (row.get("title"), row.get("text")) if p]
    parts += [t["text"] for t in row.get("turns") or []]
    return "\n".join(parts)


def result_json(result: nlp_pb2.AnalysisResult, model_version: str, codebook: tuple[str, int] | None) -> dict[str, Any]:
    return {
        "language": result.language.language,
        "language_confidence": round(result.language.confidence, 4),
        "sentiment": SENTIMENT.get(result.sentiment.label, ""),
        "sentiment_score": round(result.sentiment.score, 4),
        "probabilities": {
            "negative": round(result.sentiment.probabilities.negative, 4),
            "neutral": round(result.sentiment.probabilities.neutral, 4),
            "positive": round(result.sentiment.probabilities.positive, 4),
        },
        "aspects": [
            {
                "path": list(a.path),
                "node_id": a.node_id,
                "opinion": a.opinion,
                "span": [a.span.start, a.span.end],
                "polarity": SENTIMENT.get(a.polarity, ""),
                "confidence": round(a.confidence, 4),
                "matched_by": a.matched_by,
            }
            for a in result.aspects
        ],
        "unmatched": result.unmatched,
        "intents": [{"intent": i.intent, "score": round(i.score, 4)} for i in result.intents],
        "keywords": [{"text": k.text, "weight": round(k.weight, 4)} for k in result.keywords],
        "need_layer": NEED.get(result.need_layer, ""),
        "need_confidence": round(result.need_confidence, 4),
        "truncated": result.truncated,
        "model_version": model_version,
        "codebook_id": codebook[0] if codebook else "",
        "codebook_version": codebook[1] if codebook else 0,
    }


def analyzed_event(row: dict[str, Any], analysis: dict[str, Any]) -> events_pb2.FeedbackAnalyzed:
    return events_pb2.FeedbackAnalyzed(
        context=feedback_context(row),
        text=row["text"],
        turns=[
            events_pb2.Turn(seq=t["seq"], speaker=t["speaker"], text=t["text"], offset_ms=t.get("offset_ms") or 0)
            for t in row.get("turns") or []
        ],
        sentiment=analysis["sentiment"],
        sentiment_score=analysis["sentiment_score"],
        aspects=[
            events_pb2.AspectSignal(
                path=a["path"],
                node_id=a["node_id"],
                opinion=a["opinion"],
                polarity=a["polarity"],
                confidence=a["confidence"],
            )
            for a in analysis["aspects"]
        ],
        intents=[events_pb2.IntentSignal(intent=i["intent"], score=i["score"]) for i in analysis["intents"]],
        keywords=[k["text"] for k in analysis["keywords"]],
        need_layer=analysis["need_layer"],
        unmatched=analysis["unmatched"],
        model_version=analysis["model_version"],
        codebook_id=analysis["codebook_id"],
        codebook_version=analysis["codebook_version"],
    )


@dataclass
class Claim:
    """One claimed micro-batch while it is being analysed."""

    token: uuid.UUID
    ids: list[uuid.UUID]
    calls: int = 0  # NLP calls made for it so far
    outage: str | None = None  # NLP is down (the reason): the rows not analysed yet go back untouched
    lost: bool = False  # none of its rows is ours any more


@dataclass
class Target:
    """What a tenant's items are analysed against: its active codebook version, if any."""

    tenant_id: uuid.UUID
    active: Any  # (Codebook, CodebookVersion) | None

    @property
    def codebook_ref(self) -> tuple[str, int] | None:
        return (str(self.active[0].id), self.active[1].version) if self.active is not None else None

    def request(self, rows: list[dict[str, Any]]) -> nlp_pb2.AnalyzeRequest:
        request = nlp_pb2.AnalyzeRequest(
            items=[
                nlp_pb2.TextInput(id=str(r["id"]), text=analysis_text(r), language_hint=r["language"] or "")
                for r in rows
            ]
        )
        if self.active is not None:
            cb, version = self.active
            request.codebook.CopyFrom(
                nlp_pb2.CodebookRef(tenant_id=str(self.tenant_id), codebook_id=str(cb.id), version=version.version)
            )
        return request


class AnalysisWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        stub: Any,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.stub = stub  # nlp_pb2_grpc.NlpServiceStub on a grpc.aio channel (the generated stubs type it as sync)
        self.wakeup = wakeup or asyncio.Event()
        self.breaker = CircuitBreaker(settings.breaker_failure_threshold, settings.breaker_cooldown_s)
        self._stopping = asyncio.Event()
        # Single-flight codebook registration: lanes that all hit FAILED_PRECONDITION for the same version wait
        # for one RegisterCodebook instead of each sending the (large) codebook.
        self._register_locks: dict[tuple[str, str, int], asyncio.Lock] = {}
        self._registrations: dict[tuple[str, str, int], int] = {}

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.set()

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout=seconds)
        self.wakeup.clear()

    async def run(self) -> None:
        """`analysis_concurrency` lanes, each claiming and analysing micro-batches: while one lane stores its
        results or claims the next batch, another one's texts are in NLP, so NLP is never left idle by us (and its
        adaptive batching sees concurrent calls). Claims use SKIP LOCKED: lanes never share an item."""
        lanes = max(1, self.settings.analysis_concurrency)
        log.info("analysis_worker_started", batch=self.settings.analysis_batch_size, lanes=lanes)
        await asyncio.gather(*(self._lane() for _ in range(lanes)))

    async def _lane(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.breaker.allow():
                    BREAKER.set(1)
                    await asyncio.sleep(min(self.breaker.remaining(), 1.0))
                    continue
                BREAKER.set(0)
                try:
                    done = await self.run_once()
                finally:
                    self.breaker.done()
                if done < self.settings.analysis_batch_size:
                    await self._idle(self.settings.analysis_poll_interval_s)
                    if not self._stopping.is_set() and self.settings.analysis_linger_s > 0:
                        await asyncio.sleep(self.settings.analysis_linger_s)  # let a micro-batch fill up
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("analysis_worker_error", error=str(exc))
                await asyncio.sleep(1.0)

    async def claim(self) -> tuple[uuid.UUID, list[dict[str, Any]]]:
        token = uuid.uuid4()
        async with self.sessions() as session, session.begin():
            await session.execute(_GIVE_UP, {"max_attempts": self.settings.analysis_max_attempts})
            result = await session.execute(
                _CLAIM,
                {"limit": self.settings.analysis_batch_size, "token": token, "lease": self.settings.analysis_lease_s},
            )
            rows = [dict(r._mapping) for r in result]
        return token, rows

    async def run_once(self) -> int:
        """Claim one micro-batch and analyse it; returns the number of items claimed."""
        token, rows = await self.claim()
        if not rows:
            return 0
        claim = Claim(token, [r["id"] for r in rows])
        by_tenant: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_tenant[row["tenant_id"]].append(row)
        for tenant_id, group in by_tenant.items():
            await self._analyse(claim, tenant_id, group)
        return len(rows)

    async def _analyse(self, claim: Claim, tenant_id: uuid.UUID, rows: list[dict[str, Any]]) -> None:
        if claim.outage is not None:
            await self._release(claim.token, rows, transient=True, error=claim.outage)
            return
        async with self.sessions() as session:
            active = await codebooks.active_version(session, tenant_id)
        target = Target(tenant_id, active)
        error = await self._attempt(claim, target, rows)
        if error is not None:
            await self._settle(claim, target, rows, error, vouched=False)

    async def _attempt(self, claim: Claim, target: Target, rows: list[dict[str, Any]]) -> grpc.aio.AioRpcError | None:
        """One Analyze call for `rows`, stored when it succeeds; the call's error otherwise. None as well when the
        claim was lost meanwhile (another worker or a re-coding backfill has the items now)."""
        if not await self._keep(claim):
            return None
        request = target.request(rows)
        # Embed runs next to Analyze (both are NLP work on the same texts; an Embed failure is not fatal).
        embedding = asyncio.ensure_future(self._embed(request)) if self.settings.analysis_embeddings else None
        try:
            response = await self._call_analyze(request, target.active, target.tenant_id)
        except BaseException as exc:
            if embedding is not None:
                embedding.cancel()
            if isinstance(exc, grpc.aio.AioRpcError):
                return exc
            raise
        self.breaker.success()
        embeddings = await embedding if embedding is not None else {}
        await self._store(claim.token, rows, response, target.codebook_ref, embeddings)
        return None

    async def _settle(
        self,
        claim: Claim,
        target: Target,
        rows: list[dict[str, Any]],
        error: grpc.aio.AioRpcError,
        *,
        vouched: bool,
    ) -> None:
        """`rows` failed together with `error`: an outage gives them back; otherwise the items that cause it are
        isolated (bisecting) and charged an attempt. `vouched`: NLP is known to work (its answer proved it)."""
        code, reason = error.code(), f"{error.code().name}: {error.details()}"
        if claim.outage is not None:
            await self._release(claim.token, rows, transient=True, error=claim.outage)
            return
        outage = code in OUTAGE
        if code in AMBIGUOUS and not vouched:
            outage = not await self._nlp_works(claim, target)
        elif code not in AMBIGUOUS and not outage:
            self.breaker.success()  # NLP answered: it refused these items
        if claim.lost:
            return
        if outage:
            await self._outage(claim, rows, reason)
        elif len(rows) > 1:
            await self._bisect(claim, target, rows)
        else:
            await self._release(claim.token, rows, transient=False, error=reason)
            log.warning("nlp_item_failed", code=code.name, item=str(rows[0]["id"]), attempts=rows[0]["attempts"])

    async def _bisect(self, claim: Claim, target: Target, rows: list[dict[str, Any]]) -> None:
        """Both halves are tried before either is bisected further: one poison item cannot fail its batch-mates."""
        middle = len(rows) // 2
        failed: list[tuple[list[dict[str, Any]], grpc.aio.AioRpcError]] = []
        for half in (rows[:middle], rows[middle:]):
            if claim.outage is not None:
                await self._release(claim.token, half, transient=True, error=claim.outage)
                continue
            error = await self._attempt(claim, target, half)
            if error is not None and error.code() in OUTAGE:
                await self._settle(claim, target, half, error, vouched=False)
            elif error is not None:
                failed.append((half, error))
        # Unless both halves failed, NLP has just analysed one of them: the failures are down to the items.
        for half, error in failed:
            await self._settle(claim, target, half, error, vouched=len(failed) < 2)

    async def _nlp_works(self, claim: Claim, target: Target) -> bool:
        """Whether NLP analyses a known-good text (for this tenant's codebook) right now."""
        if not await self._keep(claim):
            return False
        canary = target.request([])
        canary.items.append(nlp_pb2.TextInput(id="canary", text=CANARY_TEXT))
        try:
            await self._call_analyze(canary, target.active, target.tenant_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in OUTAGE or exc.code() in AMBIGUOUS:
                log.warning("nlp_canary_failed", code=exc.code().name)
                return False
        self.breaker.success()
        return True

    async def _outage(self, claim: Claim, rows: list[dict[str, Any]], reason: str) -> None:
        """NLP is down: these rows and the claim's others go back without using up an attempt."""
        self.breaker.failure()
        claim.outage = reason
        await self._release(claim.token, rows, transient=True, error=reason)
        log.warning("nlp_analyze_failed", error=reason[:200], items=len(rows), breaker=self.breaker.state)

    async def _keep(self, claim: Claim) -> bool:
        """Before each NLP call but the claim's first: renew the lease of its rows not settled yet (False when none
        is ours any more)."""
        claim.calls += 1
        if claim.calls == 1 or claim.lost:
            return not claim.lost
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                _RENEW, {"ids": claim.ids, "token": claim.token, "lease": self.settings.analysis_lease_s}
            )
        claim.lost = cast(CursorResult[Any], result).rowcount == 0
        return not claim.lost

    async def _embed(self, request: nlp_pb2.AnalyzeRequest) -> dict[str, str]:
        """Embeddings as Postgres array literals by item id; an Embed failure leaves them empty (not fatal)."""
        try:
            response = await self.stub.Embed(
                nlp_pb2.EmbedRequest(items=request.items), timeout=self.settings.nlp_timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("nlp_embed_failed", code=exc.code().name, items=len(request.items))
            return {}
        return {e.id: "{" + ",".join(f"{v:.6g}" for v in e.values) + "}" for e in response.embeddings if e.values}

    async def _call_analyze(
        self, request: nlp_pb2.AnalyzeRequest, active: Any, tenant_id: uuid.UUID
    ) -> nlp_pb2.AnalyzeResponse:
        timeout = self.settings.nlp_timeout_s
        key = (str(tenant_id), str(active[0].id), active[1].version) if active is not None else None
        seen = self._registrations.get(key, 0) if key is not None else 0
        try:
            response: nlp_pb2.AnalyzeResponse = await self.stub.Analyze(request, timeout=timeout)
            return response
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION or key is None:  # key is None: no codebook
                raise
        # The NLP service does not know this codebook version (new version, or NLP restarted): register, retry.
        async with self._register_locks.setdefault(key, asyncio.Lock()):
            if self._registrations.get(key, 0) == seen:  # nobody registered it since our call went out
                await self._register(active, tenant_id)
                self._registrations[key] = seen + 1
        try:
            retried: nlp_pb2.AnalyzeResponse = await self.stub.Analyze(request, timeout=timeout)
            return retried
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
        # Several NLP replicas behind round-robin (the headless Service of deploy/k8s): the registration reached
        # one, the retry another. Concurrent registrations are spread over every replica; then the last try.
        await asyncio.gather(*(self._register(active, tenant_id) for _ in range(REGISTRATION_FANOUT)))
        last: nlp_pb2.AnalyzeResponse = await self.stub.Analyze(request, timeout=timeout)
        return last

    async def _register(self, active: Any, tenant_id: uuid.UUID) -> None:
        cb, version = active
        await self.stub.RegisterCodebook(
            nlp_pb2.RegisterCodebookRequest(
                tenant_id=str(tenant_id),
                codebook_id=str(cb.id),
                version=version.version,
                primary_language=cb.primary_language,
                nodes=[
                    nlp_pb2.CodebookNode(
                        id=n["id"],
                        parent_id=n.get("parent_id") or "",
                        level=n["level"],
                        names=n["names"],
                        keywords=n["keywords"],
                        examples=n["examples"],
                    )
                    for n in version.nodes
                ],
            ),
            timeout=self.settings.nlp_timeout_s,
        )
        log.info("codebook_registered", tenant=str(tenant_id), codebook=str(cb.id), version=version.version)

    def _backoff(self, attempts: int) -> float:
        base = self.settings.analysis_backoff_base_s
        return float(min(self.settings.analysis_backoff_max_s, base * (2 ** max(0, attempts - 1))))

    async def _release(self, token: uuid.UUID, rows: list[dict[str, Any]], *, transient: bool, error: str) -> None:
        attempts = max(r["attempts"] for r in rows)
        delay = self._backoff(self.breaker.failures if transient else attempts)
        async with self.sessions() as session, session.begin():
            await session.execute(
                _RELEASE,
                {
                    "ids": [r["id"] for r in rows],
                    "token": token,
                    "transient": transient,
                    "max_attempts": self.settings.analysis_max_attempts,
                    "delay": delay,
                    "error": error[:2000],
                },
            )
        ANALYZED.labels("transient_failure" if transient else "failure").inc(len(rows))

    async def _store(
        self,
        token: uuid.UUID,
        rows: list[dict[str, Any]],
        response: nlp_pb2.AnalyzeResponse,
        codebook_ref: tuple[str, int] | None,
        embeddings: dict[str, str],
    ) -> None:
        results = {r.id: r for r in response.results}
        analyses: dict[uuid.UUID, dict[str, Any]] = {}
        missing = []
        for row in rows:
            result = results.get(str(row["id"]))
            if result is None:
                missing.append(row)
                continue
            analyses[row["id"]] = result_json(result, response.model_version, codebook_ref)
        async with self.sessions() as session, session.begin():
            stored = await session.execute(
                _STORE,
                {
                    "token": token,
                    "ids": list(analyses),
                    "analyses": [json.dumps(a, ensure_ascii=False) for a in analyses.values()],
                    "sentiments": [a["sentiment"] for a in analyses.values()],
                    "scores": [a["sentiment_score"] for a in analyses.values()],
                    "unmatched": [a["unmatched"] for a in analyses.values()],
                    "embeddings": [embeddings.get(str(i), "") for i in analyses],
                },
            )
            written = [dict(r._mapping) for r in stored]
            events = [
                (row["tenant_id"], "feedback.analyzed", analyzed_event(row, analyses[row["id"]])) for row in written
            ]
            await add_events(
                SessionDb(session), events, source=SOURCE, subject_prefix=self.settings.events_subject_prefix
            )
        ANALYZED.labels("analyzed").inc(len(written))
        if len(written) < len(analyses):
            ANALYZED.labels("lost_claim").inc(len(analyses) - len(written))
        if missing:
            await self._release(token, missing, transient=False, error="NLP returned no result for the item")
