"""The redactor's fast scan (patterns tried only on runs of number-like characters) finds exactly what scanning the
whole text with each built-in pattern in turn finds; the prefilters never skip a text that holds PII."""

import random
import re
from collections.abc import Sequence

import pytest

from cx_ingest.privacy import redact
from cx_ingest.privacy.redact import BUILTIN, CustomPattern, PatternError, Redactor, compile_custom


def splice(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    pieces, last = [], 0
    for start, end in spans:
        pieces += (text[last:start], replacement)
        last = end
    return "".join(pieces) + text[last:]


def reference(text: str, custom: Sequence[CustomPattern] = ()) -> tuple[str, dict[str, int]]:
    """The plain algorithm: every built-in pattern over the whole text (the number detectors over its full-width
    folded form, offsets being the same), in order, each on the previous output; then each tenant pattern, its
    replacement spliced in as it is."""
    counts: dict[str, int] = {}
    for det in BUILTIN:
        scan = redact.fold_fullwidth(text) if det.min_digits else text  # min_digits: a number detector
        spans = [m.span() for m in det.pattern.finditer(scan) if det.check is None or det.check(m.group(0))]
        if spans:
            counts[det.name] = counts.get(det.name, 0) + len(spans)
        text = splice(text, spans, det.replacement)
    for cp in custom:
        spans = [m.span() for m in cp.pattern.finditer(text)]
        if spans:
            counts[cp.name] = counts.get(cp.name, 0) + len(spans)
        text = splice(text, spans, cp.replacement)
    return text, counts


def widen(text: str) -> str:
    """The full-width form of every printable ASCII character (as a Chinese input method in full-width mode types)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


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
    "１３８-1234-５６７８",
    "＋８６ １３９ １２３４ ５６７８",
    "０１０－６２３４５６７８",
    "（０２１）６２３４５６７８",
    "ＳＯ２０２６１１０１００１２３",
    widen(id_card("11010519491231002")),
    widen(id_card("11010519900307005")),  # check digit Ｘ
    widen(id_card("11010519900307005")).lower(),  # ｘ
    widen(luhn_complete("622202123456789012")),
    widen(luhn_complete("4111 1111 1111 111")),
    "+86 13812345678",  # 8613812345678 passes Luhn
    "+86-138-1234-5678",
    "0086 13812345678",
    "＋",
    "－",
    "．",
    "（",
    "）",
    "Ｘ",
    "ｘ",
    "Ａ",
    "，",
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


def test_full_width_and_mixed_width_numbers_are_redacted_like_their_half_width_form():
    """Widening any characters of a text (outside e-mail addresses, which are matched as typed) changes neither
    what is found nor which characters are replaced."""
    rng = random.Random(20261202)
    redactor = Redactor()
    pieces = [f for f in FRAGMENTS if "@" not in f]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10)))
        mixed = "".join(widen(c) if rng.random() < 0.5 else c for c in text)
        want, got = redactor.redact(text), redactor.redact(mixed)
        assert got.counts == want.counts, mixed
        assert redact.fold_fullwidth(got.text) == redact.fold_fullwidth(want.text), mixed


def test_full_width_phone_id_card_and_bank_card():
    redactor = Redactor()
    ident, ident_x = id_card("11010519491231002"), id_card("11010519900307005")
    card = luhn_complete("622202123456789012")
    cases = {
        "电话１３８１２３４５６７８": ("电话[PHONE]", "phone"),
        "电话１３８1234５６７８。": ("电话[PHONE]。", "phone"),
        "电话１３８－１２３４－５６７８，谢谢": ("电话[PHONE]，谢谢", "phone"),
        f"身份证{widen(ident)}": ("身份证[ID_CARD]", "id_card"),
        f"身份证{widen(ident_x)}号": ("身份证[ID_CARD]号", "id_card"),
        f"身份证{widen(ident_x).lower()}": ("身份证[ID_CARD]", "id_card"),
        f"身份证{widen(ident[:9])}{ident[9:]}": ("身份证[ID_CARD]", "id_card"),
        f"卡号{widen(card)}": ("卡号[BANK_CARD]", "bank_card"),
        f"卡号{card[:8]}{widen(card[8:])}": ("卡号[BANK_CARD]", "bank_card"),
        "座机（０１０）６２３４５６７８": ("座机[PHONE]", "phone"),
    }
    for text, (want, name) in cases.items():
        got = redactor.redact(text)
        assert (got.text, got.counts) == (want, {name: 1}), text
        assert (got.text, got.counts) == reference(text)
    # The checksums still hold: a wrong check digit or Luhn digit, or an order number, is left alone.
    bad_ident = ident[:-1] + ("1" if ident[-1] != "1" else "2")
    bad_card = card[:-1] + str((int(card[-1]) + 1) % 10)
    for text in (
        f"身份证{widen(bad_ident)}",
        f"流水号{widen(bad_card)}",
        "订单号ＳＯ２０２６１１０１００１",
        "编号１２３４５６７８９０１",
    ):
        assert redactor.redact(text).text == text


def test_cn_mobile_with_country_prefix_is_one_phone_number():
    assert redact.luhn_valid("8613812345678")  # what made these "+[BANK_CARD]"
    redactor = Redactor()
    for number in (
        "+86 13812345678",
        "+86-138-1234-5678",
        "0086 13812345678",
        "+8613812345678",
        "008613812345678",
        "+86 138 1234 5678",
        "＋８６ １３８１２３４５６７８",
        "００８６－１３８－１２３４－５６７８",
    ):
        text = f"我的手机号是{number}，请尽快联系我。"
        got = redactor.redact(text)
        assert (got.text, got.counts) == ("我的手机号是[PHONE]，请尽快联系我。", {"phone": 1}), number
        assert (got.text, got.counts) == reference(text)


LITERAL_REPLACEMENTS = [r"[VIP\d]", r"\1", r"\g<x>", r"\g<0>", r"C:\x", "\\", r"\n", r"a\\b", "$1", "{0}", "[会员]"]


def test_stored_patterns_saved_before_a_check_existed_still_compile():
    (stored,) = compile_custom([{"name": "gap", "pattern": r"(?<=\b)"}], strict=False)
    assert stored.subn("ab") == ("[GAP]ab[GAP]", 2)  # what it did when it was saved


def test_ordinary_counted_repeats_are_allowed():
    assert [cp.name for cp in compile_custom([{"name": "member", "pattern": r"[A-Z]{2}\d{6,10}-\d{4}"}])] == ["member"]


def test_custom_replacements_are_literal_text():
    for replacement in LITERAL_REPLACEMENTS:
        item = {"name": "member", "pattern": r"VIP-(?P<x>\d{6})", "replacement": replacement}
        got = Redactor(compile_custom([item])).redact("会员号 VIP-778899，电话13812345678")
        assert (got.text, got.counts) == (f"会员号 {replacement}，电话[PHONE]", {"member": 1, "phone": 1}), replacement


def test_fast_scan_and_tenant_patterns_match_the_plain_algorithm():
    rng = random.Random(20261203)
    patterns = [r"VIP-\d{6}", r"(a)(b)?c", r"SO\d+", r"\[PHONE\]", r"x+", r"(?P<n>\d)\d", "配送"]
    fragments = [*FRAGMENTS, "VIP-778899", "abc", "ac", "xx"]
    for _ in range(1000):
        chosen = rng.sample(patterns, rng.randint(1, 3))
        items = [
            {"name": f"p{i}", "pattern": pattern, "replacement": rng.choice([*LITERAL_REPLACEMENTS, None])}
            for i, pattern in enumerate(chosen)
        ]
        custom = compile_custom(items)
        text = "".join(rng.choice(fragments) for _ in range(rng.randint(1, 10)))
        got = Redactor(custom).redact(text)
        assert (got.text, got.counts) == reference(text, custom), (text, items)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(unclosed", "missing )"),
        ("a*", "matches the empty string"),
        ("(?a)(?u)x", "mutually incompatible"),  # a ValueError, not regex.error
        ("(?R)?^", "does not finish on the empty string"),  # the empty-string probe times out
        ("(?:(?:a{1000}){1000}){1000}", "multiply beyond"),  # compiling it would exhaust memory
        (r"(?<=\b)", "matches the empty string"),  # zero-width: would insert the replacement at every boundary
        (r"\d*(?=,)", "matches the empty string"),
    ],
)
def test_bad_patterns_are_refused_when_compiled(pattern: str, message: str):
    items = [{"name": "ok", "pattern": r"VIP-\d{6}"}, {"name": "bad", "pattern": pattern, "replacement": r"\1"}]
    with pytest.raises(PatternError) as refused:
        compile_custom(items)
    field, detail = str(refused.value).split(": ", 1)
    assert field == "custom_patterns.1.pattern"
    assert message in detail


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
