"""The regex script helpers give exactly what a per-character `is_han` test gives."""

from __future__ import annotations

import random

from cx_nlp.models.text import blank_han, han_count, has_han, is_han, normalize

_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xF900, 0xFAFF), (0x20000, 0x2EBEF))


def _han(ch: str) -> bool:
    return any(lo <= ord(ch) <= hi for lo, hi in _RANGES)


def test_is_han_matches_the_code_point_ranges_at_every_boundary() -> None:
    for lo, hi in _RANGES:
        for o in (lo - 1, lo, lo + 1, hi - 1, hi, hi + 1):
            assert is_han(chr(o)) == _han(chr(o)), hex(o)
    assert not is_han("a") and not is_han("，") and is_han("排") and is_han("價")


def test_helpers_agree_with_a_per_character_scan() -> None:
    rng = random.Random(3)
    pool = [chr(o) for o in (*range(32, 127), *range(0x3400 - 2, 0x3400 + 2), *range(0x4DBF - 2, 0x4E01 + 2))]
    pool += [chr(o) for o in (0x9FFF, 0xA000, 0xF8FF, 0xF900, 0xFAFF, 0xFB00, 0x1FFFF, 0x20000, 0x2EBEF, 0x2EBF0)]
    pool += list("排队等了四十分钟，價格合理。The app crashed!")
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        assert han_count(text) == sum(_han(ch) for ch in text)
        assert has_han(text) == any(_han(ch) for ch in text)
        assert blank_han(text) == "".join(" " if _han(ch) else ch for ch in text)


def test_normalize_keeps_every_character_one_character() -> None:
    """Clause spans found on the original text index the normalised one: no character may grow (İ lower-cases to
    two code points, and a keyword after it was missed)."""
    every = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
    assert len(normalize(every)) == len(every)
    assert normalize("İİ, TOO Expensive，价格太贵") == "İİ, too expensive,价格太贵"
