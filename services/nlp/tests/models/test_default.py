"""Tests on the real default model (built once per session)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cx_nlp.evaluation import sample_codebook
from cx_nlp.models.api import Pipeline, load_pipeline
from cx_nlp.models.build import model_is_built
from cx_nlp.models.onednn import packing_available

pytestmark = pytest.mark.slow
CX_NLP = str(Path(sys.executable).with_name("cx-nlp"))

LABELS = ("negative", "neutral", "positive")


def _label(p: Pipeline, text: str) -> str:
    (pred,) = p.analyze([text], frozenset({"sentiment"}))
    assert pred.sentiment is not None
    return LABELS[int(np.argmax(pred.sentiment))]


def test_build_is_complete(default_model_dir: Path) -> None:
    assert model_is_built(default_model_dir)
    manifest = json.loads((default_model_dir / "manifest.json").read_text())
    assert manifest["name"] == "cx-default"


def test_language(default: Pipeline) -> None:
    preds = default.analyze(
        ["这个产品质量很好，物流也快", "這個產品品質很好，物流也快", "The product quality is great"],
        frozenset({"language"}),
    )
    assert [p.language for p in preds] == ["zh-Hans", "zh-Hant", "en"]


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("质量太差了，用了两天就坏，非常失望", "negative"),
        ("非常满意，做工精致，物流也很快，好评！", "positive"),
        ("品質太差了，用了兩天就壞，非常失望", "negative"),
        ("非常滿意，做工精緻，物流也很快，好評！", "positive"),
        ("This is the worst service I have ever had, totally useless.", "negative"),
        ("Absolutely love it, excellent quality and fast delivery!", "positive"),
        ("How do I change the delivery address on my order?", "neutral"),
        ("请问你们周六几点开门？", "neutral"),
    ],
)
def test_sentiment_obvious(default: Pipeline, text: str, label: str) -> None:
    assert _label(default, text) == label


def test_aspects(default: Pipeline) -> None:
    nodes, primary = sample_codebook()
    cb = default.compile_codebook(nodes, primary)
    text = "手机很好用，但是快递迟迟不到，包装也压坏了"
    (p,) = default.analyze([text, "今天天气不错"], frozenset({"aspects"}), cb)[:1]
    found = {a.node_id: a for a in p.aspects}
    assert {"prod.delivery.late", "prod.delivery.damage"} <= set(found)
    late = found["prod.delivery.late"]
    assert late.path == ["产品", "物流", "配送延迟"]
    assert text[late.start : late.end] == late.opinion and "快递" in late.opinion
    assert late.polarity == "negative"
    (q,) = default.analyze(["今天天气不错"], frozenset({"aspects"}), cb)
    assert q.unmatched
    (e,) = default.analyze(["We waited in line for forty minutes"], frozenset({"aspects"}), cb)
    assert [a.path for a in e.aspects] == [["服务", "门店服务", "排队时间"]]


def test_intents(default: Pipeline) -> None:
    preds = default.analyze(
        [
            "客服不处理，我要打12315投诉你们",
            "I'm cancelling my subscription, never buying from you again",
            "I will report you to the FTC",
        ],
        frozenset({"intents"}),
    )
    assert preds[0].intents["complaint"] > 0.5 and preds[0].intents["regulator_threat"] > 0.5
    assert preds[1].intents["churn_risk"] > 0.5
    assert preds[2].intents["regulator_threat"] > 0.5


def test_embeddings_and_clusters(default: Pipeline) -> None:
    texts = [
        "快递太慢了，一个星期才到",
        "物流太慢，等了好多天",
        "发货速度太慢了",
        "The app keeps crashing when I log in",
        "App crashes every time I open it",
        "the mobile app crashed again after the update",
    ]
    emb = default.embed(texts)
    assert emb.shape == (6, default.embedding_dim) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    clusters, _noise = default.cluster(texts, emb, min_cluster_size=2)
    groups = sorted(sorted(c.members) for c in clusters)
    assert [0, 1, 2] in groups or any({0, 1} <= set(g) and not set(g) & {3, 4, 5} for g in groups)
    assert any({3, 4, 5} <= set(g) and not set(g) & {0, 1, 2} for g in groups)


def test_int8_keeps_predictions_and_embeddings(default_model_dir: Path) -> None:
    """int8 against float32 on hand-written rows in all three languages: same sentiment labels, sentence vectors
    within cosine 0.99 (plain dynamic quantisation went down to 0.82)."""
    from cx_nlp.evaluation import data_path, read_jsonl

    exact = load_pipeline(default_model_dir, dtype="float32")
    q = load_pipeline(default_model_dir, dtype="int8")
    assert q.dtype == "int8"
    texts = [r["text"] for r in read_jsonl(data_path("cx_aspects_test.jsonl"))]
    texts += ["Absolutely love it, excellent quality!", "Terrible support, nobody answered."]
    a = np.array([p.sentiment for p in exact.analyze(texts, frozenset({"sentiment"}))])
    b = np.array([p.sentiment for p in q.analyze(texts, frozenset({"sentiment"}))])
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.97
    assert (a.argmax(1)[-2:] == b.argmax(1)[-2:]).all()
    cosine = np.sum(exact.embed(texts) * q.embed(texts), axis=1)  # unit vectors
    assert cosine.min() >= 0.99


def test_the_vector_cache_setting_reaches_the_transformer_encoder(default_model_dir: Path) -> None:
    from cx_nlp.runtime import load_configured_pipeline
    from cx_nlp.settings import NlpSettings

    def encoder_cache(size: int) -> object:
        settings = NlpSettings(model="default", model_dir=default_model_dir, encoder_cache=size)
        pipeline, _ = load_configured_pipeline(settings)
        return pipeline.encoder.en.cache  # type: ignore[attr-defined]

    cache = encoder_cache(7)
    assert cache is not None and cache.size == 7  # type: ignore[attr-defined]
    assert encoder_cache(0) is None
    assert NlpSettings().encoder_cache == 4096


def test_the_token_budget_setting_reaches_the_transformer_encoder(default_model_dir: Path) -> None:
    from cx_nlp.models.hf import CPU_BATCH_TOKENS
    from cx_nlp.runtime import load_configured_pipeline
    from cx_nlp.settings import NlpSettings

    def budget(**setting: int) -> object:
        settings = NlpSettings(model="default", model_dir=default_model_dir, dtype="float32", **setting)
        return load_configured_pipeline(settings)[0].encoder.en.max_batch_tokens  # type: ignore[attr-defined]

    assert budget() == CPU_BATCH_TOKENS
    assert budget(batch_tokens=0) == 0 and budget(batch_tokens=4096) == 4096


def test_embed_after_analyze_reuses_the_vectors(default_model_dir: Path) -> None:
    """Ingest's pattern: the English encoder runs once for the sentence, whether Analyze or Embed asks first."""
    from cx_nlp.wire import DEFAULT_TASKS

    p = load_pipeline(default_model_dir)
    cache = p.encoder.en.cache  # type: ignore[attr-defined]
    texts = ["The courier was two days late and nobody called", "Great fit, I will order the blue one too"]
    p.analyze(texts, frozenset(DEFAULT_TASKS))
    hits = cache.hits
    counted = p.vector_cache_counts()  # type: ignore[attr-defined]
    vectors = p.embed(texts)
    assert cache.hits - hits == len(texts)
    assert p.vector_cache_counts() == (counted[0] + len(texts), counted[1])  # type: ignore[attr-defined]
    fresh = load_pipeline(default_model_dir, encoder_cache=0)
    assert np.allclose(vectors, fresh.embed(texts), atol=1e-4)


def test_the_cli_keeps_stdout_for_its_output_with_the_default_model(default_model_dir: Path) -> None:
    """The default model logs at load (the bf16 probe, packing): none of it may reach the JSON on stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_NLP_")}
    env |= {"CX_NLP_MODEL_DIR": str(default_model_dir), "CX_NLP_DTYPE": "auto"}
    stdin = '{"id": "a", "text": "排队等了四十分钟，服务员态度还很差"}\n{"id": "b", "text": "great service"}\n'
    predict = subprocess.run(
        [CX_NLP, "predict", "--task", "sentiment"], input=stdin, capture_output=True, text=True, env=env, check=False
    )
    assert predict.returncode == 0, predict.stderr
    rows = [json.loads(line) for line in predict.stdout.splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [("a", "negative"), ("b", "positive")]
    info = subprocess.run([CX_NLP, "info"], capture_output=True, text=True, env=env, check=False)
    assert info.returncode == 0, info.stderr
    payload = json.loads(info.stdout)
    assert payload["model"]["name"] == "cx-default"
    assert payload["host"]["bf16_packed_layers"] >= 0
    if payload["model"]["dtype"] == "bfloat16" and packing_available():
        assert payload["host"]["bf16_packed_layers"] > 0
