"""Lazy, process-wide SudachiPy tokenizer (the dictionary ships as the SudachiDict-core package)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jaconv

# Sudachi refuses input longer than ~49 KB; the tokenizer cuts messages well before that
# (`max_chars` in config.yml), this is the last line of defence.
_MAX_SUDACHI_CHARS = 12_000


@dataclass(frozen=True)
class Morph:
    """One morpheme as the NLU needs it.

    Attributes:
        surface: The text as written.
        normalized: Sudachi's normalised form (spelling variants folded: 引越し -> 引っ越し).
        reading: Reading in hiragana, so kanji and kana spellings meet.
        start: Offset of the morpheme in the tokenised text.
        end: End offset in the tokenised text.
        pos: Coarse part of speech (名詞, 動詞, 補助記号, ...).
    """

    surface: str
    normalized: str
    reading: str
    start: int
    end: int
    pos: str


@lru_cache(maxsize=1)
def _tokenizer():  # type: ignore[no-untyped-def]
    # Imported and built on first use: loading the dictionary takes ~0.1 s and
    # ~70 MB, which commands that never tokenise should not pay.
    from sudachipy import Dictionary

    return Dictionary(dict="core").create()


def tokenize(text: str) -> list[Morph]:
    """Split ``text`` into morphemes in Sudachi's mode C (longest units, e.g. 住所変更).

    Args:
        text: Already normalised text.

    Returns:
        The morphemes, whitespace dropped.
    """
    from sudachipy import SplitMode

    text = text[:_MAX_SUDACHI_CHARS]
    morphs = []
    for m in _tokenizer().tokenize(text, SplitMode.C):
        surface = m.surface()
        if not surface.strip():
            continue
        reading = m.reading_form()
        # Sudachi gives an empty or "キゴウ" reading for symbols and OOV words; keep the
        # surface there so no character is lost to the features.
        if not reading or m.part_of_speech()[0] in {"補助記号", "空白"}:
            reading = surface
        morphs.append(
            Morph(
                surface=surface,
                normalized=m.normalized_form(),
                reading=jaconv.kata2hira(reading),
                start=m.begin(),
                end=m.end(),
                pos=m.part_of_speech()[0],
            )
        )
    return morphs
