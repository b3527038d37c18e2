"""The concrete pipeline behind `cx_nlp.models.api.Pipeline` (tiny in-code model and the built default model)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cx_nlp.models import keywords as kw
from cx_nlp.models import langid, rules
from cx_nlp.models.api import TASKS, ClusterResult, CodebookNodeSpec, CompiledCodebook, Prediction
from cx_nlp.models.cluster import cluster as run_cluster
from cx_nlp.models.codebook import Codebook, clause_spans, compile_codebook
from cx_nlp.models.components import (
    ConcatEncoder,
    Encoder,
    HashingEncoder,
    HeadSentiment,
    LexiconSentiment,
    LsaEncoder,
    NgramSentiment,
    SentimentModel,
)
from cx_nlp.models.enlex import EnLexicon
from cx_nlp.models.text import normalize

log = logging.getLogger(__name__)

LABELS = ("negative", "neutral", "positive")
MANIFEST = "manifest.json"
MODEL_FORMAT = 1


class CxPipeline:
    def __init__(
        self,
        *,
        name: str,
        version: str,
        zh_sentiment: SentimentModel,
        en_sentiment: SentimentModel,
        encoder: Encoder,
        device: str = "cpu",
        dtype: str = "float32",
        aspect_threshold: float = 0.6,
        cluster_threshold: float = 0.55,
        components: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.zh_sentiment = zh_sentiment
        self.en_sentiment = en_sentiment
        self.encoder = encoder
        self.embedding_dim = int(encoder.dim)
        self.device = device
        self.dtype = dtype
        self.aspect_threshold = aspect_threshold
        self.cluster_threshold = cluster_threshold
        self.components = components or {}

    # -- api.Pipeline ------------------------------------------------------------------------------------------

    def vector_cache_counts(self) -> tuple[int, int]:
        """Hits and misses, so far, of the transformer encoders' vector caches (0, 0 without any)."""
        from cx_nlp.models.vector_cache import vector_caches

        caches = vector_caches(self.encoder, self.zh_sentiment, self.en_sentiment)
        return sum(c.hits for c in caches), sum(c.misses for c in caches)

    def info(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "embedding_dim": self.embedding_dim,
            "device": self.device,
            "dtype": self.dtype,
            "tasks": sorted(TASKS),
            "languages": ["zh-Hans", "zh-Hant", "en"],
            "components": self.components,
        }

    def analyze(
        self,
        texts: list[str],
        tasks: frozenset[str],
        codebook: CompiledCodebook | None = None,
        max_keywords: int = 10,
    ) -> list[Prediction]:
        unknown = set(tasks) - TASKS
        if unknown:
            raise ValueError(f"unknown tasks: {sorted(unknown)}")
        if codebook is not None and not isinstance(codebook, Codebook):
            raise TypeError("codebook must come from this pipeline's compile_codebook()")
        from cx_nlp.models.hf import encoder_memo

        with encoder_memo():
            return self._analyze(texts, tasks, codebook, max_keywords)

    def _analyze(
        self, texts: list[str], tasks: frozenset[str], codebook: Codebook | None, max_keywords: int
    ) -> list[Prediction]:
        preds = [Prediction() for _ in texts]
        langs = [langid.detect(t) for t in texts]
        for p, (lang, conf) in zip(preds, langs, strict=True):
            p.language, p.language_confidence = lang, conf
        need_sentiment = bool(tasks & {"sentiment", "intents", "needs"})
        sentiments = self.sentiment([t for t in texts], [lang for lang, _ in langs]) if need_sentiment else None
        norms = [normalize(t) for t in texts] if tasks & {"intents", "needs"} else []
        if sentiments is not None and "sentiment" in tasks:
            for p, row in zip(preds, sentiments, strict=True):
                p.sentiment = _triple(row)
        if "intents" in tasks or "needs" in tasks:
            for i, p in enumerate(preds):
                sent = _triple(sentiments[i]) if sentiments is not None else None
                intents = rules.intent_scores(norms[i], sent)
                if "intents" in tasks:
                    p.intents = intents
                if "needs" in tasks:
                    p.need_layer, p.need_confidence = rules.need_layer(norms[i], sent, intents)
        if "keywords" in tasks:
            for p, text in zip(preds, texts, strict=True):
                p.keywords = kw.keywords(text, p.language, max_keywords)
        if "aspects" in tasks and isinstance(codebook, Codebook):
            self._aspects(texts, preds, codebook, sentiments)
        return preds

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return np.ascontiguousarray(self.encoder(texts), dtype=np.float32)

    def cluster(
        self,
        texts: list[str],
        embeddings: np.ndarray,
        *,
        min_cluster_size: int = 3,
        max_clusters: int = 0,
        representatives: int = 3,
    ) -> tuple[list[ClusterResult], list[int]]:
        def terms(text: str) -> list[str]:
            return kw.terms(text, langid.detect(text)[0])

        return run_cluster(
            texts,
            embeddings,
            min_cluster_size=min_cluster_size,
            max_clusters=max_clusters,
            representatives=representatives,
            terms=terms,
            distance_threshold=self.cluster_threshold,
        )

    def compile_codebook(self, nodes: list[CodebookNodeSpec], primary_language: str = "zh-Hans") -> CompiledCodebook:
        return compile_codebook(nodes, primary_language, self.encoder, self.aspect_threshold)

    # -- internals ---------------------------------------------------------------------------------------------

    def sentiment(self, texts: list[str], languages: list[str] | None = None) -> np.ndarray:
        """(n, 3) probabilities (negative, neutral, positive); Chinese texts go to the Chinese model."""
        if languages is None:
            languages = [langid.detect(t)[0] for t in texts]
        out = np.zeros((len(texts), 3), dtype=np.float32)
        out[:, 1] = 1.0  # empty / non-linguistic text: neutral
        zh = [
            i for i, (t, lang) in enumerate(zip(texts, languages, strict=True)) if t.strip() and lang.startswith("zh")
        ]
        other = [i for i, t in enumerate(texts) if t.strip() and i not in set(zh)]
        if zh:
            out[zh] = self.zh_sentiment([texts[i] for i in zh])
        if other:
            out[other] = self.en_sentiment([texts[i] for i in other])
        return out

    def _aspects(
        self, texts: list[str], preds: list[Prediction], codebook: Codebook, whole: np.ndarray | None = None
    ) -> None:
        spans = [clause_spans(t) for t in texts]
        flat = [texts[i][s:e] for i, sp in enumerate(spans) for s, e in sp]
        # each clause goes to its own language's model where a text mixes Chinese and English (still one batched call
        # per model: `sentiment` groups the clauses by language)
        languages = [
            lang for i, sp in enumerate(spans) for lang in langid.clause_languages(texts[i], sp, preds[i].language)
        ]
        vectors = self.encoder(flat) if flat and len(codebook.leaf_index) else None
        sents = self.sentiment(flat, languages) if flat else np.zeros((0, 3), dtype=np.float32)
        if whole is None:
            whole = self.sentiment(texts, [p.language for p in preds])
        k = 0
        for i, sp in enumerate(spans):
            n = len(sp)
            # a clause alone is often elliptic ("快递十天了才到"): lean on the whole text's sentiment too
            mixed = 0.65 * sents[k : k + n] + 0.35 * whole[i]
            pol = [(LABELS[int(np.argmax(row))], float(np.max(row))) for row in mixed]
            vec = vectors[k : k + n] if vectors is not None else None
            preds[i].aspects = codebook.match(texts[i], vec, sp, pol)
            preds[i].unmatched = not preds[i].aspects
            k += n


def _triple(row: np.ndarray) -> tuple[float, float, float]:
    return (round(float(row[0]), 6), round(float(row[1]), 6), round(float(row[2]), 6))


# -- loading -----------------------------------------------------------------------------------------------------


def tiny_pipeline(device: str = "cpu", dtype: str = "float32") -> CxPipeline:
    """A deterministic in-code model (lexicon sentiment, hashed n-gram embeddings) for tests and wiring."""
    return CxPipeline(
        name="cx-tiny",
        version="tiny-1",
        zh_sentiment=LexiconSentiment(),
        en_sentiment=LexiconSentiment(),
        encoder=HashingEncoder(128),
        device=device if device == "cpu" else _device(device),
        dtype=dtype if dtype != "auto" else "float32",
        aspect_threshold=0.75,
        cluster_threshold=0.7,
        components={"sentiment": "lexicon", "encoder": "hashing-128"},
    )


def _device(device: str) -> str:
    from cx_nlp.models.hf import resolve_device

    return resolve_device(device)


def _task_models(explicit: dict[str, str] | None) -> dict[str, str]:
    if explicit is not None:
        return dict(explicit)
    raw = os.environ.get("CX_NLP_TASK_MODELS", "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"CX_NLP_TASK_MODELS is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError("CX_NLP_TASK_MODELS must be a JSON object of task -> model directory (or hub id)")
    return {str(k): str(v) for k, v in value.items()}


def _package_dir(package: str) -> Path:
    import importlib

    module = importlib.import_module(package)
    getter = getattr(module, "get_model_path", None)
    if getter is not None:
        return Path(getter())
    return Path(str(module.__file__)).parent / "model"


def load_default(
    model_dir: Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    task_models: dict[str, str] | None = None,
    encoder_cache: int | None = None,
    hub_download: bool = False,
    batch_tokens: int | None = None,
) -> CxPipeline:
    from cx_nlp.models.hf import HFEncoder, HFSentiment, resolve_device, resolve_dtype
    from cx_nlp.models.vector_cache import DEFAULT_VECTOR_CACHE

    t0 = time.perf_counter()
    model_dir = Path(model_dir)
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: build the model first (cx-nlp build-model)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != MODEL_FORMAT:
        raise ValueError(f"{model_dir}: model format {manifest.get('format')} is not {MODEL_FORMAT}; rebuild it")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    overrides = _task_models(task_models)
    cache = DEFAULT_VECTOR_CACHE if encoder_cache is None else encoder_cache
    on_device: dict[str, Any] = {"device": device, "dtype": dtype, "batch_tokens": batch_tokens}
    comp = manifest["components"]
    info: dict[str, Any] = {}

    if "embedding" in overrides:
        encoder: Encoder = HFEncoder(overrides["embedding"], **on_device, cache_size=cache, hub_download=hub_download)
        en_encoder: Encoder = encoder
        info["encoder"] = f"hf:{overrides['embedding']}"
    else:
        zh_enc = LsaEncoder(model_dir / comp["zh_encoder"]["file"])
        en_spec = comp["en_encoder"]
        en_path = Path(en_spec["path"]) if en_spec.get("path") else _package_dir(en_spec["package"])
        en_encoder = HFEncoder(en_path, **on_device, cache_size=cache)
        encoder = ConcatEncoder(zh_enc, en_encoder)
        info["encoder"] = f"concat(lsa-{zh_enc.dim}, {en_spec.get('package') or en_path}-{en_encoder.dim})"

    zh_sent: SentimentModel
    en_sent: SentimentModel
    if "sentiment" in overrides:
        zh_sent = en_sent = HFSentiment(overrides["sentiment"], **on_device, hub_download=hub_download)
        info["sentiment"] = f"hf:{overrides['sentiment']}"
    else:
        zh_sent = NgramSentiment(model_dir / comp["zh_sentiment"]["file"])
        lex = EnLexicon.load(model_dir / comp["en_lexicon"]["file"])
        en_head_encoder = (
            en_encoder
            if "embedding" not in overrides
            else HFEncoder(_package_dir(comp["en_encoder"]["package"]), **on_device, cache_size=cache)
        )
        en_sent = HeadSentiment(model_dir / comp["en_sentiment"]["file"], en_head_encoder, lex)
        info["sentiment"] = {"zh": "char-ngram-logreg", "en": "minilm-head+lexicon"}
    for lang in ("zh", "en"):
        key = f"sentiment_{lang}"
        if key in overrides:
            model = HFSentiment(overrides[key], **on_device, hub_download=hub_download)
            if lang == "zh":
                zh_sent = model
            else:
                en_sent = model
            info[key] = f"hf:{overrides[key]}"
    thresholds = manifest.get("thresholds", {})
    pipe = CxPipeline(
        name=manifest.get("name", "cx-default"),
        version=manifest.get("version", "0"),
        zh_sentiment=zh_sent,
        en_sentiment=en_sent,
        encoder=encoder,
        device=device,
        dtype=dtype,
        aspect_threshold=float(thresholds.get("aspect", 0.6)) if "embedding" not in overrides else 0.6,
        cluster_threshold=float(thresholds.get("cluster", 0.55)),
        components=info,
    )
    log.info("loaded %s %s in %.1fs (%s, %s)", pipe.name, pipe.version, time.perf_counter() - t0, device, dtype)
    return pipe
