"""PII redaction, run before any text is stored for analysis or sent to NLP.

Built-in detectors (in this order, so a longer, more specific match wins over a shorter one):
e-mail, mainland resident ID card (18 digits, ISO 7064 MOD 11-2 checksum), CN mobile with its +86/0086 prefix (before
bank cards: those digits can pass Luhn), bank card (13-19 digits, Luhn), CN mobile (+86 optional, 1[3-9]x),
international numbers (+country code), CN landline (0 + area code + 7-8 digits).
Checksums keep order numbers and other long digit runs that are not card/ID numbers intact.
The number detectors see full-width forms (１３８, ＋８６, Ｘ, as Chinese input methods type them) as their ASCII
equivalents; the replacement covers the original characters.
Tenant patterns run last with the `regex` module and a per-call timeout, so a pathological pattern cannot hang ingest;
their replacement is literal text (no group references or backslash escapes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import regex

PATTERN_TIMEOUT_S = 0.05

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)
BANK_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
_CN_MOBILE = r"1[3-9]\d(?:[\s\-]?\d{4}){2}(?!\d)"
CN_MOBILE_INTL = re.compile(r"(?<![\d+])(?:\+|00)86[\s\-]?" + _CN_MOBILE)
CN_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)86[\s\-]?)?" + _CN_MOBILE)
INTL_PHONE = re.compile(r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[\s\-.]?\(?\d{1,4}\)?){2,5}(?!\d)")
CN_LANDLINE = re.compile(r"(?<!\d)(?:\(0\d{2,3}\)|0\d{2,3})[\s\-]?[2-9]\d{6,7}(?:-\d{1,5})?(?!\d)")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_card_valid(number: str) -> bool:
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _intl_ok(s: str) -> bool:
    return 8 <= len(_digits(s)) <= 15


@dataclass(frozen=True)
class Detector:
    name: str
    replacement: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    # Cheap preconditions: a text without them cannot match, so the (slow, lookbehind-heavy) pattern is skipped.
    needs_char: str = ""
    min_digits: int = 0


BUILTIN: tuple[Detector, ...] = (
    Detector("email", "[EMAIL]", EMAIL, needs_char="@"),
    Detector("id_card", "[ID_CARD]", ID_CARD, id_card_valid, min_digits=17),
    Detector("phone", "[PHONE]", CN_MOBILE_INTL, min_digits=13),
    Detector("bank_card", "[BANK_CARD]", BANK_CARD, lambda s: luhn_valid(_digits(s)), min_digits=13),
    Detector("phone", "[PHONE]", CN_MOBILE, min_digits=11),
    Detector("phone", "[PHONE]", INTL_PHONE, _intl_ok, min_digits=8),
    Detector("phone", "[PHONE]", CN_LANDLINE, min_digits=10),
)
_DIGIT = re.compile(r"\d")
# Every non-ASCII character that `\d` matches (Unicode category Nd) lies in these ranges; CJK ideographs, CJK and
# fullwidth punctuation do not (tests/test_redact.py checks the first against every code point).
_MAYBE_NON_ASCII_DIGIT = re.compile("[\u0660-\u2fff\ua000-\ufeff\uff10-\uff19\U00010000-\U0010ffff]")
_ASCII_DIGITS = b"0123456789"
# Full-width forms U+FF01-FF5E -> ASCII U+0021-007E: one code point each, so offsets in the folded text are the
# original's.
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}
_FULLWIDTH = re.compile("[\uff01-\uff5e]")


def fold_fullwidth(text: str) -> str:
    """`text` with full-width ASCII forms folded to ASCII: what the number detectors see."""
    return text.translate(_FOLD)


def digit_count(text: str) -> int:
    r"""`len(re.findall(r"\d", text))`, ~5x faster on ASCII text and ~1.5x on Chinese: when no character can be a
    non-ASCII digit, the ASCII digits are counted in the UTF-8 bytes (multi-byte sequences hold no ASCII byte)."""
    if text.isascii() or _MAYBE_NON_ASCII_DIGIT.search(text) is None:
        data = text.encode()
        return len(data) - len(data.translate(None, _ASCII_DIGITS))
    return len(_DIGIT.findall(text))


assert not any(digit_count(det.replacement) for det in BUILTIN), "redact_into counts the digits a replacement removes"
_MIN_DIGITS = min(det.min_digits for det in BUILTIN if det.min_digits)
# Every character a digit detector's pattern can match in the folded text is in this class (with the full-width forms
# that fold to its ASCII characters), so each of their matches lies inside one maximal run of such characters (8 = the
# shortest possible match). The patterns are tried only on those runs — `finditer(text, start, end + 1)`: lookbehinds
# still see the character before the run, lookaheads the one after it — which finds exactly the matches of a scan of
# the whole folded text, at a fraction of the cost on long feedback.
_RUN = re.compile(r"[\d\s+\-.()xX＋－．（）Ｘｘ]{8,}")


_RUN_PUNCTUATION = frozenset("+-.()xX＋－．（）Ｘｘ")


def _in_run(ch: str) -> bool:
    """`ch` is in `_RUN`'s class (`\\s` and `\\d` are str.isspace and str.isdecimal for str patterns)."""
    return ch in _RUN_PUNCTUATION or ch.isspace() or ch.isdecimal()


def _number_runs(text: str) -> list[tuple[int, int, int]]:
    """(start, end, digits) of the maximal runs of `_RUN`'s class that hold at least `_MIN_DIGITS` digits: the
    runs `_RUN.finditer` finds that a number detector can use. Grown outwards from each digit, so the text is
    scanned only for digits (`_RUN` tried every space of an English text: ~13 us per text)."""
    runs = []
    end = 0
    size = len(text)
    for match in _DIGIT.finditer(text):
        start = match.start()
        if start < end:
            continue  # inside the run found last
        while start > end and _in_run(text[start - 1]):
            start -= 1
        end = match.end()
        while end < size and _in_run(text[end]):
            end += 1
        if (digits := digit_count(text[start:end])) >= _MIN_DIGITS:
            runs.append((start, end, digits))
    return runs


# Where a detector's pattern is tried: (text to search, its offset in the redacted text, pos, endpos).
Window = tuple[str, int, int, int]


def _number_windows(text: str) -> list[tuple[int, Window]]:
    """(digits, window) of each run of `_number_runs`. A run (or a neighbour its lookarounds see) with a full-width
    character is searched in a folded copy of just that stretch: no second pass over (or copy of) the whole text."""
    may_fold = not text.isascii()
    windows: list[tuple[int, Window]] = []
    for start, end, digits in _number_runs(text):
        lo = start - 1 if start else 0
        if may_fold and _FULLWIDTH.search(text, lo, end + 1):
            windows.append((digits, (text[lo : end + 1].translate(_FOLD), lo, start - lo, end + 1 - lo)))
        else:
            windows.append((digits, (text, 0, start, end + 1)))
    return windows


@dataclass(frozen=True)
class CustomPattern:
    name: str
    pattern: regex.Pattern[str]
    replacement: str  # literal text

    def subn(self, text: str) -> tuple[str, int]:
        # A function, not a template: \1, \g<x> or C:\x in a replacement are text, never group references or escapes.
        result: tuple[str, int] = self.pattern.subn(lambda _: self.replacement, text, timeout=PATTERN_TIMEOUT_S)
        return result


@dataclass
class Redaction:
    text: str
    counts: dict[str, int] = field(default_factory=dict)


class PatternError(ValueError):
    pass


_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")
MAX_REPEATS = 100_000  # the product of a pattern's repeat counts: nested {1000}s exhaust memory when compiled


def _repeat_product(pattern: str) -> int:
    """An upper bound of how far a pattern's counted repeats multiply (as if every one were nested in the last)."""
    product = 1
    for low, high in _REPEAT.findall(pattern):
        product *= max(int(low), int(high) if high else 1, 1)
        if product > MAX_REPEATS:
            break
    return product


_PROBE = "Ab 12, 中文。x@y.cn\n"  # word boundaries, digits, Han, punctuation, a line end


def _matches_nothing_somewhere(pattern: regex.Pattern[str]) -> bool:
    """A zero-width match (e.g. `(?<=\\b)`): the replacement would be inserted between characters everywhere."""
    try:
        return any(m.start() == m.end() for m in pattern.finditer(_PROBE, timeout=PATTERN_TIMEOUT_S))
    except TimeoutError:
        return False  # the empty-string probe already refuses patterns that never finish


def compile_custom(items: Iterable[dict[str, str]], *, strict: bool = True) -> list[CustomPattern]:
    """Compile tenant patterns; raises PatternError naming the bad one (and its field). `strict` (when settings are
    saved): also refuse what compiles but cannot redact sensibly. Stored settings are compiled with strict=False:
    a pattern saved before a check existed keeps redacting rather than stopping every ingest of its tenant."""
    compiled = []
    for i, item in enumerate(items):
        field_name = f"custom_patterns.{i}.pattern"
        if strict:
            _check_before_compiling(field_name, item["pattern"])
        try:
            pattern = regex.compile(item["pattern"])
        except (regex.error, ValueError) as exc:  # ValueError: incompatible flags, e.g. "(?a)(?u)"
            raise PatternError(f"{field_name}: {exc}") from exc
        if strict:
            _check_compiled(field_name, pattern)
        replacement = item.get("replacement") or f"[{item['name'].upper()}]"
        compiled.append(CustomPattern(item["name"], pattern, replacement))
    return compiled


def _check_before_compiling(field_name: str, pattern: str) -> None:
    if _repeat_product(pattern) > MAX_REPEATS:
        raise PatternError(f"{field_name}: its counted repeats ({{n}}) multiply beyond {MAX_REPEATS:,}")


def _check_compiled(field_name: str, pattern: regex.Pattern[str]) -> None:
    try:
        empty = pattern.search("", timeout=PATTERN_TIMEOUT_S)
    except TimeoutError as exc:  # e.g. "(?R)?^": it would time out on every text
        raise PatternError(f"{field_name}: does not finish on the empty string") from exc
    if empty is not None or _matches_nothing_somewhere(pattern):
        raise PatternError(f"{field_name}: matches the empty string")


_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")


def _email_windows(text: str) -> list[tuple[int, int]]:
    """Spans that hold every possible e-mail match: around each "@", the run of local-part characters before it
    and of domain characters after it (overlapping spans merged). EMAIL has no lookarounds, so scanning only these
    finds the matches a scan of the whole text finds."""
    spans: list[tuple[int, int]] = []
    at = text.find("@")
    while at >= 0:
        lo, hi = at, at + 1
        while lo > 0 and text[lo - 1] in _LOCAL:
            lo -= 1
        while hi < len(text) and text[hi] in _DOMAIN:
            hi += 1
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
        at = text.find("@", at + 1)
    return spans


class Redactor:
    def __init__(self, custom: Iterable[CustomPattern] = ()) -> None:
        self.custom = list(custom)

    def redact(self, text: str) -> Redaction:
        counts: dict[str, int] = {}
        return Redaction(self.redact_into(text, counts), counts)

    def redact_into(self, text: str, counts: dict[str, int]) -> str:
        """The redacted text; adds what was found to `counts` (by detector name)."""
        digits = digit_count(text)  # redaction only removes digits: a bound for every later step too
        if digits < _MIN_DIGITS and "@" not in text and not self.custom:
            return text  # most feedback: no "@" and fewer digits than the shortest number detector needs
        out = text
        runs: list[tuple[int, Window]] | None = None  # (digits, window) of the candidate runs of `out`
        for det in BUILTIN:
            if digits < det.min_digits or (det.needs_char and det.needs_char not in out):
                continue
            if not det.min_digits:  # e-mail: only around each "@", in the text as it is
                windows = [(out, 0, lo, hi) for lo, hi in _email_windows(out)]
                replaced, removed = self._replace(det, out, windows, counts)
            else:
                if runs is None:
                    runs = _number_windows(out)
                windows = [window for n, window in runs if n >= det.min_digits]
                replaced, removed = self._replace(det, out, windows, counts) if windows else (out, 0)
            if replaced is not out:
                # The replacements hold no digit: the text now has `removed` digits fewer, so the detectors left
                # are skipped without a new scan once too few remain (usually: the one phone number is gone).
                out, runs, digits = replaced, None, digits - removed
        for cp in self.custom:
            try:
                out, n = cp.subn(out)
            except TimeoutError:
                # Fail closed: a pattern that cannot finish on this text hides the whole text from analysis.
                out, n = f"[{cp.name.upper()}_TIMEOUT]", 1
            if n:
                counts[cp.name] = counts.get(cp.name, 0) + n
        return out

    @staticmethod
    def _replace(det: Detector, text: str, windows: list[Window], counts: dict[str, int]) -> tuple[str, int]:
        """(`text` with the detector's (checked) matches inside `windows` replaced, the same object when none; the
        number of digits the replaced matches held)."""
        pieces: list[str] = []
        last = removed = 0
        for view, offset, pos, endpos in windows:
            for m in det.pattern.finditer(view, pos, endpos):
                found = m.group(0)
                if det.check is not None and not det.check(found):
                    continue
                pieces += (text[last : offset + m.start()], det.replacement)
                last = offset + m.end()
                removed += digit_count(found)
                counts[det.name] = counts.get(det.name, 0) + 1
        if not pieces:
            return text, 0
        pieces.append(text[last:])
        return "".join(pieces), removed


DEFAULT_REDACTOR = Redactor()
