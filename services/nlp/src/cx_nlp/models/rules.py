# ruff: noqa: E501  (long regular-expression alternations read best on one line)
"""Rule layers: intent lexicons (Chinese + English), need layer (pain / itch / delight) and a small sentiment lexicon.

All patterns run on `text.normalize(...)` output: lower case, half-width ASCII, Simplified characters, so one
Chinese pattern covers both scripts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cx_nlp.models.api import INTENTS

STRONG, MEDIUM, WEAK = 0.9, 0.65, 0.35

# Latin word characters. Python's `\b` counts Han characters as word characters too, so there is no boundary
# between 的 and "delivery" in 我的delivery: every `\b` in the patterns here stands for a boundary between a Latin
# letter/digit and anything else (Han characters, punctuation, spaces, the ends of the text).
LATIN_WORD = "0-9A-Za-z_\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
LATIN_BEFORE = rf"(?<![{LATIN_WORD}])"  # no Latin word character right before
LATIN_AFTER = rf"(?![{LATIN_WORD}])"  # no Latin word character right after
_LATIN_B = rf"(?:{LATIN_BEFORE}(?=[{LATIN_WORD}])|(?<=[{LATIN_WORD}]){LATIN_AFTER})"


def latin_re(pattern: str) -> re.Pattern[str]:
    """Compile `pattern` with every `\\b` read as a Latin word boundary (Han characters count as non-word)."""
    return re.compile(re.sub(r"(?<!\\)\\b", lambda _m: _LATIN_B, pattern))


_ZH_NEGATORS = ("不", "没", "别", "勿", "未", "无")
_EN_NEGATION = latin_re(
    r"\b(?:not|never|no|don't|dont|won't|wont|didn't|didnt|isn't|wasn't|can't|cannot)\W+(?:\w+\W+){0,2}$"
)

# Negated threats and complaints ("我们不会起诉", "I won't sue", "no need to call a lawyer"): a negator at most a few
# characters / words before the cue, in the same clause, drops the hit; a conditional ("不解决我就起诉", "if you don't
# refund I'll sue", "don't make me call my lawyer", "I won't hesitate to sue") keeps it.
_THREAT_CLAUSE_BREAK = latin_re(r"[，,。.!！？?；;：:\n\r]|\b(?:but|however|although|though)\b|但|可是|不过")
_ZH_THREAT_NEGATOR = re.compile(
    r"不会|不要|不用|不必|不需要|不需|无需|无须|没必要|不打算|不准备|不想|不是要|不是想|不至于|不再|没有|没打算|没想|"
    r"没什么|并没|并不|绝不|决不|从不|从没|(?<![特分区级个类识告差性鉴辨])别"
)
_ZH_THREAT_WINDOW = 6  # characters between the end of the negator and the cue
_ZH_THREAT_KEEP = re.compile(r"就|才|的话|否则|不然|要不|逼|我要|我会|要去|会去|只能|只好|必须|一定|肯定")
_ZH_CONDITIONAL = re.compile(r"如果|要是|假如|若是|万一|再")
_EN_THREAT_NEGATOR = latin_re(
    r"\b(?:won't|wont|wouldn't|don't|dont|didn't|didnt|doesn't|isn't|wasn't|aren't|can't|cant|cannot|never|not|no|"
    r"nothing)\b((?:[^a-z0-9']+[a-z0-9']+){0,4})[^a-z0-9']*$"
)
_EN_THREAT_KEEP = latin_re(
    r"\b(?:i'll|i will|we'll|we will|i'm going|we're going|then|or|else|so|make me|force me|push me|hesitate|"
    r"afraid|only|until|unless)\b"
)
_EN_CONDITIONAL = latin_re(r"\b(?:if|unless|otherwise)\b")


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    weight: float
    negatable: bool = False  # skip the hit when a negator stands right before it
    threat: bool = False  # skip the hit when the threat / complaint is negated ("我不会投诉", "I won't sue")


def _rules(*items: tuple[str, float] | tuple[str, float, bool]) -> tuple[_Rule, ...]:
    out = []
    for item in items:
        pattern, weight = item[0], item[1]
        negatable = bool(item[2]) if len(item) > 2 else False
        out.append(_Rule(latin_re(pattern), weight, negatable))
    return tuple(out)


def _threat_rules(*items: tuple[str, float]) -> tuple[_Rule, ...]:
    return tuple(_Rule(latin_re(pattern), weight, threat=True) for pattern, weight in items)


INTENT_RULES: dict[str, tuple[_Rule, ...]] = {
    "purchase_intent": _rules(
        (
            r"想买|准备买|打算买|考虑入手|想入手|下单|回购|再买|再来一|推荐给|求购|怎么买|哪里(能|可以)?买|有货吗|什么时候(有货|到货|开售)",
            MEDIUM,
            True,
        ),
        (
            r"\b(want|going|plan(ning)?|ready) to (buy|order|purchase|get)\b|\bbuy (it )?again\b|\border (it )?again\b",
            MEDIUM,
            True,
        ),
        (
            r"\bwhere can i (buy|get)\b|\bhow (can|do) i (buy|order)\b|\binterested in (buying|purchasing)\b|\bwill recommend\b",
            MEDIUM,
            True,
        ),
        (r"\b(will|would) (definitely )?(buy|purchase|order)\b|\bin stock\b|\bpre-?order\b", WEAK, True),
    ),
    "hesitation": _rules(
        (r"犹豫|纠结|再看看|观望|要不要买|值不值|值得买吗|还在比较|拿不定|不确定要不要", MEDIUM),
        (r"有点贵|太贵|贵了点|考虑一下", WEAK),
        (
            r"\bnot sure (if|whether|about)\b|\bhesitat|\bon the fence\b|\bsecond thoughts\b|\bundecided\b",
            MEDIUM,
        ),
        (
            r"\btoo expensive\b|\bworth it\?|\bstill comparing\b|\bthinking (about|of) (it|buying)\b|\bcan't decide\b",
            WEAK,
        ),
    ),
    "churn_risk": _rules(
        (r"不会再买|再也不(买|来|用|会)|不再(购买|光顾|使用|续费)|不会再来|不会再用|最后一次", STRONG),
        (
            r"取消(订阅|会员|订单|服务|自动续费)|退订|销户|注销(账号|账户)?|退卡|解约|不续费|换(一)?家|转投|卸载|拉黑",
            STRONG,
        ),
        (
            r"\bcancel(l?ing)? (my |the )?(subscription|account|membership|plan|service|contract)\b|\bunsubscribe\b",
            STRONG,
        ),
        (
            r"\bclose my account\b|\bnever (buy|buying|order|ordering|shop|shopping|use|using|come|coming) (from |here |with |back )?",
            STRONG,
        ),
        (
            r"\b(won't|will not|wont) be (buying|ordering|shopping|coming back|back|using|renewing)\b|\bnot (going to )?renew",
            STRONG,
        ),
        (
            r"\bswitch(ing)? to (a |another )?\w+|\btake my business elsewhere\b|\bdone with (you|this company)\b|\blast time i\b",
            MEDIUM,
        ),
        (r"\bcompetitor\b|\buninstall", WEAK),
    ),
    "complaint": _threat_rules(
        (
            r"投诉|差评|举报|要个说法|给个说法|讨个说法|太坑|坑人|骗子|欺骗|垃圾|不处理|没人管|没人理|气死",
            STRONG,
        ),
        (
            r"\bcomplain(t|ts|ed|ing)?\b|\bunacceptable\b|\bscam\b|\brip-?off\b|\bworst\b|\bdisgusted\b|\bfile a (formal )?complaint\b",
            STRONG,
        ),
    )
    # problem descriptions stay complaints when negated ("一直没有退款", "I never got my refund")
    + _rules(
        (
            r"退款|退货|赔偿|不满|失望|态度(很|极|非常|太)?差|太差|很差|恶心|敷衍|推诿|拖延|一直没(有)?(到|回复|解决|人)",
            MEDIUM,
        ),
        (
            r"\brefund\b|\bterrible\b|\bawful\b|\bdisappoint(ed|ing)\b|\brude\b|\bridiculous\b|\bnever (received|arrived)\b",
            MEDIUM,
        ),
        (
            r"\bstill (haven't|hasn't|have not|not)\b|\bno one (helped|responded|answered)\b|\bwaste of\b|\bbroken\b|\bdefective\b",
            MEDIUM,
        ),
    ),
    "praise": _rules(
        (r"好评|点赞|超出预期|超预期|五星|太棒|非常满意|很满意|感谢|谢谢|贴心|给力|赞", MEDIUM, True),
        (r"满意|推荐|喜欢|专业|不错|很好|真好|好用|好吃|靠谱|耐心|热情|周到", WEAK, True),
        (
            r"\b(thank you|thanks|kudos|well done|five stars|5 stars)\b|\b(excellent|amazing|awesome|fantastic|outstanding)\b",
            MEDIUM,
            True,
        ),
        (
            r"\b(great|love|loved|perfect|helpful|recommend|wonderful|friendly|happy with|satisfied)\b",
            WEAK,
            True,
        ),
    ),
    "inquiry": _rules(
        (
            r"请问|想问|咨询|想了解|能否|是否|多久|什么时候|哪里|多少钱|怎么(办|弄|用|操作|申请|查|退|换)|如何",
            MEDIUM,
        ),
        (r"[?？]|吗$|吗[。.!！]|呢[?？]?$", WEAK),
        (
            r"^(how|what|when|where|which|who|why|can|could|is|are|do|does|will|would)\b.*\?|\bi('d| would) like to know\b",
            MEDIUM,
        ),
        (
            r"\bwondering\b|\binquir(y|e|ing)\b|\bquestion about\b|\bcan you (tell|let|confirm|help)\b|\bplease advise\b",
            MEDIUM,
        ),
        (r"\?", WEAK),
    ),
    "regulator_threat": _threat_rules(
        (
            r"(?<!\d)(?:12315|12345)(?!\d)|消协|消费者协会|消保委|市场监管|工商局|工商部门|监管部门|银保监|金融监管|向.{0,6}(监管|主管部门)(投诉|举报|反映)",
            STRONG,
        ),
        (
            r"\bbbb\b|\bbetter business bureau\b|\bftc\b|\bcfpb\b|\battorney general\b|\bombudsman\b|\btrading standards\b",
            STRONG,
        ),
        (
            r"\bconsumer (protection|affairs|rights)\b|\bregulator(s|y)?\b|\breport (you|this|them|your company) to\b",
            STRONG,
        ),
    ),
    "media_threat": _threat_rules(
        (r"媒体|曝光|记者|电视台|上新闻|发到网上|发网上|发微博|发抖音|发小红书|让大家都知道", STRONG),
        # "press", "news", "media" alone are no threat ("press the button", "good news"): a verb of going to them
        (
            r"\b(go(ing|ne)?|went|tak(e|ing) (this|it)|contact(ing|ed)?|call(ing|ed)?|tell(ing)?|told|talk(ing|ed)? to|speak(ing)? to|reach(ing)? out to|alert(ing)?|tip(ping)? off|writ(e|ing) to|send(ing)? (this|it) to|report(ing)? (this|it|you) to)\s+(to\s+)?((the|a|some|my|local|every|all the)\s+)*(media|press|news( outlets?| channels?| stations?)?|newspapers?|papers|reporters?|journalists?|tv( stations?)?)\b",
            STRONG,
        ),
        (
            r"\b(post|put|publish|shar)(e|s|ed|ing)?\s+(this|it|that|about (this|it))\s+(on|in|to)\s+the\s+(news|press|papers|media)\b|\b(this|you|your company)('ll| will) (be|end up) (on|in) the (news|papers)\b|\bmake (the )?headlines\b|\b(the )?(media|press) will (hear|know) about\b|\bgo(ing)? viral\b|\bexpose\b",
            STRONG,
        ),
        (
            r"\bsocial media\b|\bpost (this|it|about this) (online|everywhere|on)\b|\btell everyone\b|\btwitter\b|\breddit\b",
            MEDIUM,
        ),
    ),
    "legal_threat": _threat_rules(
        (r"律师|起诉|法院|诉讼|打官司|法律途径|法律责任|报警|仲裁|律师函", STRONG),
        (r"维权", MEDIUM),
        (
            r"\blawyer\b|\battorney\b|\bsue\b|\bsuing\b|\blawsuit\b|\blegal action\b|\bcourt\b|\bsmall claims\b|\bpolice\b",
            STRONG,
        ),
    ),
    "safety_risk": _rules(
        (
            r"受伤|烫伤|划伤|割伤|过敏|中毒|起火|着火|冒烟|爆炸|漏电|触电|变质|发霉|异物|虫子|安全隐患|拉肚子|腹泻|住院|进医院",
            STRONG,
        ),
        (
            r"\binjur(y|ed|ies)\b|\bhurt\b|\bburn(ed|t|s)?\b|\ballerg(y|ic)\b|\bpoison(ing|ed)?\b|\bcaught fire\b|\bexplod",
            STRONG,
        ),
        (
            r"\belectric shock\b|\bspoiled\b|\bmoldy\b|\bhospital\b|\bunsafe\b|\bdangerous\b|\bchok(e|ing)\b|\bsmok(e|ing)\b",
            STRONG,
        ),
    ),
    "compliance_risk": _rules(
        (
            r"泄露|隐私|个人信息|骚扰电话|虚假宣传|乱收费|霸王条款|未经(我)?(同意|允许)|偷偷扣|乱扣费|强制(消费|搭售)|歧视|假货|不开发票|贿赂",
            STRONG,
        ),
        (
            r"\bprivacy\b|\bdata breach\b|\bpersonal (data|information)\b|\bleak(ed)?\b|\bgdpr\b|\bwithout (my )?consent\b",
            STRONG,
        ),
        (
            r"\bunauthori[sz]ed (charge|payment|debit)s?\b|\bfalse advertising\b|\bmisleading\b|\bhidden fees?\b|\bcounterfeit\b",
            STRONG,
        ),
        (r"\bdiscriminat|\bharass|\bbribe|\bfake\b", MEDIUM),
    ),
}


def _negated(norm: str, start: int) -> bool:
    before = norm[max(0, start - 2) : start]
    if any(n in before for n in _ZH_NEGATORS):
        return True
    return bool(_EN_NEGATION.search(norm[max(0, start - 30) : start]))


def _threat_negated(norm: str, start: int) -> bool:
    """A threat or complaint cue at `start` that a negator in the same clause takes back ("我们不会起诉", "I won't sue")."""
    prefix = norm[max(0, start - 40) : start]
    breaks = list(_THREAT_CLAUSE_BREAK.finditer(prefix))
    if breaks:
        prefix = prefix[breaks[-1].end() :]
    negators = list(_ZH_THREAT_NEGATOR.finditer(prefix))
    zh = negators[-1] if negators else None
    if (
        zh is not None
        and len(prefix) - zh.end() <= _ZH_THREAT_WINDOW
        and not _ZH_THREAT_KEEP.search(prefix[zh.end() :])
        and not _ZH_CONDITIONAL.search(prefix[: zh.start()])
    ):
        return True
    en = _EN_THREAT_NEGATOR.search(prefix)
    return bool(
        en is not None and not _EN_THREAT_KEEP.search(en.group(1)) and not _EN_CONDITIONAL.search(prefix[: en.start()])
    )


def intent_rule_scores(norm: str) -> dict[str, float]:
    """Noisy-or of the weights of the rules that fire, per intent."""
    scores: dict[str, float] = {}
    for intent in INTENTS:
        miss = 1.0
        for rule in INTENT_RULES[intent]:
            for m in rule.pattern.finditer(norm):
                if rule.negatable and _negated(norm, m.start()):
                    continue
                if rule.threat and _threat_negated(norm, m.start()):
                    continue
                miss *= 1.0 - rule.weight
                break
        scores[intent] = 1.0 - miss
    return scores


def intent_scores(norm: str, sentiment: tuple[float, float, float] | None) -> dict[str, float]:
    """Rule scores combined with the sentiment model (complaints are negative, praise is positive)."""
    scores = intent_rule_scores(norm)
    if sentiment is not None:
        neg, _neu, pos = sentiment
        scores["complaint"] = 1.0 - (1.0 - scores["complaint"]) * (1.0 - 0.55 * neg)
        scores["praise"] = 1.0 - (1.0 - scores["praise"] * (0.4 + 0.6 * pos)) * (1.0 - 0.5 * pos * pos)
        for threat in ("regulator_threat", "media_threat", "legal_threat", "churn_risk"):
            # a threat in a happy text ("my lawyer friend loved it") is less likely
            scores[threat] *= 0.55 + 0.45 * (1.0 - pos)
        if scores["churn_risk"] > 0.5:
            scores["purchase_intent"] *= 0.3
    return {k: round(float(v), 4) for k, v in scores.items()}


# -- need layer -------------------------------------------------------------------------------------------------

_ITCH = latin_re(
    r"希望|建议|要是|如果能|能不能|可不可以|最好(能|可以)?|期待|增加|改进|优化|加个|加一个|支持一下|"
    r"\bwish\b|\bhope\b|\bsuggest|\bwould be (nice|great|good|better)\b|\bplease add\b|\bcould you add\b|\bshould (have|add|offer)\b|"
    r"\bfeature request\b|\bif only\b|\bit would help\b|\bi'd love (it )?if\b"
)
_DELIGHT = latin_re(
    r"惊喜|超出预期|超预期|出乎意料|太棒|完美|爱了|绝了|超赞|感动|贴心|五星|"
    r"\bamazing\b|\blove(d)?\b|\bexceeded\b|\bdelight|\bwow\b|\bperfect\b|\bfantastic\b|\bsurpris|\bawesome\b|\bbeyond\b"
)


def need_layer(
    norm: str, sentiment: tuple[float, float, float] | None, intents: dict[str, float]
) -> tuple[str | None, float]:
    neg, neu, pos = sentiment if sentiment is not None else (0.0, 1.0, 0.0)
    threat = max(
        (
            intents.get(k, 0.0)
            for k in (
                "complaint",
                "churn_risk",
                "regulator_threat",
                "media_threat",
                "legal_threat",
                "safety_risk",
            )
        ),
        default=0.0,
    )
    itch = _ITCH.search(norm) is not None
    delight = _DELIGHT.search(norm) is not None
    if neg >= 0.55 or threat >= 0.6:
        if itch and neg < 0.7 and threat < 0.6:
            return "itch", round(0.5 + 0.3 * neg, 4)
        return "pain", round(max(neg, threat), 4)
    if pos >= 0.55:
        return "delight", round(min(0.99, pos * (1.0 if delight else 0.8)), 4)
    if itch:
        return "itch", round(0.55 + 0.3 * (1.0 - pos), 4)
    if neg >= 0.4:
        return "itch", round(neg, 4)
    return None, round(neu * 0.5, 4)


# -- a small sentiment lexicon (the tiny model and a feature of the default model) ------------------------------

_ZH_POS = [
    "好",
    "好评",
    "满意",
    "喜欢",
    "不错",
    "很好",
    "棒",
    "赞",
    "推荐",
    "快",
    "及时",
    "耐心",
    "热情",
    "专业",
    "实惠",
    "便宜",
    "干净",
    "舒适",
    "舒服",
    "方便",
    "好用",
    "好吃",
    "漂亮",
    "值得",
    "感谢",
    "谢谢",
    "惊喜",
    "完美",
    "给力",
    "靠谱",
    "贴心",
    "周到",
    "清晰",
    "流畅",
    "划算",
    "新鲜",
    "正品",
    "开心",
    "愉快",
    "优秀",
    "超值",
    "点赞",
    "放心",
]
_ZH_NEG = [
    "差",
    "差评",
    "失望",
    "慢",
    "太慢",
    "垃圾",
    "坑",
    "骗",
    "退款",
    "退货",
    "投诉",
    "难用",
    "难吃",
    "脏",
    "贵",
    "破",
    "坏",
    "烂",
    "糟糕",
    "不满",
    "生气",
    "恶心",
    "敷衍",
    "态度差",
    "假货",
    "问题",
    "故障",
    "延迟",
    "迟到",
    "拖延",
    "漏",
    "错",
    "缺",
    "少发",
    "漏发",
    "错发",
    "损坏",
    "破损",
    "质量差",
    "后悔",
    "无语",
    "气死",
    "不行",
    "不好",
    "没用",
    "不值",
]
_EN_POS = [
    "good",
    "great",
    "excellent",
    "amazing",
    "awesome",
    "love",
    "loved",
    "like",
    "nice",
    "perfect",
    "happy",
    "satisfied",
    "fast",
    "quick",
    "helpful",
    "friendly",
    "recommend",
    "wonderful",
    "fantastic",
    "best",
    "easy",
    "clean",
    "comfortable",
    "polite",
    "professional",
    "thanks",
    "thank",
    "pleased",
    "smooth",
]
_EN_NEG = [
    "bad",
    "terrible",
    "awful",
    "worst",
    "hate",
    "slow",
    "late",
    "broken",
    "damaged",
    "rude",
    "refund",
    "disappointed",
    "disappointing",
    "poor",
    "useless",
    "angry",
    "complaint",
    "complain",
    "problem",
    "issue",
    "never",
    "wrong",
    "missing",
    "dirty",
    "expensive",
    "unacceptable",
    "scam",
    "waste",
    "horrible",
    "failed",
]


def lexicon_sentiment(norm: str) -> tuple[float, float, float]:
    """Deterministic lexicon polarity -> (negative, neutral, positive) probabilities."""
    score = 0.0
    for words, sign in ((_ZH_POS, 1.0), (_ZH_NEG, -1.0)):
        for w in words:
            start = norm.find(w)
            while start >= 0:
                negated = any(n in norm[max(0, start - 2) : start] for n in _ZH_NEGATORS)
                score += -sign if negated else sign
                start = norm.find(w, start + len(w))
    tokens = re.findall(r"[a-z']+", norm)
    for i, tok in enumerate(tokens):
        sign = 1.0 if tok in _EN_POS else -1.0 if tok in _EN_NEG else 0.0
        if sign and any(
            t in {"not", "never", "no", "don't", "didn't", "isn't", "wasn't"} for t in tokens[max(0, i - 3) : i]
        ):
            sign = -sign
        score += sign
    logits = (-score, 0.8 - 0.5 * abs(score), score)
    m = max(logits)
    exps = [math.exp(x - m) for x in logits]
    total = sum(exps)
    return (exps[0] / total, exps[1] / total, exps[2] / total)
