"""Model components: sentiment classifiers and text encoders.

Every component is a plain object with `__call__(texts) -> np.ndarray`; sentiment returns (n, 3) probabilities in
the order (negative, neutral, positive), encoders return (n, d) float32 rows with unit L2 norm.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cx_nlp.models.enlex import SCORE_FEATURES, EnLexicon, score_features
from cx_nlp.models.rules import lexicon_sentiment
from cx_nlp.models.text import blank_han, en_words, han_count, has_han, is_han, normalize, stable_hash

log = logging.getLogger(__name__)


class Encoder(Protocol):
    dim: int

    def __call__(self, texts: list[str]) -> np.ndarray: ...


class SentimentModel(Protocol):
    def __call__(self, texts: list[str]) -> np.ndarray: ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    out: np.ndarray = (x / norms).astype(np.float32)
    return out


# -- tiny, in-code components ------------------------------------------------------------------------------------


class HashingEncoder:
    """Character n-grams (Chinese) and words + character trigrams (Latin) hashed into `dim` signed buckets."""

    def __init__(self, dim: int = 128) -> None:
        self.dim = dim

    def features(self, text: str) -> list[str]:
        norm = normalize(text)
        feats: list[str] = []
        han = [ch for ch in norm if is_han(ch)]
        feats.extend(han)
        feats.extend(a + b for a, b in itertools.pairwise(han))
        for w in en_words(norm):
            feats.append("w:" + w)
            padded = f"<{w}>"
            feats.extend("t:" + padded[i : i + 3] for i in range(max(1, len(padded) - 2)))
        return feats

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for f in self.features(text):
                h = stable_hash(f)
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return l2_normalize(out)


class LexiconSentiment:
    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        return np.array([lexicon_sentiment(normalize(t)) for t in texts], dtype=np.float32)


# -- trained linear components (built by cx_nlp.models.build) ----------------------------------------------------


def _char_vectorizer(n_features: int, ngram_max: int) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char",
        ngram_range=(1, ngram_max),
        n_features=n_features,
        alternate_sign=False,
        norm=None,
        lowercase=False,
        preprocessor=normalize,
        dtype=np.float32,
    )


def _tfidf(x: Any, idf: np.ndarray) -> Any:
    from sklearn.preprocessing import normalize as sk_normalize

    x = x.tocsr(copy=True)
    x.data = np.log1p(x.data)
    x = x.multiply(idf[np.newaxis, :]).tocsr()
    return sk_normalize(x)


class NgramSentiment:
    """Hashed character 1..n-gram TF-IDF + multinomial logistic regression (trained on Chinese review corpora)."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        meta = json.loads(str(data["meta"]))
        self.vectorizer = _char_vectorizer(int(meta["n_features"]), int(meta["ngram_max"]))
        self.idf = data["idf"].astype(np.float32)
        self.coef = data["coef"].astype(np.float32)
        self.intercept = data["intercept"].astype(np.float32)
        self.temperature = float(meta.get("temperature", 1.0))

    def logits(self, texts: list[str]) -> np.ndarray:
        x = _tfidf(self.vectorizer.transform(texts), self.idf)
        out: np.ndarray = np.asarray(x @ self.coef.T) + self.intercept
        return out

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        return softmax(self.logits(texts) / self.temperature)


class LsaEncoder:
    """Hashed character 1-2-gram TF-IDF projected by a truncated SVD fitted on Chinese corpora (a Chinese encoder
    built deterministically from shipped data)."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        meta = json.loads(str(data["meta"]))
        self.vectorizer = _char_vectorizer(int(meta["n_features"]), int(meta["ngram_max"]))
        self.idf = data["idf"].astype(np.float32)
        self.components = data["components"].astype(np.float32)  # (k, n_features)
        self.mean = data["mean"].astype(np.float32)
        self.dim = int(self.components.shape[0])

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        x = _tfidf(self.vectorizer.transform(texts), self.idf)
        z = np.asarray(x @ self.components.T) - self.mean
        return l2_normalize(z)


class HeadSentiment:
    """A linear head over an encoder's embeddings plus lexicon features (the English sentiment model).

    Feature version 2 = [embedding, EnLexicon.features (9), score_features (VADER + Pattern, 6)]; the neutral
    offset chosen at build time is already folded into the intercept."""

    FEATURES = 2

    def __init__(self, path: Path, encoder: Encoder, lexicon: EnLexicon) -> None:
        data = np.load(path)
        self.encoder = encoder
        self.lexicon = lexicon
        self.coef = data["coef"].astype(np.float32)
        self.intercept = data["intercept"].astype(np.float32)
        meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        expected = int(encoder.dim) + len(lexicon.features("")) + SCORE_FEATURES
        if int(meta.get("features", 1)) != self.FEATURES or self.coef.shape[1] != expected:
            raise ValueError(f"{path}: English head of an older model format; rebuild it (cx-nlp build-model)")

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        x = head_features(self.encoder(texts), texts, self.lexicon)
        return softmax(x @ self.coef.T + self.intercept)


def head_features(emb: np.ndarray, texts: list[str], lexicon: EnLexicon) -> np.ndarray:
    lex = np.array([lexicon.features(t) + score_features(t) for t in texts], dtype=np.float32)
    return np.hstack([emb, lex]).astype(np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


class ConcatEncoder:
    """Per-language weighted concatenation of a Chinese and an English encoder: the parts are weighted by how Chinese
    / Latin the text is, so similar texts in one language stay close.

    The English encoder only sees the text's non-Han part (it is an English model: Han characters are noise to it
    and cost a token each), and an encoder whose weight is zero for a text is not run for it. So a Chinese text costs
    a sparse LSA projection, an English one a MiniLM pass, and only mixed texts pay for both."""

    def __init__(self, zh: Encoder, en: Encoder) -> None:
        self.zh = zh
        self.en = en
        self.dim = zh.dim + en.dim

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        w = np.array([_han_share(t) for t in texts], dtype=np.float32)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        zh_rows = [i for i in range(len(texts)) if w[i] > 0.0]
        en_rows = [i for i in range(len(texts)) if w[i] < 1.0]
        if zh_rows:
            out[zh_rows, : self.zh.dim] = self.zh([texts[i] for i in zh_rows]) * np.sqrt(w[zh_rows])[:, None]
        if en_rows:
            part = self.en([_non_han(texts[i]) for i in en_rows])
            out[en_rows, self.zh.dim :] = part * np.sqrt(1.0 - w[en_rows])[:, None]
        return l2_normalize(out)


def _non_han(text: str) -> str:
    """The text with Han characters taken out (what an English encoder can read); the text itself if nothing
    else is left."""
    if not has_han(text):
        return text
    rest = " ".join(blank_han(text).split())
    return rest if any(ch.isalnum() for ch in rest) else text


def _han_share(text: str) -> float:
    han = han_count(text)
    latin_words = len(en_words(text))
    if han + latin_words == 0:
        return 0.5
    return han / (han + 2.5 * latin_words)
