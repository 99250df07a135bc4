"""Romaji typed for Japanese ("pasuwaado wasureta") -> hiragana, without mangling English.

``jaconv.alphabet2kana`` converts any letters, so English words come out as junk
(box -> ぼっ). A word is converted only when it is a sequence of valid romaji
syllables (Hepburn / kunrei onsets, optional doubled consonant, vowel, or n).
"""

from __future__ import annotations

import re

import jaconv

_ONSET = r"(?:ky|gy|sh|sy|zy|jy|ch|cy|ty|dy|ts|ny|hy|by|py|my|ry|fy|[kgszjtdnhbpmyrwfv])"
_SOKUON = r"(?:kk|gg|ss|zz|tt|dd|hh|bb|pp|mm|rr|ff|jj|cc|tc)"
_SYLLABLE = rf"(?:{_SOKUON}?{_ONSET}?[aiueo]|n)"
_ROMAJI_WORD = re.compile(rf"(?:{_SYLLABLE})+")
_ASCII_WORD = re.compile(r"[a-z]{2,}")


def is_romaji(word: str) -> bool:
    """True when lower-case ``word`` reads as Japanese romaji."""
    return _ROMAJI_WORD.fullmatch(word) is not None


def romaji_to_hiragana(text: str) -> str:
    """Replace every romaji word (2+ letters, lower case) in ``text`` by hiragana.

    Args:
        text: Folded (lower-case) text.

    Returns:
        The text with romaji words converted; other words untouched. When most
        ASCII words are not romaji the message is taken as English and left alone
        ("change my address" must not become "ちゃんげ my address").
    """
    words = _ASCII_WORD.findall(text)
    if not words or sum(map(is_romaji, words)) * 2 < len(words):
        return text
    return _ASCII_WORD.sub(lambda m: jaconv.alphabet2kana(m.group(0)) if is_romaji(m.group(0)) else m.group(0), text)
