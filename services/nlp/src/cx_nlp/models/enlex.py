"""English lexicon features for the English sentiment head.

The valence lexicon is copied into the model directory at build time (from the VADER lexicon shipped by the
`vaderSentiment` package, MIT licence) and extended with customer-service phrases that carry polarity in this
domain ("never arrived", "still waiting", "no response").
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|[!?]")
_NEGATORS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "without",
        "cannot",
        "can't",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "wasn't",
        "aren't",
        "weren't",
        "won't",
        "wouldn't",
        "couldn't",
        "shouldn't",
        "haven't",
        "hasn't",
        "hadn't",
        "dont",
        "didnt",
        "isnt",
        "wasnt",
        "wont",
        "cant",
    ]
)
_BOOSTERS = frozenset(
    [
        "very",
        "really",
        "extremely",
        "so",
        "too",
        "absolutely",
        "totally",
        "completely",
        "incredibly",
        "super",
        "highly",
        "quite",
    ]
)
_CONTRAST = frozenset({"but", "however", "although", "though", "yet"})

# domain phrases: (regex, valence on VADER's -4..4 scale)
CS_PHRASES: tuple[tuple[str, float], ...] = (
    (r"never (arrived|came|showed up|received|got)", -2.5),
    (r"still (waiting|haven't|hasn't|have not|not)", -2.0),
    (r"no (one|response|reply|answer|help)", -1.8),
    (r"(charged|billed) (me )?twice", -2.5),
    (r"(hung|hang) up on me", -2.5),
    (r"on hold for", -1.8),
    (r"(stopped|stops|quit) working", -2.2),
    (r"fell apart", -2.2),
    (r"doesn't work|does not work|didn't work|not working", -2.2),
    (r"waste of (time|money)", -2.8),
    (r"(want|need|demand) (a |my )?refund", -2.0),
    (r"(went|go) above and beyond", 2.8),
    (
        r"(resolved|fixed|solved) (it |my issue |the issue |the problem )?(quickly|fast|right away|immediately)",
        2.5,
    ),
    (r"(arrived|came|delivered) (early|on time|quickly|fast)", 2.0),
    (r"highly recommend", 2.8),
    (r"works (great|perfectly|well)", 2.5),
    (r"(five|5) stars?", 2.5),
    (r"(one|1) star", -2.5),
)


class EnLexicon:
    def __init__(self, valence: dict[str, float]) -> None:
        self.valence = valence
        self.phrases = [(re.compile(p), v) for p, v in CS_PHRASES]

    @classmethod
    def load(cls, path: Path) -> EnLexicon:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_vader(cls) -> EnLexicon:
        """Read the VADER lexicon from the installed `vaderSentiment` package (build time only)."""
        from importlib import resources

        text = (resources.files("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8")
        valence: dict[str, float] = {}
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and re.fullmatch(r"[a-z][a-z'-]*", parts[0]):
                valence[parts[0]] = float(parts[1])
        return cls(valence)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.valence, sort_keys=True, ensure_ascii=False), encoding="utf-8")

    def features(self, text: str) -> list[float]:
        """[positive mass, negative mass, net, negations, question, exclamation, max pos, max neg, domain phrases]"""
        low = text.lower()
        tokens = _TOKEN.findall(low)
        pos = neg = maxpos = maxneg = 0.0
        negations = 0
        after_contrast = False
        for i, tok in enumerate(tokens):
            if tok in _CONTRAST:
                after_contrast = True
                pos *= 0.5
                neg *= 0.5
                continue
            v = self.valence.get(tok)
            if tok in _NEGATORS:
                negations += 1
            if v is None:
                continue
            window = tokens[max(0, i - 3) : i]
            if any(w in _NEGATORS for w in window):
                v = -0.74 * v
            if any(w in _BOOSTERS for w in window):
                v *= 1.3
            if after_contrast:
                v *= 1.5
            if v > 0:
                pos += v
                maxpos = max(maxpos, v)
            else:
                neg -= v
                maxneg = max(maxneg, -v)
        phrase = sum(v for p, v in self.phrases if p.search(low))
        n = max(1.0, len(tokens) ** 0.5)
        return [
            pos / n,
            neg / n,
            (pos - neg + phrase) / n,
            float(min(negations, 3)),
            1.0 if "?" in text else 0.0,
            1.0 if "!" in text else 0.0,
            maxpos / 4.0,
            maxneg / 4.0,
            phrase / 3.0,
        ]


@lru_cache(maxsize=1)
def _scorers() -> tuple[Any, Any]:
    """VADER's analyzer (vaderSentiment, MIT) and Pattern's adjective-lexicon scorer (textblob, MIT; lexicon PDDL)."""
    from textblob.en import sentiment as pattern_sentiment
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer(), pattern_sentiment


SCORE_FEATURES = 6


def score_features(text: str) -> list[float]:
    """[VADER compound, pos, neg, neu, Pattern polarity, Pattern subjectivity], each scaled by 2.

    Both scorers are rule systems over shipped lexicons (negation, intensifiers, "but" handling); the English head
    uses them as inputs next to the sentence embedding, so it learns how far to trust each.
    """
    vader, pattern = _scorers()
    v = vader.polarity_scores(text)
    polarity, subjectivity = pattern(text)
    return [
        2.0 * float(v["compound"]),
        2.0 * float(v["pos"]),
        2.0 * float(v["neg"]),
        2.0 * float(v["neu"]),
        2.0 * float(polarity),
        2.0 * float(subjectivity),
    ]


def pattern_lexicon() -> list[dict[str, Any]]:
    """Word senses of Pattern's English adjective lexicon shipped by `textblob` (`textblob/en/en-sentiment.xml`,
    De Smedt & Daelemans, PDDL): form, WordNet gloss, polarity (-1..1), subjectivity (0..1), confidence."""
    import xml.etree.ElementTree as ET
    from importlib import resources

    path = resources.files("textblob") / "en" / "en-sentiment.xml"
    out: list[dict[str, Any]] = []
    for w in ET.fromstring(path.read_text(encoding="utf-8")).iter("word"):  # noqa: S314
        out.append(
            {
                "form": w.get("form") or "",
                "sense": (w.get("sense") or "").strip(),
                "polarity": float(w.get("polarity") or 0.0),
                "subjectivity": float(w.get("subjectivity") or 0.0),
                "confidence": float(w.get("confidence") or 0.0),
            }
        )
    return out
