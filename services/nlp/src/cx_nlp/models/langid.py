"""Language identification: zh-Hans / zh-Hant / en / other.

Script statistics decide Chinese vs Latin vs other scripts; OpenCC's character tables (characters that exist in only
one of the two scripts) decide Simplified vs Traditional; function-word ratios separate English from other
Latin-script languages.
"""

from __future__ import annotations

from cx_nlp.models.text import EN_STOPWORDS, en_words, is_han, script_tables

_OTHER_LATIN_STOPWORDS = frozenset(
    [
        "le",
        "la",
        "les",
        "des",
        "est",
        "une",
        "dans",
        "pour",
        "pas",
        "que",
        "qui",
        "sur",
        "avec",
        "sont",
        "mais",
        "nous",
        "vous",
        "très",
        "el",
        "los",
        "las",
        "por",
        "una",
        "con",
        "para",
        "del",
        "como",
        "más",
        "pero",
        "muy",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "mit",
        "sich",
        "auf",
        "für",
        "dem",
        "den",
        "het",
        "een",
        "niet",
        "van",
        "ik",
        "je",
        "che",
        "non",
        "della",
        "sono",
        "questo",
        "ma",
        "anche",
        "não",
        "uma",
        "com",
        "são",
        "isso",
    ]
)


def detect(text: str) -> tuple[str, float]:
    han = kana = hangul = latin = other_letters = 0
    for ch in text:
        o = ord(ch)
        if is_han(ch):
            han += 1
        elif 0x3040 <= o <= 0x30FF:
            kana += 1
        elif 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
            hangul += 1
        elif ch.isascii() and ch.isalpha():
            latin += 1
        elif ch.isalpha():
            other_letters += 1
    if han + kana + hangul + latin + other_letters == 0:
        return "other", 0.0
    if kana and kana >= 0.1 * (han + kana):
        return "other", min(0.99, 0.6 + kana / (han + kana))
    if hangul > han and hangul * 2 > latin:
        return "other", 0.9
    # a Chinese character carries about as much as a 3-4 letter word
    if han and han * 3 >= latin and han >= other_letters:
        _, simp_only, trad_only = script_tables()
        s = sum(ch in simp_only for ch in text)
        t = sum(ch in trad_only for ch in text)
        share = han / max(1, han + latin / 3 + other_letters)
        if t > s:
            return "zh-Hant", round(min(0.99, share * (0.6 + 0.4 * t / (s + t))), 4)
        if s > t:
            return "zh-Hans", round(min(0.99, share * (0.6 + 0.4 * s / (s + t))), 4)
        # no script-specific character (e.g. 我很好): Simplified is the more likely reading
        return "zh-Hans", round(min(0.99, share * 0.6), 4)
    if other_letters > latin:
        return "other", 0.8
    words = en_words(text)
    if not words:
        return "other", 0.0
    en_hits = sum(w in EN_STOPWORDS for w in words)
    other_hits = sum(w in _OTHER_LATIN_STOPWORDS for w in words)
    if other_hits > en_hits:
        return "other", round(min(0.95, 0.5 + other_hits / len(words)), 4)
    if en_hits:
        return "en", round(min(0.99, 0.7 + en_hits / len(words)), 4)
    # short texts without function words ("great product", "refund"): English is the best guess
    return "en", 0.55 if len(words) <= 4 else 0.4
