"""The plain baseline the FAQ search is compared with: BM25 over character 2-grams.

Kept out of ``bot/``: the bot never uses it; benchmarks and tests compare against it.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeBase
from bot.knowledge.search import MAX_QUERY_CHARS, SearchConfig, _BaseSearch, _Bm25View, _clean, _ngrams


class CharNgramBM25(_BaseSearch):
    """Plain baseline: BM25 over character 2-grams of NFKC text, nothing else.

    Same documents, aggregation and score normalisation as :class:`FaqSearch` (so the
    comparison isolates the Japanese text processing), but no synonyms, no Sudachi, no
    readings and no vectors.
    """

    def __init__(self, kb: KnowledgeBase, entry_weight: float = SearchConfig.entry_weight,
                 k1: float = SearchConfig.k1, b: float = SearchConfig.b) -> None:
        """Prepare the baseline.

        Args:
            kb: The knowledge base.
            entry_weight: Share of the entry document in an entry's score (as in :class:`FaqSearch`).
            k1: BM25 term-frequency saturation.
            b: BM25 length normalisation.
        """
        super().__init__(kb)
        self._share = entry_weight
        self._k1 = k1
        self._b = b

    @classmethod
    def from_directory(cls, kb_dir: Path) -> CharNgramBM25:
        """Load ``kb_dir`` (synonyms are not used by the baseline)."""
        return cls(load_knowledge(Path(kb_dir)))

    def _weights(self) -> dict[str, float]:
        return {"char": 1.0}

    def _entry_weight(self) -> float:
        return self._share

    def _features(self, text: str, limit: int | None = MAX_QUERY_CHARS) -> dict[str, list[str]]:
        plain = "".join(unicodedata.normalize("NFKC", _clean(text, limit)).split())
        return {"char": _ngrams(plain, (2,))}

    def _build_view(self, name: str, features: list[list[str]]) -> Any:
        return _Bm25View(features, self._k1, self._b)

    def _score_view(self, name: str, view: Any, feature: list[str]) -> np.ndarray:
        return view.scores(feature)
