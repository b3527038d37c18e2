"""Fast unit tests on the tiny in-code model and the model-side building blocks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import structlog.testing

from cx_nlp.evaluation import classification_report, evaluate, format_report, sample_codebook
from cx_nlp.models import langid
from cx_nlp.models.api import INTENTS, TASKS, CodebookNodeSpec, Pipeline, load_pipeline
from cx_nlp.models.text import clauses, to_simplified


def test_tiny_loads_fast_and_is_deterministic() -> None:
    t0 = time.perf_counter()
    a = load_pipeline(None)
    assert time.perf_counter() - t0 < 2.0
    b = load_pipeline(None)
    texts = ["物流太慢了", "Great service, thank you!"]
    assert a.analyze(texts, TASKS) == b.analyze(texts, TASKS)
    assert np.array_equal(a.embed(texts), b.embed(texts))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("这家店的服务很好，下次还会再来", "zh-Hans"),
        ("這家店的服務很好，下次還會再來", "zh-Hant"),
        ("The delivery was late and nobody answered the phone.", "en"),
        ("Le service était très lent et pas du tout aimable", "other"),
        ("このお店のサービスはとても良かったです", "other"),
        ("12345 !!!", "other"),
    ],
)
def test_language_detection(text: str, expected: str) -> None:
    assert langid.detect(text)[0] == expected


def test_prediction_shapes(tiny: Pipeline) -> None:
    texts = ["物流太慢了，我要投诉", "I love it", "", "How do I reset my password?"]
    preds = tiny.analyze(texts, TASKS, max_keywords=3)
    assert len(preds) == 4
    for p in preds:
        assert p.sentiment is not None and len(p.sentiment) == 3
        assert abs(sum(p.sentiment) - 1.0) < 1e-4
        assert set(p.intents) == set(INTENTS)
        assert all(0.0 <= v <= 1.0 for v in p.intents.values())
        assert len(p.keywords) <= 3
        assert p.need_layer in (None, "pain", "itch", "delight")
    assert preds[0].sentiment[0] > preds[0].sentiment[2]
    assert preds[1].sentiment[2] > preds[1].sentiment[0]
    assert preds[2].sentiment == (0.0, 1.0, 0.0) and preds[2].keywords == []
    assert preds[3].intents["inquiry"] > 0.5


def test_only_requested_tasks(tiny: Pipeline) -> None:
    (p,) = tiny.analyze(["物流太慢了"], frozenset({"language"}))
    assert p.language == "zh-Hans" and p.sentiment is None and p.intents == {} and p.keywords == []
    with pytest.raises(ValueError, match="unknown tasks"):
        tiny.analyze(["x"], frozenset({"translate"}))


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("再这样我就打12315投诉你们", "regulator_threat"),
        ("我要去消协反映", "regulator_threat"),
        ("I will report you to the Better Business Bureau", "regulator_threat"),
        ("我已经联系律师，准备起诉", "legal_threat"),
        ("I'm talking to my lawyer about a lawsuit", "legal_threat"),
        ("我要发到网上让媒体曝光", "media_threat"),
        ("再也不会在你们家买了", "churn_risk"),
        ("Please cancel my subscription today", "churn_risk"),
        ("我要投诉你们的快递员", "complaint"),
        ("I want a refund, this is unacceptable", "complaint"),
        ("孩子吃了以后过敏住院了", "safety_risk"),
        ("你们泄露了我的个人信息", "compliance_risk"),
        ("我想再买两台送朋友", "purchase_intent"),
        ("有点贵，还在犹豫要不要买", "hesitation"),
        ("請問可以開發票嗎？", "inquiry"),
    ],
)
def test_intent_rules(tiny: Pipeline, text: str, intent: str) -> None:
    (p,) = tiny.analyze([text], frozenset({"intents"}))
    assert p.intents[intent] >= 0.5, p.intents


def test_negated_purchase_is_not_purchase_intent(tiny: Pipeline) -> None:
    (p,) = tiny.analyze(["质量太差，不会再买了"], frozenset({"intents"}))
    assert p.intents["churn_risk"] >= 0.5
    assert p.intents["purchase_intent"] < 0.5


def test_need_layer(tiny: Pipeline) -> None:
    preds = tiny.analyze(["垃圾产品，我要投诉", "希望能增加夜间配送", "太棒了，超出预期！"], frozenset({"needs"}))
    assert [p.need_layer for p in preds] == ["pain", "itch", "delight"]


def test_keywords_keep_the_texts_script(tiny: Pipeline) -> None:
    (p,) = tiny.analyze(["這家餐廳的服務態度非常差，等了一個小時"], frozenset({"keywords"}), max_keywords=5)
    words = [w for w, _ in p.keywords]
    assert words and all(w in "這家餐廳的服務態度非常差，等了一個小時" for w in words)
    assert p.keywords[0][1] == 1.0


def test_traditional_folding_keeps_offsets() -> None:
    text = "門店排隊太久了"
    assert to_simplified(text) == "门店排队太久了"
    assert len(to_simplified(text)) == len(text)


def test_clauses() -> None:
    text = "物流很快，但是包装破损了。Service was fine but the box was crushed!"
    spans = [text[s:e] for s, e in clauses(text)]
    assert spans == ["物流很快", "包装破损了", "Service was fine", "the box was crushed"]


def _codebook(p: Pipeline):
    nodes, primary = sample_codebook()
    return p.compile_codebook(nodes, primary)


def test_codebook_keyword_match_and_span(tiny: Pipeline) -> None:
    cb = _codebook(tiny)
    assert cb.node_count == 15 and len(cb.fingerprint) == 64
    text = "东西还行，但是快递一周了还没到，客服也不回复"
    (p,) = tiny.analyze([text], frozenset({"aspects"}), cb)
    assert not p.unmatched
    by_node = {a.node_id: a for a in p.aspects}
    late = by_node["prod.delivery.late"]
    assert late.path == ["产品", "物流", "配送延迟"]
    assert text[late.start : late.end] == late.opinion == "快递一周了还没到"
    assert late.matched_by in ("keyword", "keyword+embedding")
    assert "svc.cs.response" in by_node
    (q,) = tiny.analyze(["今天天气不错"], frozenset({"aspects"}), cb)
    assert q.unmatched and q.aspects == []


def test_codebook_traditional_and_english(tiny: Pipeline) -> None:
    cb = _codebook(tiny)
    preds = tiny.analyze(["門店排隊太久了", "My parcel arrived two weeks late"], frozenset({"aspects"}), cb)
    assert [a.node_id for a in preds[0].aspects] == ["svc.store.queue"]
    assert [a.node_id for a in preds[1].aspects] == ["prod.delivery.late"]
    assert preds[1].aspects[0].polarity in ("negative", "neutral", "positive")


def test_codebook_fingerprint_and_validation(tiny: Pipeline) -> None:
    nodes, primary = sample_codebook()
    a = tiny.compile_codebook(nodes, primary)
    b = tiny.compile_codebook(list(reversed(nodes)), primary)
    assert a.fingerprint == b.fingerprint
    changed = [*nodes[:-1], CodebookNodeSpec(**{**nodes[-1].__dict__, "keywords": ("贵",)})]
    assert tiny.compile_codebook(changed, primary).fingerprint != a.fingerprint
    with pytest.raises(ValueError, match="unknown parent"):
        tiny.compile_codebook([CodebookNodeSpec("x", "nope", 2, {"en": "X"})])
    with pytest.raises(ValueError, match="level"):
        tiny.compile_codebook([CodebookNodeSpec("x", "", 4, {"en": "X"})])


def test_embeddings_normalised_float32(tiny: Pipeline) -> None:
    e = tiny.embed(["a", "物流", "The parcel was late"])
    assert e.dtype == np.float32 and e.shape == (3, tiny.embedding_dim)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert tiny.embed([]).shape == (0, tiny.embedding_dim)


def test_cluster_ranks_by_size(tiny: Pipeline) -> None:
    texts = [
        "物流太慢了",
        "物流太慢了吧",
        "物流真的太慢",
        "物流太慢了!",
        "I love this product",
        "love this product",
        "I love the product",
    ]
    clusters, noise = tiny.cluster(texts, tiny.embed(texts), min_cluster_size=3)
    assert [sorted(c.members) for c in clusters] == [[0, 1, 2, 3], [4, 5, 6]]
    assert noise == []
    assert clusters[0].representatives[0] in clusters[0].members
    assert clusters[0].keywords and clusters[0].keywords[0][0] in ("太慢", "物流")


def test_evaluate_and_report(tiny: Pipeline) -> None:
    rows = [
        {"text": "太差了，垃圾", "label": "negative"},
        {"text": "非常满意，谢谢", "label": "positive"},
        {"text": "请问几点开门", "label": "neutral"},
    ]
    rep = evaluate(tiny, "sentiment", rows)
    assert rep["n"] == 3 and set(rep["per_class"]) == {"negative", "neutral", "positive"}
    assert 0.0 <= rep["macro_f1"] <= 1.0
    assert "macro-F1" in format_report(rep)
    with pytest.raises(ValueError, match="unknown sentiment labels"):
        evaluate(tiny, "sentiment", [{"text": "x", "label": "good"}])


def test_classification_report_values() -> None:
    rep = classification_report(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b"])
    assert rep["accuracy"] == 0.75
    assert rep["per_class"]["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
        "predicted": 1,
    }
    assert rep["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_macro_f1_counts_a_class_only_the_predictions_have() -> None:
    rep = classification_report(["en"] * 4, ["en", "en", "other", "other"], ["zh-Hans", "en", "other"])
    assert rep["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)  # en: P 1, R 0.5; other: F1 0; zh-Hans: absent
    report = format_report({**rep, "task": "language"})
    assert "other" in report and "zh-Hans" not in report


def test_development_rows_are_not_test_rows() -> None:
    from cx_nlp.evaluation import data_path, read_jsonl

    test = {r["text"] for r in read_jsonl(data_path("neutral_handwritten.jsonl"))}
    dev = [r["text"] for r in read_jsonl(data_path("neutral_dev_handwritten.jsonl"))]
    assert len(dev) == 60 and len(set(dev)) == len(dev)
    assert not test & set(dev)


def test_english_head_of_an_older_format_asks_for_a_rebuild(tmp_path: Path) -> None:
    from cx_nlp.models.components import HashingEncoder, HeadSentiment
    from cx_nlp.models.enlex import EnLexicon

    old = tmp_path / "en_head.npz"
    np.savez(old, coef=np.zeros((3, 128 + 9), dtype=np.float32), intercept=np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="rebuild"):
        HeadSentiment(old, HashingEncoder(128), EnLexicon({}))


def test_threads_and_dtype_defaults_follow_the_host() -> None:
    from cx_nlp.hardware import auto_cpu_dtype, default_cpu_workers, default_torch_threads, usable_cpus
    from cx_nlp.settings import NlpSettings

    assert default_torch_threads() == max(1, usable_cpus() - 1)
    assert default_cpu_workers() == min(usable_cpus(), 4)
    workers = NlpSettings().resolved_workers()
    assert workers == default_cpu_workers() and NlpSettings(workers=3).resolved_workers() == 3
    assert NlpSettings(torch_threads=0).resolved_torch_threads() == default_torch_threads(workers)
    assert NlpSettings(torch_threads=3).resolved_torch_threads() == 3
    assert NlpSettings(device="cuda").resolved_dtype() == "bfloat16"
    assert NlpSettings(dtype="float32").resolved_dtype() == "float32"
    assert NlpSettings().resolved_dtype() == auto_cpu_dtype()


@pytest.mark.parametrize(
    ("flags", "bf16_faster", "dtype"),
    [
        ({"avx2", "avx512f", "amx_bf16", "amx_int8"}, True, "bfloat16"),  # Sapphire Rapids and later
        ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, True, "bfloat16"),  # Zen 4, Cooper Lake
        ({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}, False, "float32"),  # a VM that hides AMX
        ({"avx2", "avx512f", "avx512_vnni"}, None, "float32"),  # Cascade Lake, Ice Lake: int8 is opt-in
        ({"avx2", "fma"}, None, "float32"),  # Zen 2 / Zen 3
        (set(), None, "float32"),  # no /proc/cpuinfo
    ],
)
def test_auto_precision_follows_the_cpu_instructions_and_the_probe(
    monkeypatch: pytest.MonkeyPatch, flags: set[str], bf16_faster: bool | None, dtype: str
) -> None:
    from cx_nlp import hardware
    from cx_nlp.settings import NlpSettings

    def probe(threads: int) -> bool:
        assert bf16_faster is not None, "no bfloat16 instructions: nothing to probe"
        return bf16_faster

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(hardware, "bf16_is_faster", probe)
    assert hardware.auto_cpu_dtype() == dtype
    assert NlpSettings().resolved_dtype() == dtype
    assert NlpSettings(device="cuda").resolved_dtype() == "bfloat16"
    assert NlpSettings(model="tiny").resolved_dtype() == "float32"  # NumPy float32 whatever the CPU


@pytest.mark.parametrize(("bfloat16_ms", "picked"), [(5.0, True), (8.0, True), (9.0, False), (20.0, False)])
def test_bf16_needs_a_clear_lead_in_the_probe(
    monkeypatch: pytest.MonkeyPatch, bfloat16_ms: float, picked: bool
) -> None:
    from cx_nlp import hardware

    calls: list[int] = []

    def probe(threads: int) -> hardware.Bf16Probe:
        calls.append(threads)
        return hardware.Bf16Probe(float32_ms=10.0, bfloat16_ms=bfloat16_ms, threads=threads)

    monkeypatch.setattr(hardware, "probe_bf16_matmul", probe)
    monkeypatch.setattr(hardware, "_probes", {})
    with structlog.testing.capture_logs() as logged:
        assert hardware.bf16_is_faster(3) is picked
        assert hardware.bf16_is_faster(3) is picked
    assert calls == [3]  # probed once per thread count
    assert [(e["event"], e["threads"], e["chosen"]) for e in logged] == [
        ("cpu_bf16_probe", 3, "bfloat16" if picked else "float32")
    ]
    assert hardware.probes_run() == {3: hardware.Bf16Probe(10.0, bfloat16_ms, 3)}


def test_concat_encoder_runs_each_part_only_where_it_counts() -> None:
    from cx_nlp.models.components import ConcatEncoder, HashingEncoder

    seen: list[str] = []

    class Recording(HashingEncoder):
        def __call__(self, texts: list[str]) -> np.ndarray:
            seen.extend(texts)
            return super().__call__(texts)

    enc = ConcatEncoder(HashingEncoder(32), Recording(16))
    out = enc(["排队太久了", "the queue was long", "这个app很好用"])
    assert out.shape == (3, 48) and np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert seen == ["the queue was long", "app"]  # no Han text reaches the English encoder
    assert np.allclose(out[0, 32:], 0.0) and np.allclose(out[1, :32], 0.0)


def test_settings_reach_the_model_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Vector cache size, hub permission and the token budget travel from NlpSettings to the loader (the tiny model
    needs none of them)."""
    import cx_nlp.models
    from cx_nlp.runtime import load_configured_pipeline
    from cx_nlp.settings import NlpSettings

    seen: list[dict[str, object]] = []

    def loader(model_dir: Path | None, **kwargs: object) -> Pipeline:
        seen.append({k: v for k, v in kwargs.items() if k not in ("device", "dtype")})
        return load_pipeline(None)

    monkeypatch.setattr(cx_nlp.models, "load_pipeline", loader)
    load_configured_pipeline(NlpSettings(model="tiny"))
    load_configured_pipeline(
        NlpSettings(
            model="tiny", encoder_cache=0, hub_download=True, task_models={"sentiment": "acme/clf"}, batch_tokens=0
        )
    )
    assert seen == [
        {"encoder_cache": 4096},  # no task models, no hub permission, no token budget: none is passed
        {"task_models": {"sentiment": "acme/clf"}, "encoder_cache": 0, "hub_download": True, "batch_tokens": 0},
    ]


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, limits.cpu: 2
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),  # no quota
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),  # not in a container
    ],
)
def test_the_container_cpu_quota_is_read_from_the_cgroup(
    tmp_path: Path, files: dict[str, str], limit: float | None
) -> None:
    from cx_nlp.hardware import cgroup_cpu_limit

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit


@pytest.mark.parametrize(
    ("affinity", "quota", "cpus", "workers", "threads"),
    [
        (64, 2.0, 2, 2, 1),  # a Pod limited to 2 CPUs on a 64-CPU node
        (64, 1.5, 1, 1, 1),
        (2, None, 2, 2, 1),
        (1, None, 1, 1, 1),
        (8, None, 8, 4, 2),
        (16, 4.0, 4, 4, 1),
    ],
)
def test_workers_and_threads_follow_the_usable_cpus(
    monkeypatch: pytest.MonkeyPatch, affinity: int, quota: float | None, cpus: int, workers: int, threads: int
) -> None:
    from cx_nlp import hardware
    from cx_nlp.settings import NlpSettings

    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda _: set(range(affinity)), raising=False)
    monkeypatch.setattr(hardware, "cgroup_cpu_limit", lambda root=None: quota)
    assert hardware.usable_cpus() == cpus
    settings = NlpSettings()
    assert settings.resolved_workers() == workers
    assert settings.resolved_torch_threads() == threads
    assert NlpSettings(workers=1).resolved_torch_threads() == max(1, cpus - 1)
