"""Sentence vectors an encoder computed recently, kept for texts seen again."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

DEFAULT_VECTOR_CACHE = 4096  # sentence vectors kept per encoder: 6 MB for MiniLM's 384 dimensions


class VectorCache:
    """The sentence vectors an encoder computed last (LRU, bounded), across calls and threads.

    Ingest sends `Analyze` and `Embed` for the same texts one after the other, and a worker runs one model call at a
    time (`threads=1`), so the second finds most of its vectors here; feedback also repeats short texts ("好评",
    "great") often. Keys are 128-bit BLAKE2b digests of the text, so long texts do not stay in memory."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for k in keys:
                vector = self._vectors.get(k)
                if vector is not None:
                    self._vectors.move_to_end(k)
                    found[k] = vector
            self.hits += len(found)
            self.misses += len(keys) - len(found)
        return found

    def store(self, keys: list[bytes], vectors: np.ndarray) -> None:
        with self._lock:
            for k, vector in zip(keys, vectors, strict=True):
                self._vectors[k] = vector.copy()  # a row of a batch's array would keep the whole array alive
                self._vectors.move_to_end(k)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def __len__(self) -> int:
        return len(self._vectors)


def vector_caches(*components: object) -> list[VectorCache]:
    """The distinct vector caches of some pipeline components: encoders themselves, or what they are made of
    (`zh`/`en` parts, a sentiment head's `encoder`)."""
    found: dict[int, VectorCache] = {}
    seen: set[int] = set()
    todo = list(components)
    while todo:
        part = todo.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        cache = getattr(part, "cache", None)
        if isinstance(cache, VectorCache):
            found[id(cache)] = cache
        todo.extend(p for p in (getattr(part, name, None) for name in ("zh", "en", "encoder")) if p is not None)
    return list(found.values())
