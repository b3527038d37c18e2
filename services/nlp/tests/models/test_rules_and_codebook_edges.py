"""Edge cases of the rule layer and the codebook matcher: Latin words next to Han characters, hotline numbers inside
longer digit runs, bare "news"/"press", negated threats, and a keyword hit on a shallow node under a deeper
embedding match."""

from __future__ import annotations

import pytest

from cx_nlp.evaluation import sample_codebook
from cx_nlp.models.api import CodebookNodeSpec, Pipeline
from cx_nlp.models.rules import intent_rule_scores
from cx_nlp.models.text import normalize

ASPECTS = frozenset({"aspects"})


def _rule(text: str, intent: str) -> float:
    return intent_rule_scores(normalize(text))[intent]


def _edge_codebook() -> list[CodebookNodeSpec]:
    return [
        CodebookNodeSpec("svc", "", 1, {"zh-Hans": "服务", "en": "Service"}),
        CodebookNodeSpec("svc.store", "svc", 2, {"zh-Hans": "门店服务"}),
        CodebookNodeSpec("svc.store.speed", "svc.store", 3, {"zh-Hans": "上菜速度"}, examples=("上菜太慢了",)),
        CodebookNodeSpec("svc.store.clean", "svc.store", 3, {"zh-Hans": "卫生"}, keywords=("脏",)),
        CodebookNodeSpec("net", "", 1, {"zh-Hans": "网络"}),
        CodebookNodeSpec("net.signal", "net", 2, {"zh-Hans": "信号"}),
        CodebookNodeSpec("net.signal.5g", "net.signal", 3, {"zh-Hans": "5G网络", "en": "5G"}, keywords=("5G",)),
    ]


# -- codebook: Latin keywords next to Han characters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("我的delivery太late了", "prod.delivery.late"),
        ("快递LATE了三天", "prod.delivery.late"),
        ("这次又delayed了", "prod.delivery.late"),
        ("门店queue太长", "svc.store.queue"),
    ],
)
def test_latin_keyword_next_to_han(tiny: Pipeline, text: str, node: str) -> None:
    nodes, primary = sample_codebook()
    cb = tiny.compile_codebook(nodes, primary)
    (p,) = tiny.analyze([text], ASPECTS, cb)
    assert not p.unmatched
    assert node in {a.node_id for a in p.aspects}


def test_latin_keyword_boundaries_still_hold(tiny: Pipeline) -> None:
    cb = tiny.compile_codebook(_edge_codebook(), "zh-Hans")
    preds = tiny.analyze(["5g信号差", "信号5G太差", "the 15g pack", "the 5gx model"], ASPECTS, cb)
    assert [a.node_id for a in preds[0].aspects] == ["net.signal.5g"]
    assert [a.node_id for a in preds[1].aspects] == ["net.signal.5g"]
    assert preds[2].unmatched and preds[3].unmatched
    nodes, primary = sample_codebook()
    demo = tiny.compile_codebook(nodes, primary)
    (latent,) = tiny.analyze(["the colour is latent"], ASPECTS, demo)
    assert "prod.delivery.late" not in {a.node_id for a in latent.aspects}


def test_chinese_keywords_still_match_as_substrings(tiny: Pipeline) -> None:
    cb = tiny.compile_codebook(_edge_codebook(), "zh-Hans")
    (p,) = tiny.analyze(["服务员很脏"], ASPECTS, cb)
    assert [a.node_id for a in p.aspects] == ["svc.store.clean"]
    assert p.aspects[0].matched_by == "keyword"


# -- codebook: the deepest match wins across keyword and embedding --------------------------------------------------


def test_embedding_leaf_under_keyword_node_wins(tiny: Pipeline) -> None:
    cb = tiny.compile_codebook(_edge_codebook(), "zh-Hans")
    (p,) = tiny.analyze(["服务员上菜太慢了"], ASPECTS, cb)
    assert [a.node_id for a in p.aspects] == ["svc.store.speed"]
    (hit,) = p.aspects
    assert hit.matched_by == "keyword+embedding"
    assert hit.path == ["服务", "门店服务", "上菜速度"]
    assert 0.0 < hit.confidence <= 0.99
    # no embedding match above the threshold: the shallow keyword hit stays
    (q,) = tiny.analyze(["服务很好"], ASPECTS, cb)
    assert [(a.node_id, a.matched_by) for a in q.aspects] == [("svc", "keyword")]


# -- rules: Latin words next to Han characters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我要找lawyer告你们", "legal_threat"),
        ("我要向FTC投诉", "regulator_threat"),
        ("再不处理就去BBB举报", "regulator_threat"),
        ("我要cancel subscription了", "churn_risk"),
        ("这个太terrible了", "complaint"),
    ],
)
def test_english_rule_words_next_to_han(text: str, intent: str) -> None:
    assert _rule(text, intent) >= 0.6


def test_english_rule_words_keep_their_boundaries() -> None:
    assert _rule("the ftcx product line", "regulator_threat") == 0.0
    assert _rule("lawyerly prose", "legal_threat") == 0.0
    assert _rule("我买了pressure cooker", "media_threat") == 0.0


# -- rules: hotline numbers, bare news / press ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["我的订单号是 8812345990", "Order #123150", "快递单号123456789", "电话 0212315888", "tracking 912345"],
)
def test_hotline_numbers_inside_longer_digit_runs(text: str) -> None:
    assert _rule(text, "regulator_threat") == 0.0


@pytest.mark.parametrize(
    "text",
    ["再这样我就打12315投诉你们", "我要打12345热线", "已经拨打了12345。", "I will call 12315 about this"],
)
def test_hotline_numbers_on_their_own(text: str) -> None:
    assert _rule(text, "regulator_threat") >= 0.6


@pytest.mark.parametrize(
    "text",
    [
        "good news, it arrived",
        "press the button twice",
        "I read the news about your new store",
        "the media player works fine",
        "please press and hold",
    ],
)
def test_bare_news_and_press_are_no_media_threat(text: str) -> None:
    assert _rule(text, "media_threat") == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "I'm going to the press with this",
        "I will contact the media",
        "we'll go to the local news",
        "I'm calling a reporter",
        "I will tell the newspapers",
        "I'll post it on the news",
        "talking to journalists tomorrow",
        "我要找媒体曝光",
        "我要联系记者",
    ],
)
def test_media_threats_in_context(text: str) -> None:
    assert _rule(text, "media_threat") >= 0.6


# -- rules: negated threats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我们不会起诉", "legal_threat"),
        ("我不会投诉的，很满意", "complaint"),
        ("不用报警，已经解决了", "legal_threat"),
        ("没必要找律师", "legal_threat"),
        ("我不打算向消协反映", "regulator_threat"),
        ("别担心，不会曝光的", "media_threat"),
        ("I won't sue", "legal_threat"),
        ("no need to call a lawyer", "legal_threat"),
        ("we will not be taking legal action", "legal_threat"),
        ("I'm not going to contact the media", "media_threat"),
        ("I won't report you to the BBB", "regulator_threat"),
        ("I can't complain, great service", "complaint"),
        ("no complaints at all", "complaint"),
    ],
)
def test_negated_threats_are_dropped(text: str, intent: str) -> None:
    assert _rule(text, intent) < 0.3


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("不解决我就起诉", "legal_threat"),
        ("你们不退款我就去法院", "legal_threat"),
        ("不给说法的话我要投诉", "complaint"),
        ("别逼我报警", "legal_threat"),
        ("我不得不投诉", "complaint"),
        ("特别想投诉你们", "complaint"),
        ("if you don't refund I'll sue", "legal_threat"),
        ("if you do not fix this I will contact my lawyer", "legal_threat"),
        ("don't make me call my lawyer", "legal_threat"),
        ("I won't hesitate to sue", "legal_threat"),
        ("I won't sue, but if this happens again I'll call a lawyer", "legal_threat"),
        ("我不会起诉，但是我要去消协投诉", "regulator_threat"),
        ("no reply for two weeks so I filed a complaint", "complaint"),
        ("我一直没有收到退款", "complaint"),
    ],
)
def test_genuine_threats_survive_negation_handling(text: str, intent: str) -> None:
    assert _rule(text, intent) >= 0.6


def test_negated_threats_end_to_end(tiny: Pipeline) -> None:
    texts = ["我们不会起诉", "我不会投诉的，很满意", "I won't sue", "不解决我就起诉"]
    a, b, c, d = tiny.analyze(texts, frozenset({"intents", "sentiment"}))
    assert a.intents["legal_threat"] < 0.3
    assert b.intents["complaint"] < 0.5 < b.intents["praise"]
    assert c.intents["legal_threat"] < 0.3
    assert d.intents["legal_threat"] > 0.6
