"""The redactor's fast scan (patterns tried only on runs of number-like characters) finds exactly what scanning the
whole text with each built-in pattern in turn finds; the prefilters never skip a text that holds PII."""

import random
import re

from cx_ingest.privacy import redact
from cx_ingest.privacy.redact import BUILTIN, Redactor


def reference(text: str) -> tuple[str, dict[str, int]]:
    """The plain algorithm: every built-in pattern over the whole text, in order, each on the previous output."""
    counts: dict[str, int] = {}
    for det in BUILTIN:

        def repl(m, det=det):
            if det.check is not None and not det.check(m.group(0)):
                return m.group(0)
            counts[det.name] = counts.get(det.name, 0) + 1
            return det.replacement

        text = det.pattern.sub(repl, text)
    return text, counts


def luhn_complete(prefix: str) -> str:
    for d in "0123456789":
        if redact.luhn_valid("".join(c for c in prefix + d if c.isdigit())):
            return prefix + d
    raise AssertionError


def id_card(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, redact._ID_WEIGHTS, strict=True))
    return first17 + redact._ID_CHECK[total % 11]


FRAGMENTS = [
    "配送太慢了，",
    "The delivery was late. ",
    " ",
    "\u3000",
    "-",
    ".",
    "(",
    ")",
    "+",
    "x",
    "X",
    "abc",
    "_",
    "@",
    "订单号 SO2026110100123 ",
    "13812345678",
    "138-1234-5678",
    "+86 139 1234 5678",
    "008613912345678",
    "010-62345678",
    "(021)62345678-123",
    "+44 20 7946 0958",
    "+1 (415) 555-0100",
    "0044 20 7946 0958",
    "li.lei@example.cn",
    "a+b@mail.example.com",
    "first.last@sub.example.co.uk",
    "bob@@x.io",
    "user@localhost ",
    "%",
    "com",
    id_card("11010519491231002"),
    id_card("44030619900101123").lower(),
    luhn_complete("622202123456789012"),
    luhn_complete("4111 1111 1111 111"),
    luhn_complete("6222-0212-3456-7890-12"),
    "1234567890123456",
    "2026-11-01 10:30",
    "3.1415926535",
    "１３８１２３４５６７８",  # full-width digits are digits too
]


def test_fast_scan_matches_the_plain_algorithm_on_generated_texts():
    rng = random.Random(20261201)
    redactor = Redactor()
    for _ in range(4000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 14)))
        got = redactor.redact(text)
        assert (got.text, got.counts) == reference(text), text


def test_known_pii_and_lookalikes():
    redactor = Redactor()
    card = luhn_complete("622202123456789012")
    text = (
        f"电话138-1234-5678，座机010-62345678，邮箱li.lei@example.cn，身份证{id_card('11010519491231002')}，"
        f"卡号{card}，国际 +44 20 7946 0958。订单号SO20261101001，流水号{card[:-1]}{(int(card[-1]) + 1) % 10}"
    )
    got = redactor.redact(text)
    assert got.text == (
        "电话[PHONE]，座机[PHONE]，邮箱[EMAIL]，身份证[ID_CARD]，卡号[BANK_CARD]，国际 [PHONE]。"
        f"订单号SO20261101001，流水号{card[:-1]}{(int(card[-1]) + 1) % 10}"
    )
    assert got.counts == {"phone": 3, "email": 1, "id_card": 1, "bank_card": 1}
    assert (got.text, got.counts) == reference(text)
    plain = "没有任何号码的反馈：等了三天，客服态度很差。"
    assert redactor.redact(plain).text == plain


def test_digit_count_equals_the_regex_count_for_every_digit_of_every_script():
    digits = [chr(c) for c in range(0x110000) if chr(c).isdecimal()]
    assert all(redact._MAYBE_NON_ASCII_DIGIT.match(d) for d in digits if not d.isascii())
    rng = random.Random(5)
    pieces = [*FRAGMENTS, *digits, "〇", "一二三", "，", "é", "²", "½", "Ⅻ"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        assert redact.digit_count(text) == len(re.findall(r"\d", text)), text


def test_number_runs_are_the_run_pattern_matches_with_enough_digits():
    rng = random.Random(9)
    for _ in range(4000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 14)))
        want = [
            (m.start(), m.end(), n) for m in redact._RUN.finditer(text) if (n := len(re.findall(r"\d", m.group()))) >= 8
        ]
        assert redact._number_runs(text) == want, text
