"""Keyword extraction: jieba TF-IDF for Chinese (on the Simplified folding, reported in the text's own script),
YAKE for English, a frequency fallback for anything else (Unicode words of any script, stopwords of the common
European languages dropped)."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from typing import Any

from cx_nlp.models.text import (
    EN_STOPWORDS,
    OTHER_STOPWORDS,
    ZH_STOPWORDS,
    en_words,
    is_east_asian,
    is_hiragana,
    normalize,
    unicode_words,
)

_NOT_A_WORD = re.compile(r"[\d\W_]+")

_lock = threading.Lock()
_jieba: Any = None
_yake: dict[int, Any] = {}


def _jieba_analyse() -> Any:
    global _jieba
    with _lock:
        if _jieba is None:
            import jieba
            import jieba.analyse

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba = jieba.analyse
    return _jieba


def jieba_cut(text: str) -> list[str]:
    _jieba_analyse()
    import jieba

    return [w for w in jieba.lcut(text) if w.strip()]


def zh_keywords(text: str, k: int) -> list[tuple[str, float]]:
    norm = normalize(text)
    tags = _jieba_analyse().extract_tags(norm, topK=k * 2, withWeight=True)
    out: list[tuple[str, float]] = []
    for word, weight in tags:
        if word in ZH_STOPWORDS or _NOT_A_WORD.fullmatch(word):
            continue
        pos = norm.find(word)
        surface = text[pos : pos + len(word)] if pos >= 0 else word  # same offsets: folding keeps length
        out.append((surface, float(weight)))
        if len(out) >= k:
            break
    return _scaled(out)


def en_keywords(text: str, k: int) -> list[tuple[str, float]]:
    try:
        import yake
    except ImportError:
        return freq_keywords(text, k, "en")
    with _lock:
        extractor = _yake.get(k)
        if extractor is None:
            extractor = yake.KeywordExtractor(lan="en", n=2, top=k * 2, dedupLim=0.7)
            _yake[k] = extractor
    out: list[tuple[str, float]] = []
    seen: set[str] = set()
    for phrase, score in extractor.extract_keywords(text):
        low = phrase.lower()
        if low in seen or low in EN_STOPWORDS or _NOT_A_WORD.fullmatch(low):
            continue
        seen.add(low)
        out.append((phrase, 1.0 / (1.0 + 50.0 * float(score))))
        if len(out) >= k:
            break
    return _scaled(out)


def freq_keywords(text: str, k: int, language: str = "other") -> list[tuple[str, float]]:
    counts = Counter(content_words(text, language))
    return _scaled([(w, float(c)) for w, c in counts.most_common(k)])


def content_words(text: str, language: str) -> list[str]:
    """Words of a non-Chinese text without function words and numbers: English words for English, otherwise words
    of any script (Japanese split into script runs, its hiragana runs, mostly particles and endings, left out)."""
    if language == "en":
        return [w for w in en_words(text) if w not in EN_STOPWORDS and len(w) > 2 and not w.isdigit()]
    out = []
    for w in unicode_words(text):
        if w in OTHER_STOPWORDS or w in EN_STOPWORDS or is_hiragana(w):
            continue
        if len(w) > 2 or (len(w) > 1 and is_east_asian(w)):
            out.append(w)
    return out


def _scaled(items: list[tuple[str, float]]) -> list[tuple[str, float]]:
    if not items:
        return []
    top = max(w for _, w in items) or 1.0
    return [(word, round(w / top, 4)) for word, w in sorted(items, key=lambda x: -x[1])]


def keywords(text: str, language: str, k: int) -> list[tuple[str, float]]:
    if k <= 0 or not text.strip():
        return []
    if language.startswith("zh"):
        return zh_keywords(text, k)
    if language == "en":
        return en_keywords(text, k)
    return freq_keywords(text, k)


def terms(text: str, language: str) -> list[str]:
    """Content words of a text (for cluster labels)."""
    if language.startswith("zh"):
        norm = normalize(text)
        return [w for w in jieba_cut(norm) if len(w) > 1 and w not in ZH_STOPWORDS and not _NOT_A_WORD.fullmatch(w)]
    return content_words(text, language)
