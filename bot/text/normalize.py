"""Japanese text normalisation shared by training data, knowledge entries and live input.

One function, :func:`normalize`, so that the classifier sees exactly the same kind of
string whether it comes from ``knowledge/``, ``data/nlu/`` or a customer in the widget.
The steps are deliberately conservative: they fold spelling *variants* (width, case,
long-vowel marks, repeated symbols, editor synonyms) but never change meaning.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Mapping

from bot.text.romaji import romaji_to_hiragana

# Characters that look like a dash or a wave and are typed in place of the long-vowel
# mark "ー" after katakana/hiragana (e.g. "パスワ-ド", "メール〜"). NFKC leaves most
# of them alone, so they are folded explicitly.
_DASH_LIKE = "-‐‑‒–—―−ｰ─━"
_LONG_VOWEL_AFTER_KANA = re.compile(rf"(?<=[ぁ-んァ-ヶ])[{re.escape(_DASH_LIKE)}]")
_REPEATED_LONG_VOWEL = re.compile(r"ー{2,}")
_WAVES = re.compile(r"[〜～~]+")
# "！！！" / "？？" / "。。。" carry emphasis, not meaning, for classification.
# (Triage reads the raw text, so anger markers are not lost.)
_REPEATED_PUNCT = re.compile(r"([!?。、.,・…])\1+")
# HTML tags pasted into the chat are data, not words; drop them so they do not
# become features. Bounded length so a lone "<" does not swallow the message.
_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
# Script and style blocks hold code, not words of the customer: drop them with their content.
_CODE_BLOCK = re.compile(r"<(script|style)\b[^<>]{0,200}>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_WHITESPACE = re.compile(r"\s+")


def _strip_control(text: str) -> str:
    """Drop format characters (zero-width space/joiner, BOM: 住\u200b所 is 住所) and replace
    control characters (NUL, bell, newline) with spaces."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        out.append(" " if category == "Cc" else ch)
    return "".join(out)


@dataclass(frozen=True)
class Normalizer:
    """Folds Japanese spelling variants; configured with an editor synonym table.

    Attributes:
        synonyms: Variant -> canonical form, already normalised (see
            :func:`bot.text.synonyms.load_synonyms`). Longest variants win.
    """

    synonyms: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Build one alternation regex once; sorted longest-first so "メールアドレス"
        # is not cut by the shorter variant "メール". Canonical forms are part of the
        # alternation (mapped to themselves) so that a variant that is a prefix of a
        # canonical form ("メールアド") never rewrites the canonical form itself.
        variants = sorted(set(self.synonyms) | set(self.synonyms.values()), key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(v) for v in variants)) if variants else None
        object.__setattr__(self, "_synonym_pattern", pattern)

    def __call__(self, text: str) -> str:
        """Normalise ``text`` (see module docstring). Never raises on str input."""
        return normalize(text, self)

    def apply_synonyms(self, text: str) -> str:
        """Replace every synonym variant in already-normalised ``text`` by its canonical form."""
        pattern = getattr(self, "_synonym_pattern")
        if pattern is None:
            return text
        return pattern.sub(lambda m: self.synonyms.get(m.group(0), m.group(0)), text)


def fold(text: str) -> str:
    """Width/case/variant folding without synonyms.

    Steps: control characters -> space, <script>/<style> blocks and HTML tags dropped, NFKC (full-width ASCII and
    half-width katakana to their standard forms), lower-case, dash-like characters after
    kana -> "ー", repeated "ー"/waves/punctuation collapsed, whitespace squeezed.

    Args:
        text: Any string, possibly empty.

    Returns:
        The folded string (may be empty).
    """
    text = _strip_control(text)
    text = _CODE_BLOCK.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).lower()
    text = _LONG_VOWEL_AFTER_KANA.sub("ー", text)
    text = _REPEATED_LONG_VOWEL.sub("ー", text)
    text = _WAVES.sub("〜", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return _WHITESPACE.sub(" ", text).strip()


def normalize(text: str, normalizer: Normalizer | None = None) -> str:
    """Fold ``text``, apply the editor synonym table, then turn romaji words into hiragana.

    Synonyms come first so that ASCII variants editors listed ("pw", "email") win
    over the romaji reading.

    Args:
        text: Raw customer, training or knowledge text.
        normalizer: Carries the synonym table; ``None`` means no synonyms.

    Returns:
        The normalised text.
    """
    folded = fold(text)
    if normalizer is not None:
        folded = normalizer.apply_synonyms(folded)
    return romaji_to_hiragana(folded)
