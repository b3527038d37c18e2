"""Language identification: zh-Hans / zh-Hant / en / other.

Script statistics decide Chinese vs Latin vs other scripts; OpenCC's character tables (characters that exist in only
one of the two scripts) decide Simplified vs Traditional; function-word ratios separate English from other
Latin-script languages.
"""

from __future__ import annotations

from cx_nlp.models.text import EN_STOPWORDS, en_words, fold_width, has_han, is_han, script_tables

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
    text = fold_width(text)  # ＩＰＨＯＮＥ counts as Latin; folding keeps Han characters as they are
    han = kana = hangul = latin = other_letters = 0
    for ch in text:
        o = ord(ch)
        if is_han(ch):
            han += 1
        elif 0x3040 <= o <= 0x30FF and o != 0x30FB:  # not the katakana middle dot, common in Chinese names
            kana += 1
        elif 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
            hangul += 1
        elif ch.isascii() and ch.isalpha():
            latin += 1
        elif ch.isalpha():
            other_letters += 1
    if han + kana + hangul + latin + other_letters == 0:
        return "other", 0.0
    # Japanese only when kana are a real share of the text: an incidental の in Chinese (我の店很好) stays Chinese
    if kana and (kana * 2 > han + kana or (kana >= 2 and kana * 5 >= han + kana)):
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


def clause_languages(text: str, spans: list[tuple[int, int]], language: str) -> list[str]:
    """The language of each clause span of `text` whose whole-text language is `language`.

    Single-script texts keep the text's language for every clause (no per-clause work). A text that mixes Chinese
    and Latin script ("The food was great. 但是服务员态度太差了") gets each clause's own language where the clause is
    clearly on the other side: a clause with Han characters detected as Chinese in a Latin-script text, or a clause
    without Han characters detected as English in a Chinese text.
    """
    if not spans:
        return []
    same = [language] * len(spans)
    if not (language.startswith("zh") or language == "en") or not has_han(text):
        return same
    folded = fold_width(text)
    if not any("a" <= ch <= "z" or "A" <= ch <= "Z" for ch in folded):
        return same
    out = []
    for s, e in spans:
        clause = text[s:e]
        lang = language
        if language == "en" and has_han(clause):
            found = detect(clause)[0]
            if found.startswith("zh"):
                lang = found
        elif language.startswith("zh") and not has_han(clause):
            found = detect(clause)[0]
            if found == "en":
                lang = found
        out.append(lang)
    return out
