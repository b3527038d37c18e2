"""`transformers`-based components that load from a local Hugging Face directory, or, only where the operator allows
downloads (`CX_NLP_HUB_DOWNLOAD=true`), from a Hugging Face hub id.

Texts longer than the model's `max_length` tokens are read in windows (see `WINDOW_OVERLAP`, `MAX_WINDOWS`): each
window runs through the model like any other text, in the same length buckets and token budget, and a text's windows
are combined, weighted by their token counts: the mean of their unit sentence vectors, re-normalised, for the
encoder; the mean of their label probabilities for the classifier. A text within `max_length` takes the path it took
before windows existed (one row, same numbers).

Device and dtype: CPU float32 by default; `bfloat16`/`float16` cast the weights; `int8` quantises the Linear
layers' weights and activations after a calibration pass (CPU only, `cx_nlp.models.quantize`); `cuda` moves the
model to the GPU.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cx_nlp.models.components import l2_normalize
from cx_nlp.models.sources import model_dir_for
from cx_nlp.models.vector_cache import DEFAULT_VECTOR_CACHE, VectorCache

log = logging.getLogger(__name__)
# On CPU a forward pass runs fastest per token up to about this many padded tokens; past it, it gets slower per
# token (its activations, the feed-forward's 4x-wide ones above all, outgrow the caches). MiniLM, the 96 mixed-length
# benchmark texts in one call, 1 thread, AMD EPYC, best of 4 interleaved (2026-12-02): float32 / bfloat16 / int8
# 2.12 / 0.74 / 0.61 s at 1024 tokens, 2.19 / 0.78 / 0.63 s at 2048, 2.60 / 0.87 / 1.04 s without a limit (batches
# of up to 64 texts). Calls of 32 texts gain nothing: their length buckets are that small already.
CPU_BATCH_TOKENS = 1024
# A text longer than max_length tokens is cut into windows of max_length tokens (special tokens included) that
# overlap by WINDOW_OVERLAP tokens (at most a quarter of a window), so no sentence is read only in halves. At most
# MAX_WINDOWS windows per text, spread evenly over it (first and last included) where it has more: 16 x 256 tokens
# cover the service's 8,000-character limit for English (about 4 characters a token) and about 3,600 characters of
# Chinese (about one a token), and bound one text's cost to that of 16 texts of max_length tokens. Needs a fast
# tokenizer (what AutoTokenizer loads for current models); with a slow one a text is still cut at max_length.
WINDOW_OVERLAP = 32
MAX_WINDOWS = 16

# (encoder id, text) -> unit vector, alive for one `encoder_memo()` block (one pipeline call): the English encoder
# sees the same clause for aspect matching and for clause sentiment, and batches often repeat a text.
_MEMO: contextvars.ContextVar[dict[tuple[int, str], np.ndarray] | None] = contextvars.ContextVar(
    "cx_nlp_encoder_memo", default=None
)


@contextmanager
def encoder_memo() -> Iterator[None]:
    """Within the block every HFEncoder computes each distinct text once."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def resolve_device(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        if torch.cuda.is_available():
            return device
        log.warning("device %s requested but CUDA is not available; using cpu", device)
        return "cpu"
    return "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """`auto` = bfloat16 on CUDA; on CPU what `cx_nlp.hardware.auto_cpu_dtype` picks (bfloat16 or float32)."""
    if dtype in ("auto", ""):
        from cx_nlp.hardware import auto_cpu_dtype

        return "bfloat16" if device.startswith("cuda") else auto_cpu_dtype()
    if dtype == "int8" and device.startswith("cuda"):
        log.warning("int8 dynamic quantisation is CPU only; using bfloat16 on %s", device)
        return "bfloat16"
    if dtype == "float16" and not device.startswith("cuda"):
        return "bfloat16"  # float16 matmuls are slow or missing on CPU
    if dtype not in ("float32", "bfloat16", "float16", "int8"):
        raise ValueError(f"unsupported dtype {dtype!r}")
    return dtype


def _prepare(model: Any, device: str, dtype: str, calibrate: Callable[[], Any] | None = None) -> Any:
    """`model` (float32) in eval mode, cast or quantised to `dtype`, on `device`; for int8, `calibrate()` runs the
    calibration texts through the float32 model first. On CPU its bfloat16 Linear layers get their weights packed
    for oneDNN (`cx_nlp.models.onednn`)."""
    import torch

    model.eval()
    if dtype == "int8":
        from cx_nlp.models.quantize import quantize_int8

        model = quantize_int8(model, calibrate)
    elif dtype in ("bfloat16", "float16"):
        model = model.to(getattr(torch, dtype))
    from cx_nlp.models.onednn import pack_bf16_linears

    model = model.to(device)
    pack_bf16_linears(model)  # CPU bfloat16 layers only; CUDA and float32 ones stay as they are
    return model


def _calibration_texts() -> list[str]:
    from cx_nlp.models.quantize import calibration_texts

    return list(calibration_texts())


def _tokenize(
    tokenizer: Any, texts: list[str], max_length: int
) -> tuple[Mapping[str, list[list[int]]], list[tuple[int, list[int]]]]:
    """Tokenised `texts`, one row per text (truncated to `max_length`, exactly as without windows), then the further
    windows of the texts longer than that; and for each such text (its row, the rows of its further windows)."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) >= max_length]
    if not long or not getattr(tokenizer, "is_fast", False):
        return enc, []
    win = tokenizer(
        [texts[i] for i in long],
        truncation=True,
        max_length=max_length,
        stride=min(WINDOW_OVERLAP, max_length // 4),
        return_overflowing_tokens=True,
    )
    owners = list(win["overflow_to_sample_mapping"])
    features = {key: list(rows) for key, rows in enc.items()}
    n = len(texts)
    windows: list[tuple[int, list[int]]] = []
    for j, i in enumerate(long):
        rows = [r for r, owner in enumerate(owners) if owner == j]
        if len(rows) <= 1:
            continue
        if len(rows) > MAX_WINDOWS:
            rows = [rows[int(k)] for k in np.unique(np.linspace(0, len(rows) - 1, MAX_WINDOWS).round())]
        # rows[0] is the truncated text already in row i
        further = list(range(n, n + len(rows) - 1))
        for key in features:
            features[key].extend(win[key][r] for r in rows[1:])
        n += len(further)
        windows.append((i, further))
    return features, windows


def _combine_windows(
    rows: np.ndarray, windows: list[tuple[int, list[int]]], lengths: list[int], n: int, *, normalize: bool
) -> np.ndarray:
    """`rows` (one per text, then further windows) -> one row per text: a windowed text's rows averaged, weighted by
    their token counts (`lengths`), and re-normalised to unit length where `normalize`."""
    if not windows:
        return rows
    out = rows[:n].copy()
    for i, further in windows:
        idx = [i, *further]
        w = np.asarray([lengths[r] for r in idx], dtype=np.float64)
        v = (rows[idx].astype(np.float64) * w[:, None]).sum(axis=0) / w.sum()
        if normalize:
            v /= max(float(np.linalg.norm(v)), 1e-12)
        out[i] = v
    return out


def _usable_length(model: Any, max_length: int) -> int:
    """`max_length` tokens, or fewer when the model has fewer positions (longer inputs would not fit)."""
    positions = getattr(model.config, "max_position_embeddings", None)
    return min(max_length, int(positions)) if isinstance(positions, int) and positions > 0 else max_length


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights" progress bar: a model of this size loads in well under a second, and every worker, CLI
    run and test would print one to stderr."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


class HFEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from any local encoder directory (BERT, MiniLM, XLM-R ...)."""

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 64,
        max_length: int = 256,
        batch_tokens: int | None = None,
        cache_size: int = DEFAULT_VECTOR_CACHE,
        hub_download: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = model_dir_for(path, hub_download=hub_download)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        with _quiet_loading():
            model = AutoModel.from_pretrained(str(self.path), local_files_only=True, dtype=torch.float32)
        self.dim = int(model.config.hidden_size)
        self.batch_size = batch_size
        self.max_batch_tokens = batch_token_budget(self.device, batch_tokens)
        self.max_length = _usable_length(model, max_length)
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.model = model.eval()  # float32 until prepared: the int8 calibration runs through it
        self.model = _prepare(model, self.device, self.dtype, lambda: self._encode(_calibration_texts()))
        self.cache = VectorCache(cache_size) if cache_size > 0 else None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        memo = _MEMO.get()
        key = id(self)
        if memo is None:
            unique = list(dict.fromkeys(texts))
            if len(unique) == len(texts) and self.cache is None:
                return self._encode(texts)
            found = dict(zip(unique, self._cached_encode(unique), strict=True))
            return np.stack([found[t] for t in texts])
        missing = [t for t in dict.fromkeys(texts) if (key, t) not in memo]
        if missing:
            for t, v in zip(missing, self._cached_encode(missing), strict=True):
                memo[(key, t)] = v
        return np.stack([memo[(key, t)] for t in texts])

    def _cached_encode(self, texts: list[str]) -> list[np.ndarray]:
        """Vectors of distinct `texts`, from the cache where it has them."""
        if self.cache is None:
            return list(self._encode(texts))
        keys = [self.cache.key(t) for t in texts]
        found = self.cache.lookup(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        if todo:
            vectors = self._encode([texts[i] for i in todo])
            self.cache.store([keys[i] for i in todo], vectors)
            found.update(zip((keys[i] for i in todo), vectors, strict=True))
        return [found[k] for k in keys]

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        # Tokenise once, then run length buckets (see length_buckets) so a batch of mixed lengths does not pay
        # for padding every text to the longest one; the order is restored at the end. Long texts add windows.
        enc, windows = _tokenize(self.tokenizer, texts, self.max_length)
        out = np.zeros((len(enc["input_ids"]), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for bucket, features in token_buckets(enc, self.batch_size, self.max_batch_tokens):
                batch = _pad(features, self.pad_id, self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                out[bucket] = pooled.cpu().numpy()
        vectors = l2_normalize(out)
        if not windows:
            return vectors
        lengths = [len(ids) for ids in enc["input_ids"]]
        return _combine_windows(vectors, windows, lengths, len(texts), normalize=True)


def _pad(features: dict[str, list[list[int]]], pad_id: int, device: str) -> dict[str, Any]:
    """Right-pad token id lists into tensors (input ids with the pad id, everything else with 0)."""
    import torch

    width = max(len(x) for x in features["input_ids"])
    out: dict[str, Any] = {}
    for key, rows in features.items():
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.tensor([x + [fill] * (width - len(x)) for x in rows], dtype=torch.long, device=device)
    return out


def length_buckets(
    lengths: list[int], max_batch: int, *, max_tokens: int = 0, slack: float = 1.25, min_pad: int = 8
) -> list[list[int]]:
    """Indices grouped into batches of similar token length: sorted by length, a batch closes when it is full, when
    one more text would take it past `max_tokens` padded tokens (0: no limit), or when the next text is longer than
    `slack` x its shortest text + `min_pad` tokens. On CPU, compute grows with the padded length, so padding a
    10-token review to a 128-token chat would cost more than the batching saves."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    buckets: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (
            len(current) >= max_batch
            or lengths[i] > slack * lengths[current[0]] + min_pad
            or (max_tokens and (len(current) + 1) * lengths[i] > max_tokens)
        ):
            buckets.append(current)
            current = []
        current.append(i)
    if current:
        buckets.append(current)
    return buckets


def token_buckets(
    features: Mapping[str, list[list[int]]], max_batch: int, max_tokens: int
) -> Iterator[tuple[list[int], dict[str, list[list[int]]]]]:
    """Tokenised texts (`input_ids`, `attention_mask` ... per text, unpadded) as `length_buckets`: each bucket's
    indices into the texts with its texts' features."""
    lengths = [len(x) for x in features["input_ids"]]
    for bucket in length_buckets(lengths, max_batch, max_tokens=max_tokens):
        yield bucket, {k: [rows[j] for j in bucket] for k, rows in features.items()}


def batch_token_budget(device: str, configured: int | None = None) -> int:
    """Padded tokens per forward pass (`length_buckets`' `max_tokens`; 0 = no limit): `configured` where set
    (`CX_NLP_BATCH_TOKENS`), else `CPU_BATCH_TOKENS` on CPU and no limit on a GPU, which wants the largest batches
    it gets."""
    if configured is not None:
        return configured
    return 0 if device.startswith("cuda") else CPU_BATCH_TOKENS


_STARS = re.compile(r"^\s*([1-5])\s*stars?\s*$")


def _star_groups(id2label: dict[int, str]) -> list[list[int]] | None:
    """For a 5-star rating model (labels "1 star" ... "5 stars"): the label indices summed into negative (1-2
    stars), neutral (3) and positive (4-5); None for any other labels."""
    stars: dict[int, int] = {}
    for i, label in id2label.items():
        match = _STARS.match(str(label).lower())
        if match is None:
            return None
        stars[int(match[1])] = i
    if sorted(stars) != [1, 2, 3, 4, 5] or len(id2label) != 5:
        return None
    return [[stars[1], stars[2]], [stars[3]], [stars[4], stars[5]]]


def _label_groups(id2label: dict[int, str]) -> list[list[int]]:
    """The label indices whose probabilities make up (negative, neutral, positive); an empty neutral group for a
    binary model."""
    stars = _star_groups(id2label)
    if stars is not None:
        return stars
    return [[i] if i >= 0 else [] for i in _label_order(id2label)]


def _label_order(id2label: dict[int, str]) -> list[int]:
    """Indices of (negative, neutral, positive) in the model's labels; -1 where the model has no such label."""
    names = {i: str(label).lower() for i, label in id2label.items()}
    found = [-1, -1, -1]
    for i, name in names.items():
        if name.startswith("neg") or name in ("bad", "1 star", "label_neg"):
            found[0] = i
        elif name.startswith("neu") or name in ("mixed", "other"):
            found[1] = i
        elif name.startswith("pos") or name in ("good", "5 stars"):
            found[2] = i
    if found[0] >= 0 and found[2] >= 0:
        return found
    n = len(names)
    if n == 3:
        return [0, 1, 2]
    if n == 2:
        return [0, -1, 1]
    raise ValueError(f"cannot map labels {sorted(names.values())} to negative/neutral/positive")


class HFSentiment:
    """Sequence-classification model from a local directory -> (negative, neutral, positive) probabilities.

    Label names containing neg/neu/pos are mapped by name; 5-star ratings ("1 star" ... "5 stars") as 1-2 stars
    negative, 3 neutral, 4-5 positive (probabilities summed); otherwise 3 labels are read as (neg, neu, pos) and 2
    labels as (neg, pos), with neutral probability taken from how undecided the model is.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
        max_length: int = 256,
        batch_tokens: int | None = None,
        hub_download: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = model_dir_for(path, hub_download=hub_download)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        with _quiet_loading():
            model = AutoModelForSequenceClassification.from_pretrained(
                str(self.path), local_files_only=True, dtype=torch.float32
            )
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        self.groups = _label_groups(id2label)
        self.order = [g[0] if g else -1 for g in self.groups]  # one label per class; the groups are what counts
        self.batch_size = batch_size
        self.max_batch_tokens = batch_token_budget(self.device, batch_tokens)
        self.max_length = _usable_length(model, max_length)
        self.model = model.eval()  # float32 until prepared: the int8 calibration runs through it
        self.model = _prepare(model, self.device, self.dtype, lambda: self(_calibration_texts()))

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        # tokenised once, run in length buckets as in HFEncoder._encode; the tokenizer pads (on its own side)
        # (long texts add windows, see _tokenize)
        enc, windows = _tokenize(self.tokenizer, texts, self.max_length)
        p = np.zeros((len(enc["input_ids"]), len(self.model.config.id2label)), dtype=np.float32)
        with torch.inference_mode():
            for bucket, features in token_buckets(enc, self.batch_size, self.max_batch_tokens):
                batch = self.tokenizer.pad(features, return_tensors="pt").to(self.device)
                p[bucket] = torch.softmax(self.model(**batch).logits.float(), dim=-1).cpu().numpy()
        if windows:
            lengths = [len(ids) for ids in enc["input_ids"]]
            p = _combine_windows(p, windows, lengths, len(texts), normalize=False)
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for k, group in enumerate(self.groups):
            if group:
                out[:, k] = p[:, group].sum(axis=1)
        if not self.groups[1]:  # binary model: neutral where it is undecided
            margin = np.abs(out[:, 0] - out[:, 2])
            out[:, 1] = np.clip(1.0 - 2.5 * margin, 0.0, 1.0)
        out /= out.sum(axis=1, keepdims=True)
        return out.astype(np.float32)
