"""Text helpers shared by every component: script tables, Traditional -> Simplified folding, clause splitting,
tokenisation and stable hashing.

Traditional -> Simplified folding is character by character (OpenCC's character table), so the folded text has
exactly the same length as the input: offsets found in the folded text are valid code-point offsets in the original.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path

_HAN_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xF900, 0xFAFF), (0x20000, 0x2EBEF))


_HAN_RE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _HAN_RANGES) + "]")


def is_han(ch: str) -> bool:
    # string comparisons, cheapest test first (most characters are below the first Han block): this runs once per
    # character of every text
    if ch < "\u3400":
        return False
    return (
        "\u4e00" <= ch <= "\u9fff" or ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0002ebef"
    )


def han_count(text: str) -> int:
    """How many Han characters the text has (one regex scan instead of a Python call per character)."""
    return len(_HAN_RE.findall(text))


def has_han(text: str) -> bool:
    return _HAN_RE.search(text) is not None


def blank_han(text: str) -> str:
    """The text with every Han character replaced by a space (same as a per-character `is_han` substitution)."""
    return _HAN_RE.sub(" ", text)


def _opencc_dictionary(name: str) -> list[tuple[str, list[str]]]:
    """Rows of an OpenCC character table shipped by `opencc-python-reimplemented` (empty if not installed)."""
    try:
        base = resources.files("opencc") / "dictionary" / name
        text = Path(str(base)).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return []
    rows = []
    for line in text.splitlines():
        if "\t" not in line:
            continue
        key, values = line.split("\t", 1)
        rows.append((key, values.split()))
    return rows


# A small built-in fallback so language detection still works without the OpenCC tables.
_FALLBACK_T2S = dict(
    zip(
        "們這個來說時會對為與學國們還發問題們麼沒過還區體實現點開關於長東車門書電話網頁錢買賣貨務態較讓價質條運線號樣應該經",
        "们这个来说时会对为与学国们还发问题们么没过还区体实现点开关于长东车门书电话网页钱买卖货务态较让价质条运线号样应该经",
        strict=True,
    )
)


@lru_cache(maxsize=1)
def script_tables() -> tuple[dict[int, str], frozenset[str], frozenset[str]]:
    """(Traditional->Simplified translate table, Simplified-only characters, Traditional-only characters)."""
    ts = _opencc_dictionary("TSCharacters.txt")
    st = _opencc_dictionary("STCharacters.txt")
    t2s: dict[int, str] = {}
    trad_only: set[str] = set()
    simp_only: set[str] = set()
    if ts and st:
        for key, values in ts:
            if len(key) == 1 and key not in values and len(values[0]) == 1:
                t2s[ord(key)] = values[0]
                trad_only.add(key)
        for key, values in st:
            if len(key) == 1 and key not in values:
                simp_only.add(key)
        # characters that are valid in both scripts are no evidence either way
        both = trad_only & simp_only
        trad_only -= both
        simp_only -= both
    else:
        for t, s in _FALLBACK_T2S.items():
            if t != s:
                t2s[ord(t)] = s
                trad_only.add(t)
                simp_only.add(s)
    return t2s, frozenset(simp_only), frozenset(trad_only)


def to_simplified(text: str) -> str:
    """Character-level Traditional -> Simplified folding; same length as the input."""
    return text.translate(script_tables()[0])


# full-width ASCII (U+FF01..U+FF5E) -> ASCII, ideographic space -> space
_FULLWIDTH = {o: o - 0xFEE0 for o in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_width(text: str) -> str:
    """Full-width ASCII folded to ASCII (ＩＰＨＯＮＥ -> IPHONE, ideographic space -> space); same length."""
    return text.translate(_FULLWIDTH)


def normalize(text: str) -> str:
    """Lower-cased, full-width ASCII folded, Simplified; same length as the input."""
    simplified = to_simplified(fold_width(text))
    lowered = simplified.lower()
    if len(lowered) == len(simplified):
        return lowered
    # A few characters lower-case to two (İ -> i + combining dot): those stay as they are, so offsets still hold.
    return "".join(low if len(low := ch.lower()) == 1 else ch for ch in simplified)


_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ebef"
# a period ends a clause when whitespace and an upper-case letter or a digit follow, when a CJK character follows
# (with or without a space), or at the end of the text; not after a title or an initial ("Mr. Smith", "U.S. Army",
# "e.g. the"), and never between digits ("$1,299.99")
_SENTENCE_PERIOD = (
    r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)(?<!\bProf)(?<!\bJr)(?<!\bSr)(?<!\bvs)(?<!\b[A-Za-z])"
    r"\.+[\"'”’)\]]*"
    rf"(?=\s+[A-Z0-9À-ÖØ-ÞЁА-Я\"“‘(]|\s*[{_CJK_CHARS}]|\s*$)"
)
_CLAUSE_SPLIT = re.compile(
    r"[。！？!?；;\n\r]+"
    + "|"
    + _SENTENCE_PERIOD
    # a comma or colon between digits (1,299 / 10:30) is part of a number
    + r"|(?:[，、：]|(?<!\d)[,:]|[,:](?!\d))(?=\s*\S)"
    + r"|(?<!\w)(?i:but|however|although|though)(?!\w)[\s,，]*"
    + r"|但是|不过|可是|然而"
)


def clauses(text: str) -> Iterator[tuple[int, int]]:
    """Code-point spans of the clauses of `text` (split on punctuation and contrastive conjunctions), trimmed."""
    pos = 0
    for m in _CLAUSE_SPLIT.finditer(text):
        yield from _trimmed(text, pos, m.start())
        pos = m.end()
    yield from _trimmed(text, pos, len(text))


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and (text[start].isspace() or text[start] in "\"'“”‘’()（）[]【】"):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ".\"'“”‘’()（）[]【】"):
        end -= 1
    if end > start:
        yield start, end


_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")

EN_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "im",
        "ive",
        "dont",
        "didnt",
        "cant",
        "wont",
        "isnt",
        "its",
        "it's",
        "i'm",
        "i've",
        "don't",
        "didn't",
        "can't",
        "won't",
        "isn't",
        "wasn't",
        "aren't",
        "doesn't",
        "got",
        "get",
        "also",
        "still",
        "even",
        "really",
        "please",
        "thanks",
        "thank",
        "hi",
        "hello",
        "dear",
        "one",
        "would",
        "could",
    ]
)


# Function words of the common European languages (and a few Korean ones), for the keywords of texts that are
# neither Chinese nor English
_OTHER_STOPWORDS_BY_LANGUAGE = {
    "fr": """le la les un une des du de au aux et ou est sont était été être avoir avait ai as a ont ce cet cette ces
        il elle ils elles on nous vous je tu me te se lui leur leurs mon ma mes ton ta tes son sa ses notre nos votre
        vos qui que quoi dont où ne pas plus moins très trop bien mais donc car ni dans sur sous pour par avec sans
        chez entre vers comme si tout tous toute toutes même aussi encore déjà y en fait peu""",
    "es": """el lo los las una unos unas del al y o es son era fue ser estar está están estaba he ha han hay este
        esta estos estas ese esa eso mi mis tu tus su sus nuestro nuestra yo él ella ellos ellas nosotros usted
        ustedes que qué quien cual como cómo cuando muy más menos pero sino porque por para con sin sobre entre hasta
        desde también ya no sí nada todo todos toda todas""",
    "pt": """um uma uns umas os as do da dos das no na nos nas ao aos e é são foi ser estar está estão isso isto
        esse essa eu ele ela eles elas nós você vocês meu minha seu sua muito mais mas porque com sem para pelo pela
        não sim""",
    "it": """il lo gli i una uno di del della dei delle nel nella che è sono era stato essere avere ha hanno ho
        questo questa quello quella mio mia suo sua molto più ma perché per con senza anche non""",
    "de": """der die das den dem des ein eine einen einem einer und oder ist sind war waren sein haben hat hatte
        ich du er sie es wir ihr mein meine dein ihre unser nicht kein keine sehr mehr aber doch weil für mit ohne
        auf aus bei nach von vor zu zum zur über unter auch noch schon nur wie was wer wo dass sich""",
    "nl": """het een en of is zijn was waren hebben heeft had ik jij je hij zij wij jullie mijn niet geen heel meer
        maar omdat voor met zonder op uit bij naar van te ook nog al wel dat die dit deze er""",
    "ru": """и в во не на что это как так но а или же бы был была было были быть есть я ты он она оно мы вы они
        мой моя мое мои его её ее их с со по за от до из к у о об для без при очень уже ещё еще все всё весь вся
        только даже""",
    "ko": "너무 정말 진짜 그리고 하지만 그런데 그냥 그래서 또 좀 더 잘 안 못 이 그 저 것 수 제 저는 나는",
}
OTHER_STOPWORDS = frozenset(w for words in _OTHER_STOPWORDS_BY_LANGUAGE.values() for w in words.split())


def en_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@lru_cache(maxsize=1)
def _unicode_word_re() -> re.Pattern[str]:
    """Letters of any script plus the combining marks inside words (Devanagari, Thai vowel signs: not `\\w`)."""
    import unicodedata

    marks: list[str] = []
    o = 0
    while o < 0x10000:
        if unicodedata.category(chr(o)).startswith("M"):
            lo = o
            while o + 1 < 0x10000 and unicodedata.category(chr(o + 1)).startswith("M"):
                o += 1
            marks.append(f"{chr(lo)}-{chr(o)}" if o > lo else chr(lo))
        o += 1
    return re.compile(r"(?:[^\W\d_]|[" + "".join(marks) + r"])+")


# runs of one East Asian script inside a letter run (no spaces between Japanese words): hiragana, katakana (with the
# prolonged sound mark), Han, Hangul, and everything else
_SCRIPT_RUN = re.compile(
    r"[\u3040-\u309f]+|[\u30a0-\u30fa\u30fc-\u30ff\u31f0-\u31ff]+"
    r"|[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _HAN_RANGES) + r"]+"
    r"|[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]+"
    r"|[^\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
    + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _HAN_RANGES)
    + r"]+"
)
_EAST_ASIAN = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
    + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _HAN_RANGES)
    + r"]"
)


def unicode_words(text: str) -> list[str]:
    """Lower-cased words of any script: runs of letters (no digits, no underscore), split where the script changes
    between hiragana, katakana, Han and Hangul (Japanese has no spaces between words; 12345 is no word)."""
    out: list[str] = []
    for w in _unicode_word_re().findall(fold_width(text).lower()):
        if _EAST_ASIAN.search(w) is None:
            out.append(w)
        else:
            out.extend(_SCRIPT_RUN.findall(w))
    return out


def is_hiragana(word: str) -> bool:
    return all("\u3040" <= ch <= "\u309f" for ch in word)


def is_east_asian(word: str) -> bool:
    """Whether the word is Han, kana or Hangul (a character is a syllable or a morpheme: short words count)."""
    return _EAST_ASIAN.search(word) is not None


ZH_STOPWORDS = frozenset(
    [
        "的",
        "了",
        "是",
        "我",
        "你",
        "他",
        "她",
        "它",
        "们",
        "我们",
        "你们",
        "他们",
        "这",
        "那",
        "这个",
        "那个",
        "就",
        "都",
        "也",
        "和",
        "与",
        "及",
        "在",
        "有",
        "没有",
        "很",
        "太",
        "非常",
        "还",
        "又",
        "吧",
        "吗",
        "呢",
        "啊",
        "呀",
        "哦",
        "嗯",
        "一个",
        "一下",
        "一些",
        "什么",
        "怎么",
        "为什么",
        "因为",
        "所以",
        "但是",
        "不过",
        "可是",
        "如果",
        "而且",
        "然后",
        "还是",
        "或者",
        "已经",
        "可以",
        "能",
        "会",
        "要",
        "想",
        "说",
        "让",
        "给",
        "把",
        "被",
        "从",
        "对",
        "到",
        "去",
        "来",
        "上",
        "下",
        "里",
        "中",
        "不",
        "没",
        "人",
        "个",
        "次",
        "就是",
        "这样",
        "那样",
        "自己",
        "真的",
        "感觉",
        "觉得",
        "比较",
        "一直",
        "一点",
        "这么",
        "那么",
        "时候",
        "现在",
        "今天",
        "东西",
    ]
)


def stable_hash(text: str, digest_size: int = 8) -> int:
    """Process-independent hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=digest_size).digest(), "little")
