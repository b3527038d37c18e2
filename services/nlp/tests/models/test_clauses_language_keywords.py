"""Clause splitting on sentence periods, per-clause language routing of mixed texts, language detection of
full-width Latin and incidental kana, and keywords of texts in other languages."""

from __future__ import annotations

import numpy as np
import pytest

from cx_nlp.evaluation import sample_codebook
from cx_nlp.models import keywords as kw
from cx_nlp.models import langid
from cx_nlp.models.api import Pipeline
from cx_nlp.models.components import HashingEncoder, LexiconSentiment
from cx_nlp.models.pipeline import CxPipeline
from cx_nlp.models.text import clauses


def _clauses(text: str) -> list[str]:
    return [text[s:e] for s, e in clauses(text)]


# -- clauses -----------------------------------------------------------------------------------------------------


def test_a_sentence_period_ends_a_clause() -> None:
    text = "The delivery was late. The staff were friendly and the price was great."
    assert _clauses(text) == ["The delivery was late", "The staff were friendly and the price was great"]


def test_a_period_before_cjk_or_a_digit_ends_a_clause() -> None:
    assert _clauses("Good.服务很差") == ["Good", "服务很差"]
    assert _clauses("It broke after a week. 2 days later it was replaced.") == [
        "It broke after a week",
        "2 days later it was replaced",
    ]


def test_numbers_keep_their_commas_periods_and_colons() -> None:
    text = "I paid $1,299.99 for it, and it broke at 10:30 on day 2."
    assert _clauses(text) == ["I paid $1,299.99 for it", "and it broke at 10:30 on day 2"]


def test_abbreviations_do_not_end_a_clause() -> None:
    text = "Mr. Smith from the U.S. office sent parts, e.g. the lid. It fits."
    assert _clauses(text) == ["Mr. Smith from the U.S. office sent parts", "e.g. the lid", "It fits"]


@pytest.mark.parametrize("word", ["But", "BUT", "However", "however", "Although", "Though"])
def test_connectives_split_whatever_their_case(word: str) -> None:
    text = f"The screen is sharp {word} the battery is weak"
    assert _clauses(text) == ["The screen is sharp", "the battery is weak"]


def test_a_connective_after_a_period_is_no_clause_of_its_own() -> None:
    text = "The delivery was late. However, the staff were friendly. But the price was high."
    assert _clauses(text) == ["The delivery was late", "the staff were friendly", "the price was high"]


def test_chinese_clauses_and_spans_are_unchanged() -> None:
    text = "物流很快，但是包装破损了。Service was fine but the box was crushed!"
    assert _clauses(text) == ["物流很快", "包装破损了", "Service was fine", "the box was crushed"]
    assert list(clauses("东西还行，但是快递一周了还没到，客服也不回复")) == [(0, 4), (7, 15), (16, 22)]


def test_sentences_get_their_own_aspect_span_and_polarity(tiny: Pipeline) -> None:
    nodes, primary = sample_codebook()
    cb = tiny.compile_codebook(nodes, primary)
    text = "The delivery was late. The staff were friendly and the price was great."
    (p,) = tiny.analyze([text], frozenset({"aspects"}), cb)
    by_node = {a.node_id: a for a in p.aspects}
    late, staff = by_node["prod.delivery.late"], by_node["svc.store.staff"]
    assert text[late.start : late.end] == late.opinion == "The delivery was late"
    assert (staff.start, staff.end) != (late.start, late.end)
    assert late.polarity != "positive"
    assert staff.polarity == "positive"


# -- per-clause language ------------------------------------------------------------------------------------------


class _Recording:
    """A sentiment model that remembers its calls (and answers like the lexicon model)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._lexicon = LexiconSentiment()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self._lexicon(texts)


def _recording_pipeline() -> tuple[CxPipeline, _Recording, _Recording]:
    zh, en = _Recording(), _Recording()
    pipe = CxPipeline(
        name="rec", version="1", zh_sentiment=zh, en_sentiment=en, encoder=HashingEncoder(128), aspect_threshold=0.75
    )
    return pipe, zh, en


def test_clauses_of_a_mixed_text_go_to_their_own_languages_model() -> None:
    pipe, zh, en = _recording_pipeline()
    nodes, primary = sample_codebook()
    cb = pipe.compile_codebook(nodes, primary)
    texts = [
        "The food and the delivery were great, really fast. 但是服务员态度太差了",
        "物流很快，包装也很好，但是 the box was crushed",
        "物流太慢了，客服也不回复",
        "The delivery was late. The staff were friendly.",
    ]
    zh.calls.clear()
    en.calls.clear()
    preds = pipe.analyze(texts, frozenset({"aspects"}), cb)
    assert [p.language for p in preds] == ["en", "zh-Hans", "zh-Hans", "en"]
    # one batched clause call and one whole-text call per model
    assert len(zh.calls) == 2 and len(en.calls) == 2
    zh_clauses, en_clauses = zh.calls[0], en.calls[0]
    assert "服务员态度太差了" in zh_clauses and "服务员态度太差了" not in en_clauses
    assert "the box was crushed" in en_clauses and "the box was crushed" not in zh_clauses
    assert {"物流很快", "物流太慢了", "客服也不回复"} <= set(zh_clauses)
    assert {"The delivery was late", "The staff were friendly", "The food and the delivery were great"} <= set(
        en_clauses
    )
    # the whole-text path keeps the text's language
    assert zh.calls[1] == texts[1:3] and en.calls[1] == [texts[0], texts[3]]


def test_clause_languages() -> None:
    text = "The food was great. 但是服务员态度太差了"
    spans = list(clauses(text))
    assert langid.clause_languages(text, spans, "en") == ["en", "zh-Hans"]
    trad = "物流很快，但是 the box was crushed. 服務員態度太差了"
    assert langid.detect(trad)[0] == "zh-Hant"
    assert langid.clause_languages(trad, list(clauses(trad)), "zh-Hant") == ["zh-Hant", "en", "zh-Hant"]
    # single-script texts: the text's language for every clause
    assert langid.clause_languages("物流很快，包装破损了", [(0, 4), (5, 10)], "zh-Hans") == ["zh-Hans"] * 2
    assert langid.clause_languages("我买的iPhone坏了，很失望", [(0, 11), (12, 15)], "zh-Hans") == ["zh-Hans"] * 2
    assert langid.clause_languages("x", [], "en") == []


@pytest.mark.slow
def test_a_chinese_clause_in_an_english_text_keeps_its_polarity(default: Pipeline) -> None:
    nodes, primary = sample_codebook()
    cb = default.compile_codebook(nodes, primary)
    text = "The food and the delivery were great, really fast. 但是服务员态度太差了"
    (p,) = default.analyze([text], frozenset({"aspects", "language"}), cb)
    assert p.language == "en"
    staff = next(a for a in p.aspects if a.node_id == "svc.store.staff")
    assert staff.opinion == "服务员态度太差了"
    assert staff.polarity == "negative"
    delivery = next(a for a in p.aspects if a.node_id.startswith("prod.delivery"))
    assert delivery.polarity == "positive"


# -- language detection -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我买的ＩＰＨＯＮＥ坏了", "zh-Hans"),
        ("我買的ＩＰＨＯＮＥ壞了", "zh-Hant"),
        ("我の店很好", "zh-Hans"),
        ("迈克尔・乔丹的球鞋很好", "zh-Hans"),
        ("Ｔｈｅ ｄｅｌｉｖｅｒｙ ｗａｓ ｌａｔｅ", "en"),
        ("このお店のサービスはとても良かったです", "other"),
        ("東京駅に行く", "other"),
        ("ありがとう", "other"),
        ("배송이 너무 느려요", "other"),
    ],
)
def test_language_of_full_width_latin_and_kana(text: str, expected: str) -> None:
    assert langid.detect(text)[0] == expected


# -- keywords of other languages ----------------------------------------------------------------------------------


def _words(text: str, k: int = 10) -> list[str]:
    return [w for w, _ in kw.keywords(text, langid.detect(text)[0], k)]


def test_keywords_of_french_are_whole_words_without_stopwords() -> None:
    assert sorted(_words("Le produit est arrivé cassé")) == ["arrivé", "cassé", "produit"]
    assert sorted(_words("El envío llegó tarde y el producto está roto")) == [
        "envío",
        "llegó",
        "producto",
        "roto",
        "tarde",
    ]
    assert "die" not in _words("Die Lieferung war sehr langsam und das Paket ist beschädigt")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("배송이 너무 느려요, 배송이 엉망이에요", "배송이"),
        ("このお店のサービスはとても良かったです", "サービス"),
        ("Доставка была очень медленной, доставка ужасная", "доставка"),
        ("डिलीवरी बहुत धीमी", "डिलीवरी"),  # vowel signs are combining marks, not `\\w`
    ],
)
def test_keywords_of_other_scripts(text: str, expected: str) -> None:
    words = _words(text)
    assert expected in words and len(expected) > 1
    assert "너무" not in words and "очень" not in words


def test_numbers_are_no_keywords() -> None:
    assert _words("12345") == []
    assert _words("12345 67890 !!!") == []
    assert "12345" not in _words("Order 12345 never arrived")
    assert "12345" not in kw.terms("Заказ 12345 не пришел", "other")
    assert kw.terms("Le produit est arrivé cassé", "other") == ["produit", "arrivé", "cassé"]


def test_keywords_through_the_pipeline(tiny: Pipeline) -> None:
    preds = tiny.analyze(["Le produit est arrivé cassé", "배송이 너무 느려요", "12345"], frozenset({"keywords"}))
    assert [sorted(w for w, _ in p.keywords) for p in preds] == [
        ["arrivé", "cassé", "produit"],
        ["느려요", "배송이"],
        [],
    ]
