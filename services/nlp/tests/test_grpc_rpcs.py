"""Every RPC of cx.nlp.v1 through the real gRPC adapter and the real BentoML service (tiny model)."""

from __future__ import annotations

import math

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cx.nlp.v1 import nlp_pb2 as pb
from cx_nlp.codebooks import fingerprint, node_to_dict


def items(*texts: str) -> list[pb.TextInput]:
    return [pb.TextInput(id=f"t{i}", text=t) for i, t in enumerate(texts)]


def codebook_nodes(extra_keyword: str = "") -> list[pb.CodebookNode]:
    queue_keywords = ["排队", "queue", "wait"] + ([extra_keyword] if extra_keyword else [])
    return [
        pb.CodebookNode(id="svc", level=1, names={"zh-Hans": "服务", "en": "Service"}),
        pb.CodebookNode(id="svc.wait", parent_id="svc", level=2, names={"zh-Hans": "等待", "en": "Waiting"}),
        pb.CodebookNode(
            id="svc.wait.queue",
            parent_id="svc.wait",
            level=3,
            names={"zh-Hans": "排队时间", "en": "Queue time"},
            keywords=queue_keywords,
            examples=["排队太久了", "the queue was endless"],
        ),
        pb.CodebookNode(id="prod", level=1, names={"zh-Hans": "产品", "en": "Product"}),
        pb.CodebookNode(id="prod.price", parent_id="prod", level=2, names={"zh-Hans": "价格", "en": "Price"}),
        pb.CodebookNode(
            id="prod.price.value",
            parent_id="prod.price",
            level=3,
            names={"zh-Hans": "性价比", "en": "Value for money"},
            keywords=["价格", "贵", "price", "expensive"],
        ),
    ]


async def test_health_is_serving(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "cx.nlp.v1.NlpService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_service(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for reply in stub.ServerReflectionInfo(requests()):
        names |= {s.name for s in reply.list_services_response.service}
    assert {"cx.nlp.v1.NlpService", "grpc.health.v1.Health"} <= names


async def test_analyze_default_tasks_keeps_order_and_ids(stub):
    texts = ["排队等了四十分钟，服务员态度还很差。", "Great service, thanks a lot!", "價格合理，下次還會再來。"]
    reply = await stub.Analyze(pb.AnalyzeRequest(items=items(*texts)), timeout=30)
    assert [r.id for r in reply.results] == ["t0", "t1", "t2"]
    assert [r.index for r in reply.results] == [0, 1, 2]
    assert reply.model_version
    first, second, third = reply.results
    assert first.language.language == "zh-Hans"
    assert second.language.language == "en"
    assert third.language.language in ("zh-Hant", "zh-Hans")
    for result in reply.results:
        p = result.sentiment.probabilities
        assert math.isclose(p.negative + p.neutral + p.positive, 1.0, abs_tol=1e-3)
        assert result.sentiment.label != pb.SENTIMENT_UNSPECIFIED
        assert result.intents, "default tasks include intents"
        assert not result.truncated
        assert not result.aspects  # no codebook given
    assert first.sentiment.label == pb.SENTIMENT_NEGATIVE
    assert second.sentiment.label == pb.SENTIMENT_POSITIVE
    assert first.keywords and first.need_layer == pb.NEED_LAYER_PAIN_POINT
    scores = [i.score for i in first.intents]
    assert scores == sorted(scores, reverse=True)


async def test_analyze_only_the_requested_task(stub):
    reply = await stub.Analyze(
        pb.AnalyzeRequest(items=items("The app keeps crashing"), tasks=[pb.TASK_SENTIMENT]), timeout=30
    )
    (result,) = reply.results
    assert result.HasField("sentiment")
    assert not result.HasField("language")
    assert not result.intents and not result.keywords


async def test_max_keywords_is_honoured(stub):
    text = "delivery late, courier rude, package damaged, refund slow, support useless, app crashes daily"
    reply = await stub.Analyze(
        pb.AnalyzeRequest(items=items(text), tasks=[pb.TASK_KEYWORDS], max_keywords=2), timeout=30
    )
    assert 0 < len(reply.results[0].keywords) <= 2


async def test_register_codebook_then_aspects(stub):
    reply = await stub.RegisterCodebook(
        pb.RegisterCodebookRequest(
            tenant_id="tenant-a", codebook_id="cb-1", version=3, nodes=codebook_nodes(), primary_language="zh-Hans"
        ),
        timeout=30,
    )
    assert reply.codebook_id == "cb-1" and reply.version == 3 and reply.node_count == 6
    assert reply.fingerprint == fingerprint([node_to_dict(n) for n in codebook_nodes()], "zh-Hans")

    ref = pb.CodebookRef(tenant_id="tenant-a", codebook_id="cb-1", version=3)
    texts = ["排队等了一个小时，太慢了", "The queue was endless and nobody helped", "今天天气不错"]
    analyzed = await stub.Analyze(
        pb.AnalyzeRequest(items=items(*texts), tasks=[pb.TASK_ASPECTS], codebook=ref), timeout=30
    )
    zh, en, other = analyzed.results
    for text, hit_result in zip(texts, (zh, en), strict=False):
        assert hit_result.aspects, hit_result
        hit = hit_result.aspects[0]
        assert list(hit.path) == ["服务", "等待", "排队时间"]
        assert hit.node_id == "svc.wait.queue"
        assert 0 <= hit.span.start < hit.span.end <= len(text)
        assert not hit_result.unmatched
    assert not other.aspects and other.unmatched
    assert not zh.HasField("sentiment")  # only the asked task

    # no tasks + a codebook = every default task plus aspects
    everything = await stub.Analyze(pb.AnalyzeRequest(items=items(texts[0]), codebook=ref), timeout=30)
    assert everything.results[0].aspects and everything.results[0].HasField("sentiment")


async def test_register_is_idempotent_and_content_addressed(stub):
    def request(version: int, extra: str = "") -> pb.RegisterCodebookRequest:
        return pb.RegisterCodebookRequest(
            tenant_id="tenant-b", codebook_id="cb", version=version, nodes=codebook_nodes(extra)
        )

    first = await stub.RegisterCodebook(request(1), timeout=30)
    again = await stub.RegisterCodebook(request(1), timeout=30)
    changed = await stub.RegisterCodebook(request(2, "慢"), timeout=30)
    assert first.fingerprint == again.fingerprint
    assert changed.fingerprint != first.fingerprint


async def test_unknown_codebook_version_is_failed_precondition(stub):
    await stub.RegisterCodebook(
        pb.RegisterCodebookRequest(tenant_id="tenant-c", codebook_id="cb", version=1, nodes=codebook_nodes()),
        timeout=30,
    )
    for ref in (
        pb.CodebookRef(tenant_id="tenant-c", codebook_id="cb", version=2),  # newer version not registered
        pb.CodebookRef(tenant_id="tenant-x", codebook_id="cb", version=1),  # another tenant's
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Analyze(pb.AnalyzeRequest(items=items("排队太久"), codebook=ref), timeout=30)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "RegisterCodebook" in err.value.details()


async def test_worker_without_the_codebook_gets_the_nodes(stub, grpc_app, http_url):
    """With several BentoML workers a registered codebook is compiled only where it was registered: the adapter
    re-sends items with the nodes to a worker that answers codebook_unknown. Simulated here by registering in the
    adapter's registry only (no worker has compiled this content)."""
    import httpx

    from cx_nlp.grpc_server import RegisteredCodebook

    nodes = [node_to_dict(n) for n in codebook_nodes("lineup")]
    fp = fingerprint(nodes, "en")
    async with httpx.AsyncClient(base_url=http_url) as client:
        raw = await client.post(
            "/analyze", json={"items": [{"text": "long lineup", "tasks": ["aspects"], "codebook": fp}]}
        )
        assert raw.json() == [{"error": "codebook_unknown"}]
    grpc_app.adapter.registry.put(("tenant-d", "cb", 1), RegisteredCodebook(fp, nodes, "en"))
    ref = pb.CodebookRef(tenant_id="tenant-d", codebook_id="cb", version=1)
    reply = await stub.Analyze(
        pb.AnalyzeRequest(items=items("The lineup was long", "fine"), tasks=[pb.TASK_ASPECTS], codebook=ref),
        timeout=30,
    )
    assert list(reply.results[0].aspects[0].path) == ["Service", "Waiting", "Queue time"]
    assert reply.results[1].unmatched


async def test_embed_is_normalised_and_deterministic(stub):
    reply = await stub.Embed(pb.EmbedRequest(items=items("退款太慢了", "refund is slow", "退款太慢了")), timeout=30)
    assert [e.id for e in reply.embeddings] == ["t0", "t1", "t2"]
    assert reply.dimension > 0 and reply.model_version
    for e in reply.embeddings:
        assert len(e.values) == reply.dimension
        assert math.isclose(math.sqrt(sum(v * v for v in e.values)), 1.0, abs_tol=1e-3)
    assert list(reply.embeddings[0].values) == list(reply.embeddings[2].values)
    assert list(reply.embeddings[0].values) != list(reply.embeddings[1].values)


async def test_cluster_ranks_by_size_and_accounts_for_every_item(stub):
    texts = [f"排队时间太长了，等了{n}分钟" for n in range(10, 17)] + [
        f"the refund for order {n} never arrived" for n in range(100, 104)
    ]
    request = pb.ClusterRequest(items=items(*texts), min_cluster_size=2, representatives_per_cluster=2)
    reply = await stub.Cluster(request, timeout=60)
    assert reply.clusters
    sizes = [c.size for c in reply.clusters]
    assert sizes == sorted(sizes, reverse=True)
    assert [c.cluster_id for c in reply.clusters] == list(range(len(reply.clusters)))
    seen = [m for c in reply.clusters for m in c.member_ids] + list(reply.noise_ids)
    assert sorted(seen) == sorted(f"t{i}" for i in range(len(texts)))
    for c in reply.clusters:
        assert c.size == len(c.member_ids) >= 2
        assert 1 <= len(c.representative_ids) <= 2
        assert set(c.representative_ids) <= set(c.member_ids)
        assert c.representative_texts == [texts[int(i[1:])] for i in c.representative_ids]
        assert c.keywords


async def test_get_model_info(stub):
    info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    assert info.name == "cx-tiny" and info.version
    assert {"sentiment", "aspects", "intents", "language", "keywords", "needs"} <= set(info.tasks)
    assert {"zh-Hans", "en"} <= set(info.languages)
    assert info.device == "cpu" and info.dtype == "float32"  # the tiny model computes in NumPy float32
    assert info.embedding_dimension > 0
    assert info.max_batch_size == 32 and info.max_text_length == 300 and info.max_items_per_request == 32
