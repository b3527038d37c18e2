import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from cx_ingest.main import create_app
from cx_ingest.settings import SCHEMA, Settings
from cx_local.pytest_plugin import ServiceDatabase, TokenMinter, app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class Ingest:
    client: httpx.AsyncClient
    db: ServiceDatabase
    settings: Settings
    tokens: TokenMinter
    app: Any

    def auth(self, tenant: uuid.UUID, scopes: tuple[str, ...] = ("*",)) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.mint(tenant, scopes=scopes)}"}

    async def partner(self, tenant: uuid.UUID, **fields: Any) -> tuple[str, str]:
        """Register a partner and issue a key: (partner id, API key)."""
        body = {"title": "CRM", **fields}
        created = await self.client.post("/v1/partners", json=body, headers=self.auth(tenant))
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        key = await self.client.post(f"/v1/partners/{pid}/keys", json={"name": "k"}, headers=self.auth(tenant))
        assert key.status_code == 201, key.text
        return pid, key.json()["key"]

    @staticmethod
    def key(key: str) -> dict[str, str]:
        return {"X-Api-Key": key}

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.db.admin_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f"SET search_path = {SCHEMA}")
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()


def make_settings(db: ServiceDatabase, nats_url: str, events: Any, **overrides: Any) -> Settings:
    return Settings(
        environment="test",
        database_url=db.url,
        nats_url=nats_url,
        events_stream=events.stream,
        events_subject_prefix=events.subject_prefix,
        log_json=False,
        **overrides,
    )


@pytest.fixture
def ingest_overrides() -> dict[str, Any]:
    """Override in a test module to change settings (e.g. the NLP target)."""
    return {"analysis_enabled": False}


@pytest.fixture
async def ingest(
    cx_service_db, cx_nats_url, cx_events, cx_tokens: TokenMinter, ingest_overrides
) -> AsyncIterator[Ingest]:
    db = await cx_service_db(SERVICE_DIR, SCHEMA)
    settings = make_settings(db, cx_nats_url, cx_events, **ingest_overrides)
    app = create_app(settings)
    async with app_client(app, cx_tokens) as c:
        yield Ingest(client=c, db=db, settings=settings, tokens=cx_tokens, app=app)


@pytest.fixture
def client(ingest: Ingest) -> httpx.AsyncClient:
    return ingest.client


# -- a real grpc.aio NLP server on an ephemeral port, with a small deterministic servicer ----------------------
# (the real model lives in services/nlp and is tested there; here we need a predictable peer over real gRPC)

import asyncio  # noqa: E402

import grpc  # noqa: E402

from cx.nlp.v1 import nlp_pb2, nlp_pb2_grpc  # noqa: E402

NEGATIVE = ("差", "慢", "糟", "投诉", "bad", "slow", "terrible", "broken")
POSITIVE = ("好", "快", "棒", "满意", "great", "good", "love")


class TestNlp(nlp_pb2_grpc.NlpServiceServicer):
    def __init__(self) -> None:
        self.codebooks: dict[tuple[str, str, int], nlp_pb2.RegisterCodebookRequest] = {}
        self.analyze_calls: list[list[str]] = []
        self.register_calls = 0
        self.gate: asyncio.Event | None = None  # when set: Analyze waits for it
        self.entered = asyncio.Event()

    async def Analyze(self, request, context):
        ref = request.codebook
        codebook = None
        if ref.codebook_id:
            codebook = self.codebooks.get((ref.tenant_id, ref.codebook_id, ref.version))
            if codebook is None:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "unknown codebook version")
        if any("☠" in i.text for i in request.items):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot analyse this text")
        self.analyze_calls.append([i.id for i in request.items])
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        results = []
        for index, item in enumerate(request.items):
            results.append(self._analyse(index, item, codebook))
        return nlp_pb2.AnalyzeResponse(results=results, model_version="test-nlp-1")

    def _analyse(self, index, item, codebook) -> nlp_pb2.AnalysisResult:
        text = item.text
        lowered = text.lower()
        neg = sum(w in lowered for w in NEGATIVE)
        pos = sum(w in lowered for w in POSITIVE)
        label = (
            nlp_pb2.SENTIMENT_NEGATIVE
            if neg > pos
            else nlp_pb2.SENTIMENT_POSITIVE
            if pos > neg
            else nlp_pb2.SENTIMENT_NEUTRAL
        )
        result = nlp_pb2.AnalysisResult(
            id=item.id,
            index=index,
            language=nlp_pb2.LanguageResult(language="en" if text.isascii() else "zh-Hans", confidence=0.99),
            sentiment=nlp_pb2.SentimentResult(label=label, score=0.9),
            need_layer=nlp_pb2.NEED_LAYER_PAIN_POINT if label == nlp_pb2.SENTIMENT_NEGATIVE else 0,
        )
        if "投诉" in text or "complain" in lowered:
            result.intents.add(intent="complaint", score=0.95)
        if codebook is not None:
            nodes = {n.id: n for n in codebook.nodes}
            lang = codebook.primary_language or "zh-Hans"
            for node in codebook.nodes:
                for keyword in node.keywords:
                    at = lowered.find(keyword.lower())
                    if at < 0:
                        continue
                    path, cur = [], node
                    while cur is not None:
                        path.insert(0, cur.names[lang])
                        cur = nodes.get(cur.parent_id)
                    result.aspects.add(
                        path=path,
                        node_id=node.id,
                        opinion=keyword,
                        span=nlp_pb2.Span(start=at, end=at + len(keyword)),
                        polarity=label,
                        confidence=0.8,
                        matched_by="keyword",
                    )
                    result.keywords.add(text=keyword, weight=1.0)
                    break
            result.unmatched = len(result.aspects) == 0
        return result

    async def Embed(self, request, context):
        embeddings = []
        for item in request.items:
            raw = [float(sum(ord(c) for c in item.text[i::4]) % 97 + 1) for i in range(4)]
            norm = sum(v * v for v in raw) ** 0.5
            embeddings.append(nlp_pb2.Embedding(id=item.id, values=[v / norm for v in raw]))
        return nlp_pb2.EmbedResponse(embeddings=embeddings, dimension=4, model_version="test-embed-1")

    async def RegisterCodebook(self, request, context):
        self.register_calls += 1
        self.codebooks[(request.tenant_id, request.codebook_id, request.version)] = request
        return nlp_pb2.RegisterCodebookResponse(
            codebook_id=request.codebook_id, version=request.version, node_count=len(request.nodes)
        )

    async def Cluster(self, request, context):
        # Deterministic: texts sharing their first two characters form a cluster; singletons are noise.
        groups: dict[str, list] = {}
        for item in request.items:
            groups.setdefault(item.text[:2], []).append(item)
        min_size = request.min_cluster_size or 2
        ranked = sorted((g for g in groups.values() if len(g) >= min_size), key=lambda g: (-len(g), g[0].id))
        response = nlp_pb2.ClusterResponse()
        for rank, members in enumerate(ranked):
            reps = members[: request.representatives_per_cluster or 3]
            response.clusters.add(
                cluster_id=rank,
                size=len(members),
                keywords=[nlp_pb2.Keyword(text=members[0].text[:2], weight=1.0)],
                member_ids=[m.id for m in members],
                representative_ids=[m.id for m in reps],
                representative_texts=[m.text for m in reps],
            )
        for members in groups.values():
            if len(members) < min_size:
                response.noise_ids.extend(m.id for m in members)
        return response


class NlpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.servicer = TestNlp()
        self.server: grpc.aio.Server | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = grpc.aio.server()
        nlp_pb2_grpc.add_NlpServiceServicer_to_server(self.servicer, self.server)
        bound = self.server.add_insecure_port(self.target)
        assert bound == self.port
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None


@pytest.fixture
async def nlp_server() -> AsyncIterator[NlpServer]:
    from cx_local.ports import free_port

    server = NlpServer(free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def nlp_down() -> AsyncIterator[NlpServer]:
    """An NLP server that is not running yet (`await nlp_down.start()` brings it up on the same port)."""
    from cx_local.ports import free_port

    server = NlpServer(free_port())
    yield server
    await server.stop()
