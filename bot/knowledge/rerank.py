"""A learned re-ranker for knowledge bases whose entries have many phrasings.

When editors give an entry many questions (the demo's entries have 40–90), those
questions are training data: a logistic regression over TF-IDF-weighted features of the
questions (the search's Sudachi words and reading n-grams) learns which words matter
for which entry, better than BM25's fixed weights. It is fitted when the knowledge base
is loaded (about a second for 1,200 questions), never by ``rasa train``, so an edit is
used within a second as before.

It is only fitted where it can learn something: when most entries have at least
``min_questions`` questions and there are not too many entries (a 2,000-row sheet with
one question per row gets plain search). Its probability is blended into the search
score (:class:`bot.knowledge.search.FaqSearch`); ``weight`` 0.3 was chosen on the
tuning set ``tune_a`` (coverage at a fixed answer precision), checked on ``tune_b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class RerankConfig:
    """When and how much the re-ranker counts.

    Attributes:
        weight: Share of the re-ranker's probability in an entry's score (0: off).
        min_questions: Least questions an entry needs to count as "many phrasings".
        min_share: Least share of entries with that many questions to fit at all.
        max_entries: Most entries to fit for (training time grows with the entries).
        C: Inverse regularisation strength of the logistic regression.
    """

    weight: float = 0.3
    min_questions: int = 5
    min_share: float = 0.8
    max_entries: int = 300
    C: float = 10.0


class QuestionReranker:
    """Entry probabilities from the entries' own questions (see module docstring)."""

    def __init__(self, vectorizer: object, model: object, n_entries: int) -> None:
        """Use a fitted vectorizer and classifier over ``n_entries`` entries."""
        self._vectorizer = vectorizer
        self._model = model
        self._n_entries = n_entries

    @classmethod
    def fit(cls, features: Sequence[Sequence[str]], entry_of: Sequence[int], n_entries: int,
            config: RerankConfig) -> QuestionReranker | None:
        """Fit on question documents, or return ``None`` when the knowledge base does not qualify.

        Args:
            features: Tokens of each question document (words and reading n-grams).
            entry_of: Entry index of each question document.
            n_entries: Number of entries.
            config: When to fit and how.
        """
        if config.weight <= 0 or not 2 <= n_entries <= config.max_entries:
            return None
        counts = np.bincount(np.asarray(entry_of, dtype=np.int64), minlength=n_entries)
        if float(np.mean(counts >= config.min_questions)) < config.min_share:
            return None
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(analyzer=_identity, sublinear_tf=True)
        matrix = vectorizer.fit_transform([list(f) for f in features])
        # newton-cg: the same optimum as the default lbfgs in about half the time (16 vs 98 iterations
        # on the demo with its phrasings; benchmarks/classifier_solver.py compares the two on the classifier).
        model = LogisticRegression(C=config.C, max_iter=2000, solver="newton-cg", class_weight="balanced",
                                   random_state=42)
        model.fit(matrix, np.asarray(entry_of))
        return cls(vectorizer, model, n_entries)

    def probabilities(self, tokens: Sequence[str]) -> np.ndarray:
        """Probability of each entry for a query's tokens (zeros for a query without tokens)."""
        out = np.zeros(self._n_entries, dtype=np.float32)
        if not tokens:
            return out
        matrix = self._vectorizer.transform([list(tokens)])  # type: ignore[attr-defined]
        if matrix.nnz == 0:
            return out
        proba = self._model.predict_proba(matrix)[0]  # type: ignore[attr-defined]
        out[self._model.classes_] = proba  # type: ignore[attr-defined]
        return out


def _identity(tokens: list[str]) -> list[str]:
    return tokens
