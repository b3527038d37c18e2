"""The transformers-based components load any local Hugging Face directory; tested with a tiny BERT built in code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from cx_nlp.models.hf import HFEncoder, HFSentiment, encoder_memo, resolve_device, resolve_dtype  # noqa: E402
from cx_nlp.models.onednn import PackedBf16Linear, packing_available  # noqa: E402
from cx_nlp.models.vector_cache import VectorCache  # noqa: E402

TinyBert = Callable[[Path, "dict[int, str] | None"], Path]  # the `tiny_bert` fixture (conftest.py)


def test_encoder_from_local_dir(tmp_path: Path, tiny_bert: TinyBert) -> None:
    enc = HFEncoder(tiny_bert(tmp_path / "enc", None))
    e = enc(["物流太慢", "good", "bad slow"])
    assert e.shape == (3, 16) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert np.allclose(enc(["good"]), e[1:2], atol=1e-5)  # batching/sorting does not change results


def _counting(enc: HFEncoder) -> list[list[str]]:
    """Record the texts of every model pass `enc` makes."""
    passes: list[list[str]] = []
    encode = enc._encode

    def counted(texts: list[str]) -> np.ndarray:
        passes.append(list(texts))
        return encode(texts)

    enc._encode = counted  # type: ignore[method-assign]
    return passes


def test_texts_seen_again_come_from_the_vector_cache(tmp_path: Path, tiny_bert: TinyBert) -> None:
    path = tiny_bert(tmp_path / "enc", None)
    enc = HFEncoder(path, cache_size=3)
    passes = _counting(enc)
    first = enc(["good", "bad", "good"])
    assert passes == [["good", "bad"]]
    again = enc(["bad", "slow", "good"])  # as Embed after Analyze: only the new text reaches the model
    assert passes[-1] == ["slow"]
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[2], first[0])
    with encoder_memo():
        enc(["good", "slow"])
    assert len(passes) == 2
    enc(["物流", "太慢"])  # 5 distinct texts through a cache of 3: the least recently used are gone
    assert passes[-1] == ["物流", "太慢"] and enc.cache is not None and len(enc.cache) == 3
    enc(["bad"])
    assert passes[-1] == ["bad"]
    assert enc.cache.hits == 4 and enc.cache.misses == 6
    uncached = HFEncoder(path)
    uncached.cache = None
    assert np.allclose(uncached(["good", "bad", "slow"]), enc(["good", "bad", "slow"]), atol=1e-6)


def test_no_vector_cache_when_its_size_is_zero(tmp_path: Path, tiny_bert: TinyBert) -> None:
    enc = HFEncoder(tiny_bert(tmp_path / "enc", None), cache_size=0)
    passes = _counting(enc)
    enc(["good"])
    enc(["good"])
    assert enc.cache is None and passes == [["good"], ["good"]]


def test_vector_cache_is_shared_safely_by_threads() -> None:
    """Threads storing and reading overlapping texts at once: every vector found is the one stored for its text,
    and the bound holds."""
    from concurrent.futures import ThreadPoolExecutor

    def vector(i: int) -> np.ndarray:
        return np.array([i, -i], dtype=np.float32)

    for size in (1000, 50):
        cache = VectorCache(size)

        def work(start: int, cache: VectorCache = cache) -> bool:
            ids = list(range(start, start + 100))
            keys = [cache.key(f"text {i}") for i in ids]
            cache.store(keys, np.stack([vector(i) for i in ids]))
            found = cache.lookup(keys)
            return all(np.array_equal(found[k], vector(i)) for i, k in zip(ids, keys, strict=True) if k in found)

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(work, range(0, 800, 20)))
        assert len(cache) == min(size, 880)
        assert cache.hits + cache.misses == 40 * 100


def test_texts_longer_than_the_model_positions_are_truncated_to_fit(tmp_path: Path, tiny_bert: TinyBert) -> None:
    """The tiny BERT has 64 positions, fewer than the default max_length of 256 tokens."""
    long_text = " ".join(["good", "bad", "slow"] * 60)
    enc = HFEncoder(tiny_bert(tmp_path / "enc", None))
    assert enc.max_length == 64 and enc([long_text]).shape == (1, 16)
    clf = HFSentiment(tiny_bert(tmp_path / "sent", {0: "NEGATIVE", 1: "POSITIVE"}))
    assert clf.max_length == 64 and clf([long_text]).shape == (1, 3)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_sentiment_from_local_dir(tmp_path: Path, dtype: str, tiny_bert: TinyBert) -> None:
    path = tiny_bert(tmp_path / "sent", {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"})
    ref = HFSentiment(path)(["物流太慢", "good"])
    clf = HFSentiment(path, dtype=dtype)
    p = clf(["物流太慢", "good"])
    assert p.shape == (2, 3) and p.dtype == np.float32
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-4)
    assert np.allclose(p, ref, atol=0.05)  # reduced precision stays close to float32


@pytest.mark.skipif(not packing_available(), reason="no oneDNN bfloat16 kernels on this CPU/build")
def test_a_bf16_encoder_on_cpu_runs_packed_and_matches_float32(tmp_path: Path, tiny_bert: TinyBert) -> None:
    path = tiny_bert(tmp_path / "enc", None)
    texts = ["物流太慢", "good", "bad slow good", "好快"]
    reference = HFEncoder(path)(texts)
    encoder = HFEncoder(path, dtype="bfloat16")
    kinds = {type(m) for m in encoder.model.modules()}
    assert PackedBf16Linear in kinds and torch.nn.Linear not in kinds
    got = encoder(texts)
    assert got.shape == reference.shape
    assert np.min(np.sum(got * reference, axis=1)) > 0.99  # cosine to float32
    assert np.allclose(encoder(["good"]), got[1:2], atol=1e-2)


def test_bucketed_sentiment_matches_one_text_at_a_time(tmp_path: Path, tiny_bert: TinyBert) -> None:
    clf = HFSentiment(tiny_bert(tmp_path / "sent", {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"}), batch_size=2)
    clf.max_batch_tokens = 24  # long texts go through in passes of their own
    texts = [" ".join(["good bad slow"] * 6), "物流太慢", "good", " ".join(["bad"] * 15), "好快 good"]
    together = clf(texts)
    alone = np.vstack([clf([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_binary_labels_map_to_three_classes(tmp_path: Path, tiny_bert: TinyBert) -> None:
    clf = HFSentiment(tiny_bert(tmp_path / "bin", {0: "neg", 1: "pos"}))
    assert clf.order == [0, -1, 1]
    assert clf(["bad"]).shape == (1, 3)


def test_device_and_dtype_resolution() -> None:
    assert resolve_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("cuda") == expected
    from cx_nlp.hardware import auto_cpu_dtype

    assert resolve_dtype("auto", "cpu") == auto_cpu_dtype()
    assert resolve_dtype("auto", "cuda") == "bfloat16"
    assert resolve_dtype("int8", "cuda") == "bfloat16"
    with pytest.raises(ValueError, match="unsupported dtype"):
        resolve_dtype("float8", "cpu")


def test_missing_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HFSentiment(tmp_path / "nope")


def test_length_buckets_cover_every_text_once_with_little_padding() -> None:
    from cx_nlp.models.hf import length_buckets

    lengths = [12, 128, 14, 130, 40, 11, 126, 13, 45]
    buckets = length_buckets(lengths, max_batch=3)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in buckets)
    for b in buckets:
        assert max(lengths[i] for i in b) <= 1.25 * min(lengths[i] for i in b) + 8
    assert length_buckets([], 4) == []


def test_length_buckets_keep_each_forward_pass_within_the_token_budget() -> None:
    from cx_nlp.models.hf import CPU_BATCH_TOKENS, batch_token_budget, length_buckets

    lengths = [30] * 40 + [250] * 10 + [300]
    buckets = length_buckets(lengths, max_batch=64, max_tokens=1024)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    for b in buckets:  # padded tokens = texts x the longest; a text longer than the budget still runs, alone
        assert len(b) * max(lengths[i] for i in b) <= 1024 or len(b) == 1
    assert [len(b) for b in buckets if lengths[b[0]] == 250] == [4, 4, 3]  # the last: 250, 250 and 300
    assert len(length_buckets(lengths, max_batch=64)) < len(buckets)  # no budget: only batch size and length
    assert batch_token_budget("cpu") == CPU_BATCH_TOKENS and batch_token_budget("cuda:0") == 0
    assert batch_token_budget("cpu", 0) == 0 and batch_token_budget("cuda:0", 2048) == 2048  # CX_NLP_BATCH_TOKENS


def test_token_buckets_carry_each_texts_own_features() -> None:
    from cx_nlp.models.hf import token_buckets

    ids = [[1] * n for n in (3, 40, 4, 41, 3)]
    features = {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids], "token_type_ids": [[0]] * 5}
    seen: list[int] = []
    for bucket, rows in token_buckets(features, max_batch=8, max_tokens=0):
        assert rows == {k: [v[j] for j in bucket] for k, v in features.items()}
        seen.extend(bucket)
    assert sorted(seen) == list(range(5))
    assert [sorted(b) for b, _ in token_buckets(features, max_batch=8, max_tokens=0)] == [[0, 2, 4], [1, 3]]
    assert [len(b) for b, _ in token_buckets(features, max_batch=8, max_tokens=80)] == [3, 1, 1]  # 2 x 41 > 80


def test_bucketed_encoding_matches_one_text_at_a_time(tmp_path: Path, tiny_bert: TinyBert) -> None:
    enc = HFEncoder(tiny_bert(tmp_path / "enc", None), batch_size=2)
    texts = ["good", " ".join(["good bad slow"] * 12), "物流太慢 好快 bad", "good", " ".join(["bad"] * 20)]
    together = enc(texts)
    alone = np.vstack([enc([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_model_references_resolve_to_local_directories(tmp_path: Path) -> None:
    from cx_nlp.models.sources import ModelSourceError, model_dir_for

    assert model_dir_for(tmp_path) == tmp_path
    with pytest.raises(ModelSourceError, match="does not exist") as missing:
        model_dir_for(tmp_path / "absent")
    assert "CX_NLP_HUB_DOWNLOAD" not in str(missing.value)
    with pytest.raises(ModelSourceError, match="CX_NLP_HUB_DOWNLOAD=true"):
        model_dir_for("cardiffnlp/twitter-xlm-roberta-base-sentiment")  # a hub id, downloads not allowed


def test_a_hub_id_is_downloaded_only_when_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_bert: TinyBert
) -> None:
    import huggingface_hub

    local = tiny_bert(tmp_path / "snapshot", None)
    asked: list[tuple[str, str | None]] = []

    def snapshot_download(repo_id: str, *, revision: str | None = None) -> str:
        asked.append((repo_id, revision))
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    enc = HFEncoder("acme/tiny-bert@v1.2", hub_download=True)
    assert asked == [("acme/tiny-bert", "v1.2")] and enc.path == local
    assert enc(["good"]).shape == (1, 16)
    from cx_nlp.models.sources import ModelSourceError

    with pytest.raises(ModelSourceError):
        HFSentiment("acme/tiny-bert")  # the same id without permission never reaches the hub
    assert len(asked) == 1


def test_a_hub_id_that_cannot_be_downloaded_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real huggingface_hub client, offline and with an empty cache (no network is touched)."""
    from huggingface_hub import constants

    from cx_nlp.models.sources import ModelSourceError, model_dir_for

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelSourceError, match="cannot download acme/absent-model from the Hugging Face hub") as err:
        model_dir_for("acme/absent-model", hub_download=True)
    assert "\n" not in str(err.value)


def test_the_bf16_probe_times_both_precisions_and_restores_the_threads() -> None:
    from cx_nlp import hardware

    before = torch.get_num_threads()
    probe = hardware.probe_bf16_matmul(1)
    assert torch.get_num_threads() == before
    assert probe.threads == 1 and probe.float32_ms > 0 and probe.bfloat16_ms > 0
    assert probe.speedup == pytest.approx(probe.float32_ms / probe.bfloat16_ms)
