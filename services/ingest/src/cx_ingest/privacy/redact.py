"""PII redaction, run before any text is stored for analysis or sent to NLP.

Built-in detectors (in this order, so a longer, more specific match wins over a shorter one):
e-mail, mainland resident ID card (18 digits, ISO 7064 MOD 11-2 checksum), bank card (13-19 digits, Luhn),
CN mobile (+86 optional, 1[3-9]x), international numbers (+country code), CN landline (0 + area code + 7-8 digits).
Checksums keep order numbers and other long digit runs that are not card/ID numbers intact.
Tenant patterns run last with the `regex` module and a per-call timeout, so a pathological pattern cannot hang ingest.
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
CN_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)86[\s\-]?)?1[3-9]\d(?:[\s\-]?\d{4}){2}(?!\d)")
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


BUILTIN: tuple[Detector, ...] = (
    Detector("email", "[EMAIL]", EMAIL),
    Detector("id_card", "[ID_CARD]", ID_CARD, id_card_valid),
    Detector("bank_card", "[BANK_CARD]", BANK_CARD, lambda s: luhn_valid(_digits(s))),
    Detector("phone", "[PHONE]", CN_MOBILE),
    Detector("phone", "[PHONE]", INTL_PHONE, _intl_ok),
    Detector("phone", "[PHONE]", CN_LANDLINE),
)


@dataclass(frozen=True)
class CustomPattern:
    name: str
    pattern: regex.Pattern[str]
    replacement: str


@dataclass
class Redaction:
    text: str
    counts: dict[str, int] = field(default_factory=dict)


class PatternError(ValueError):
    pass


def compile_custom(items: Iterable[dict[str, str]]) -> list[CustomPattern]:
    """Compile tenant patterns; raises PatternError naming the bad one."""
    compiled = []
    for i, item in enumerate(items):
        try:
            pattern = regex.compile(item["pattern"])
        except regex.error as exc:
            raise PatternError(f"custom_patterns.{i}.pattern: {exc}") from exc
        if pattern.search("", timeout=PATTERN_TIMEOUT_S) is not None:
            raise PatternError(f"custom_patterns.{i}.pattern: matches the empty string")
        replacement = item.get("replacement") or f"[{item['name'].upper()}]"
        compiled.append(CustomPattern(item["name"], pattern, replacement))
    return compiled


class Redactor:
    def __init__(self, custom: Iterable[CustomPattern] = ()) -> None:
        self.custom = list(custom)

    def redact(self, text: str) -> Redaction:
        counts: dict[str, int] = {}
        out = text
        for det in BUILTIN:

            def repl(m: re.Match[str], det: Detector = det) -> str:
                if det.check is not None and not det.check(m.group(0)):
                    return m.group(0)
                counts[det.name] = counts.get(det.name, 0) + 1
                return det.replacement

            out = det.pattern.sub(repl, out)
        for cp in self.custom:
            try:
                out, n = cp.pattern.subn(cp.replacement, out, timeout=PATTERN_TIMEOUT_S)
            except TimeoutError:
                # Fail closed: a pattern that cannot finish on this text hides the whole text from analysis.
                out, n = f"[{cp.name.upper()}_TIMEOUT]", 1
            if n:
                counts[cp.name] = counts.get(cp.name, 0) + n
        return Redaction(out, counts)


DEFAULT_REDACTOR = Redactor()
