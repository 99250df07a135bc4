"""FAQ search without training: which entries would answer a question (``bot kb search``).

Editors run it on any knowledge directory (e.g. right after importing a spreadsheet, when
entries have only one to three questions and no model exists); the bot uses the same
search for its clarify suggestions. Nothing is learnt: the index is built from the text.

Text views (each a BM25 index built with the ``bm25s`` library, Lucene variant):

* ``word``: Sudachi normalised forms (mode C) of the text after the bot's own
  normalisation (:func:`bot.text.normalize.normalize` with the editors' synonym table),
  function words (particles, auxiliaries, symbols) left out. 引越し and 引っ越し meet.
* ``reading``: character 2- and 3-grams of the hiragana reading of the same morphemes,
  so 住所 / じゅうしょ / ｼﾞｭｳｼｮ meet and a typo only breaks a few n-grams.
* ``vector``: cosine of the mean GiNZA static word vectors (``ja_ginza``'s
  ``vocab/vectors``, read with numpy, without spaCy) of the content words, for
  paraphrases with no shared word (転居 / 引っ越し). Without ``ja_ginza`` the search
  runs on the two BM25 views.

Fields: every question and the title of an entry are *question documents*; the whole
entry (title, questions, answer and link URLs as one text) is the *entry document*, with its own
indexes (its length is never compared with one-line questions).

Scores, all in [0, 1]:

1. Per BM25 view, a document's score is divided by the score the query gets against a
   document identical to itself (same index statistics), and capped at 1:
   ``s_v(d) = min(1, bm25_v(q, d) / bm25_v(q, q))``. 1.0 means "contains the query's
   terms at least as well as the query itself"; query terms unknown to the index count
   in the denominator, so an unrelated question scores near 0.
2. The vector view is ``max(0, (cos - c0) / (1 - c0))`` (``c0`` = ``vector_floor``):
   mean word vectors of any two Japanese sentences have a positive cosine, ``c0``
   removes that floor.
3. A document's score is the weighted sum of its views (weights sum to 1).
4. An entry's score is ``(1 - e) * max(question documents) + e * entry document``, with
   ``e`` = ``entry_weight``. The question with the best score is reported as ``matched``.
5. When most entries have many questions, a logistic regression fitted on them at load
   time (:mod:`bot.knowledge.rerank`) is blended in: ``(1 - r) * score + r * p(entry)``.

Default weights (word 0.3, reading 0.3, vector 0.4, floor 0.5, entry 0.8) were chosen by
cross-validation on the questions of ``knowledge/`` itself (a held-out fold of questions
queried against the others; and knowledge bases cut to 1-60 questions per entry), never
on the benchmark queries: see ``benchmarks/kb_search.py``.

Entries with score 0 are not returned, so a query with no usable text (empty, emoji
only, markup only) yields an empty list.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bot.errors import KnowledgeError
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import FaqEntry, KnowledgeBase
from bot.knowledge.rerank import QuestionReranker, RerankConfig
from bot.text import sudachi
from bot.text.vectors import StaticVectors, load_static_vectors
from bot.text.normalize import Normalizer
from bot.text.synonyms import load_normalizer

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # "Building index from tokens" on every build

# Longer input is cut before normalisation (same bound as the tokenizer's `max_chars` in
# config.yml): a pasted 10,000-character mail is searched by its beginning.
MAX_QUERY_CHARS = 1000
# Cut-offs of the evaluation (hit@k); MRR is computed over the top `max(EVAL_KS)` hits.
EVAL_KS = (1, 5, 10)

# Morphemes that carry no topic: particles, auxiliaries, symbols, whitespace.
_FUNCTION_POS = frozenset({"助詞", "助動詞", "補助記号", "空白"})
# The view whose score is a hit's evidence (:attr:`SearchHit.evidence`): shared words.
EVIDENCE_VIEW = "word"
# Morphemes whose GiNZA vector says something about the topic.
_CONTENT_POS = frozenset({"名詞", "動詞", "形容詞", "形状詞", "副詞", "代名詞", "接尾辞", "接頭辞"})


@dataclass(frozen=True)
class SearchHit:
    """One FAQ entry that would answer the query.

    Attributes:
        faq_id: The entry's id.
        title: The entry's title (the button label of clarifying replies).
        category: The entry's category.
        score: Relevance in [0, 1] (see the module docstring for its definition).
        matched: The entry's question (or title) that matches the query best, for editors.
        evidence: How much of the query's own words the entry contains, in [0, 1]: the
            word view's score alone (best of its question documents and its entry
            document). Readings and vectors also match text that only sounds or feels
            alike (「会議が多すぎて仕事する時間がない」 and 営業時間); the router answers only
            with enough of this (see :mod:`bot.triage.routing`).
    """

    faq_id: str
    title: str
    category: str
    score: float
    matched: str
    evidence: float = 0.0


@dataclass(frozen=True)
class SearchConfig:
    """Weights of :class:`FaqSearch` (defaults chosen by cross-validation, module docstring).

    Attributes:
        word_weight: Weight of the Sudachi word view in a document's score.
        reading_weight: Weight of the reading n-gram view.
        vector_weight: Weight of the GiNZA vector view (0: BM25 only, vectors never loaded).
        entry_weight: Share of the entry document in an entry's score (``e`` in the docstring).
        reading_ngrams: Character n-gram sizes of the reading view.
        vector_floor: Cosine mapped to 0 in the vector view (``c0`` in the docstring).
        vector_package: spaCy model package whose static vectors are used.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
        rerank: The learned re-ranker for entries with many questions (:mod:`bot.knowledge.rerank`).
    """

    word_weight: float = 0.3
    reading_weight: float = 0.3
    vector_weight: float = 0.4
    entry_weight: float = 0.8
    reading_ngrams: tuple[int, ...] = (2, 3)
    vector_floor: float = 0.5
    vector_package: str = "ja_ginza"
    k1: float = 1.2
    b: float = 0.75
    rerank: RerankConfig = field(default_factory=RerankConfig)

    def view_weights(self) -> dict[str, float]:
        """The weights of the views in use, scaled to sum to 1.

        Raises:
            ValueError: No view has a positive weight, or ``entry_weight`` is outside [0, 1].
        """
        if not 0.0 <= self.entry_weight <= 1.0:
            raise ValueError(f"SearchConfig.entry_weight must be within [0, 1], not {self.entry_weight}")
        raw = {"word": self.word_weight, "reading": self.reading_weight, "vector": self.vector_weight}
        total = sum(w for w in raw.values() if w > 0)
        if total <= 0:
            raise ValueError("SearchConfig: at least one of word/reading/vector weights must be positive")
        return {name: w / total for name, w in raw.items() if w > 0}


# --------------------------------------------------------------------------- BM25 views


class _Bm25View:
    """One BM25 index (bm25s) over token lists, scoring queries in [0, 1]."""

    def __init__(self, docs: Sequence[Sequence[str]], k1: float, b: float) -> None:
        import bm25s  # imported on first index build: commands that never search do not pay

        self._k1 = k1
        self._b = b
        self._n_docs = len(docs)
        self._avgdl = max(1e-9, sum(len(d) for d in docs) / max(1, len(docs)))
        self._empty = not any(docs)
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        if not self._empty:
            # bm25s drops nothing itself; an empty document just scores 0.
            self._bm25.index([list(d) for d in docs], show_progress=False)
            # bm25s stores the precomputed per-(term, document) scores as a CSC matrix;
            # a term's postings are data/indices[indptr[t]:indptr[t + 1]].
            self._data = self._bm25.scores["data"]
            self._indices = self._bm25.scores["indices"]
            self._indptr = self._bm25.scores["indptr"]
            df = np.diff(self._indptr).astype(np.float64)
            self._idf = np.log1p((self._n_docs - df + 0.5) / (df + 0.5))
        # Query terms absent from the index get the idf of a term seen in no document.
        self._oov_idf = math.log1p((self._n_docs + 0.5) / 0.5)

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """Normalised scores of every document (see the module docstring, step 1).

        Args:
            query: The query's tokens (duplicates allowed).

        Returns:
            float32 array, one score in [0, 1] per document.
        """
        out = np.zeros(self._n_docs, dtype=np.float32)
        if not query or self._empty:
            return out
        counts: dict[str, int] = {}
        for token in query:
            if token:  # bm25s reserves "" for its empty-document token
                counts[token] = counts.get(token, 0) + 1
        if not counts:
            return out
        vocab = self._bm25.vocab_dict
        ids = [vocab[t] for t in counts if t in vocab]
        # The query as a document: its tokens and their counts. Same formula as
        # bm25s' Lucene variant (idf * tf / (tf + k1 * (1 - b + b * dl / avgdl)), no (k1 + 1)
        # factor); tests check that a document identical to the query scores 1.
        norm = self._k1 * (1 - self._b + self._b * sum(counts.values()) / self._avgdl)
        self_score = 0.0
        for token, tf in counts.items():
            idf = self._idf[vocab[token]] if token in vocab else self._oov_idf
            self_score += idf * tf / (tf + norm)
        if not ids or self_score <= 0:
            return out
        # Same sum as bm25s' get_scores_from_ids (Lucene has no non-occurrence term), but
        # with one np.bincount instead of an np.add.at per term: ~10x faster on 10k documents.
        postings = [slice(self._indptr[i], self._indptr[i + 1]) for i in ids]
        raw = np.bincount(np.concatenate([self._indices[p] for p in postings]),
                          weights=np.concatenate([self._data[p] for p in postings]),
                          minlength=self._n_docs)
        np.minimum(raw / self_score, 1.0, out=out)
        return out


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class _Analysis:
    """The views of one text."""

    words: list[str]
    reading: list[str]
    content: list[str]


def _clean(text: str, limit: int | None) -> str:
    """Cut to ``limit`` characters and replace lone surrogates (Sudachi cannot encode them)."""
    if limit is not None:
        text = text[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def _ngrams(text: str, sizes: Sequence[int]) -> list[str]:
    grams: list[str] = []
    for n in sizes:
        if len(text) >= n:
            grams.extend(text[i:i + n] for i in range(len(text) - n + 1))
    if not grams and text:
        grams.append(text)  # a one-character text still has one feature
    return grams


class _Analyzer:
    """Normalise + Sudachi, as the bot does, and derive the word / reading / content views."""

    def __init__(self, normalizer: Normalizer, config: SearchConfig) -> None:
        self._normalizer = normalizer
        self._config = config

    def __call__(self, text: str, limit: int | None = MAX_QUERY_CHARS) -> _Analysis:
        normalized = self._normalizer(_clean(text, limit))
        if not normalized:
            return _Analysis([], [], [])
        morphs = sudachi.tokenize(normalized)
        topical = [m for m in morphs if m.pos not in _FUNCTION_POS]
        words = [m.normalized for m in topical]
        reading = "".join(m.reading for m in morphs if m.pos not in {"補助記号", "空白"})
        content = [m.normalized for m in topical if m.pos in _CONTENT_POS]
        return _Analysis(words, _ngrams(reading, self._config.reading_ngrams), content)


# --------------------------------------------------------------------------- search engines


@dataclass
class _Index:
    """Everything built from the knowledge base for one engine."""

    doc_entry: np.ndarray          # question document -> entry index (sorted, contiguous)
    entry_starts: np.ndarray       # first question document of each entry
    doc_text: list[str]
    question_views: dict[str, Any]
    entry_views: dict[str, Any]


class _BaseSearch:
    """Shared aggregation; subclasses define the views (see the module docstring)."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self._entries: tuple[FaqEntry, ...] = kb.entries
        self._index: _Index | None = None
        self._lock = threading.Lock()

    # Subclasses: weights per view and how a text becomes each view's features (token
    # lists, so that the features of several texts can be concatenated).
    def _weights(self) -> dict[str, float]:
        raise NotImplementedError

    def _entry_weight(self) -> float:
        raise NotImplementedError

    def _features(self, text: str, limit: int | None = MAX_QUERY_CHARS) -> dict[str, list[str]]:
        raise NotImplementedError

    def _build_view(self, name: str, features: list[list[str]]) -> Any:
        raise NotImplementedError

    def _score_view(self, name: str, view: Any, feature: list[str]) -> np.ndarray:
        raise NotImplementedError

    def build(self) -> None:
        """Build the index now (otherwise done on the first search)."""
        self._ensure_index()

    @property
    def built(self) -> bool:
        """Whether the index is built (a search needs no build step)."""
        return self._index is not None

    def _ensure_index(self) -> _Index:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build()
        return self._index

    def _build(self) -> _Index:
        doc_entry: list[int] = []
        doc_text: list[str] = []
        starts = [0]
        for i, entry in enumerate(self._entries):
            # Title first: with a single question, the title is often the clearer phrasing.
            # Customers' phrasings (knowledge/phrasings.yml) are question documents too.
            texts = list(dict.fromkeys((entry.title, *entry.questions, *entry.phrasings)))
            doc_text.extend(texts)
            doc_entry.extend([i] * len(texts))
            starts.append(len(doc_text))
        # Documents are analysed whole (the query length limit is for customers' input).
        question_features = [self._features(t, limit=None) for t in doc_text]
        weights = self._weights()
        # The entry document: everything the entry says (see module docstring), analysed
        # text by text so that no n-gram spans two questions and no length limit applies.
        entry_features = []
        for i, entry in enumerate(self._entries):
            parts = question_features[starts[i]:starts[i + 1]]
            parts.append(self._features(entry.answer, limit=None))
            # Link URLs too: answers name a page (「下の「マイページ」から」) and leave its URL to the link.
            parts.extend(self._features(link.url, limit=None) for link in entry.links)
            entry_features.append({name: [t for part in parts for t in part[name]] for name in weights})
        question_views = {name: self._build_view(name, [f[name] for f in question_features]) for name in weights}
        entry_views = {name: self._build_view(name, [f[name] for f in entry_features]) for name in weights}
        self._fit_reranker(question_features, doc_entry)
        return _Index(np.asarray(doc_entry, dtype=np.int64), np.asarray(starts[:-1], dtype=np.int64), doc_text,
                      question_views, entry_views)

    def scores(self, query: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores of every entry, per entry its best question document, and its evidence.

        Args:
            query: Raw customer text.

        Returns:
            (entry scores in [0, 1], index of each entry's best question document, word
            evidence of each entry in [0, 1] (:attr:`SearchHit.evidence`)).
        """
        index = self._ensure_index()
        n_entries = len(self._entries)
        if not n_entries:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        features = self._features(query if isinstance(query, str) else "")
        weights = self._weights()
        q_total = np.zeros(len(index.doc_text), dtype=np.float32)
        e_total = np.zeros(n_entries, dtype=np.float32)
        evidence = np.zeros(n_entries, dtype=np.float32)
        for name, weight in weights.items():
            q_view = self._score_view(name, index.question_views[name], features[name])
            e_view = self._score_view(name, index.entry_views[name], features[name])
            q_total += weight * q_view
            e_total += weight * e_view
            if name == EVIDENCE_VIEW:
                evidence = np.maximum(np.maximum.reduceat(q_view, index.entry_starts), e_view)
        best = np.maximum.reduceat(q_total, index.entry_starts) if len(q_total) else np.zeros(n_entries)
        # First document reaching the maximum inside each entry's contiguous block.
        positions = np.arange(len(q_total), dtype=np.int64)
        positions[q_total != best[index.doc_entry]] = len(q_total)
        first_best = np.minimum.reduceat(positions, index.entry_starts)
        share = self._entry_weight()
        total = self._rerank((1 - share) * best + share * e_total, features)
        return np.clip(total, 0.0, 1.0), first_best, evidence

    # Learned re-ranking (FaqSearch only; the baselines keep plain scores).
    def _fit_reranker(self, question_features: list[dict[str, list[str]]], doc_entry: list[int]) -> None:
        return None

    def _rerank(self, total: np.ndarray, features: dict[str, list[str]]) -> np.ndarray:
        return total

    def search(self, query: str, top: int = 5) -> list[SearchHit]:
        """The entries that would answer ``query``, best first.

        Args:
            query: Raw customer text (any length; HTML, emoji and control characters are fine).
            top: How many hits at most.

        Returns:
            Up to ``top`` hits with a score above 0; empty when the query has no usable text.
        """
        if top <= 0 or not self._entries or not isinstance(query, str):
            return []
        total, best_doc, evidence = self.scores(query)
        order = np.argsort(-total, kind="stable")[:top]
        index = self._ensure_index()
        hits = []
        for i in order:
            score = float(total[i])
            if score <= 0:
                break
            entry = self._entries[i]
            hits.append(SearchHit(faq_id=entry.id, title=entry.title, category=entry.category,
                                  score=round(score, 4), matched=index.doc_text[best_doc[i]],
                                  evidence=round(float(evidence[i]), 4)))
        return hits


# Indexes already built in this process, by content (:meth:`FaqSearch._content_key`): another
# search over the same entries, synonyms and weights (a second LiveKnowledge, a copied knowledge
# folder, a reload that changed nothing the search reads) takes the built one instead of building
# it again (seconds: the re-ranker's fit). The last two are kept.
_BUILT: OrderedDict[tuple[Any, ...], tuple[Any, ...]] = OrderedDict()
_BUILT_LOCK = threading.Lock()
_BUILT_KEEP = 2


class FaqSearch(_BaseSearch):
    """FAQ search over a knowledge base, no training needed (see the module docstring).

    Example::

        search = FaqSearch.from_directory(Path("knowledge"))
        search.search("住所を変えたい", top=3)[0].faq_id   # 'change-address'
    """

    def __init__(self, kb: KnowledgeBase, synonyms: Path | None = None,
                 config: SearchConfig | None = None) -> None:
        """Prepare the search (the index is built on the first query or :meth:`build`).

        Args:
            kb: The knowledge base.
            synonyms: The editors' ``synonyms.yml``; ``None`` or a missing file: no synonyms.
            config: Weights and switches; the defaults are the benchmarked ones.

        Raises:
            KnowledgeError: The synonym file is malformed.
        """
        super().__init__(kb)
        self.config = config or SearchConfig()
        self._view_weights = self.config.view_weights()
        normalizer = load_normalizer(synonyms) if synonyms is not None else Normalizer()
        self._synonyms_text = synonyms.read_text(encoding="utf-8") if synonyms is not None else ""
        self._analyze = _Analyzer(normalizer, self.config)
        self._vectors: StaticVectors | None = None
        self._reranker: QuestionReranker | None = None

    @classmethod
    def from_directory(cls, kb_dir: Path, config: SearchConfig | None = None) -> FaqSearch:
        """Load ``kb_dir`` (``faq/*.yml``) and ``kb_dir/synonyms.yml`` when present.

        Args:
            kb_dir: A knowledge directory.
            config: Optional weights and switches.

        Returns:
            The search.

        Raises:
            KnowledgeError: The knowledge or the synonym file is malformed.
        """
        kb_dir = Path(kb_dir)
        synonyms = kb_dir / "synonyms.yml"
        return cls(load_knowledge(kb_dir), synonyms if synonyms.exists() else None, config)

    def _weights(self) -> dict[str, float]:
        return self._view_weights

    def _entry_weight(self) -> float:
        return self.config.entry_weight

    def _content_key(self) -> tuple[Any, ...]:
        """Everything the index is built from: weights, synonym table, and each entry's searched text."""
        entries = tuple((e.id, e.title, e.questions, e.phrasings, e.answer, tuple(link.url for link in e.links))
                        for e in self._entries)
        return (self.config, self._synonyms_text, entries)

    def _build(self) -> _Index:
        key = self._content_key()
        with _BUILT_LOCK:
            built = _BUILT.get(key)
            if built is not None:
                _BUILT.move_to_end(key)
        if built is not None:
            index, self._reranker, self._view_weights, self._vectors = built
            return index
        index = self._build_new()
        with _BUILT_LOCK:
            _BUILT[key] = (index, self._reranker, self._view_weights, self._vectors)
            while len(_BUILT) > _BUILT_KEEP:
                _BUILT.popitem(last=False)
        return index

    def _build_new(self) -> _Index:
        if "vector" in self._view_weights:
            self._vectors = load_static_vectors(self.config.vector_package)
            if self._vectors is None:
                # No vectors installed: renormalise the BM25 weights, keep searching.
                self._view_weights = {k: v for k, v in self._view_weights.items() if k != "vector"}
                total = sum(self._view_weights.values())
                self._view_weights = {k: v / total for k, v in self._view_weights.items()}
        return super()._build()

    def _features(self, text: str, limit: int | None = MAX_QUERY_CHARS) -> dict[str, list[str]]:
        analysis = self._analyze(text, limit)
        return {"word": analysis.words, "reading": analysis.reading, "vector": analysis.content}

    @staticmethod
    def _rerank_tokens(features: dict[str, list[str]]) -> list[str]:
        return features["word"] + ["r:" + gram for gram in features["reading"]]

    def _fit_reranker(self, question_features: list[dict[str, list[str]]], doc_entry: list[int]) -> None:
        self._reranker = QuestionReranker.fit([self._rerank_tokens(f) for f in question_features], doc_entry,
                                              len(self._entries), self.config.rerank)

    def _rerank(self, total: np.ndarray, features: dict[str, list[str]]) -> np.ndarray:
        if self._reranker is None:
            return total
        weight = self.config.rerank.weight
        return (1 - weight) * total + weight * self._reranker.probabilities(self._rerank_tokens(features))

    def _build_view(self, name: str, features: list[list[str]]) -> Any:
        if name == "vector":
            # Only built when the vectors loaded ("vector" is dropped from the weights otherwise).
            vectors = self._vectors
            width = vectors.table.shape[1] if vectors is not None else 1
            matrix = np.zeros((len(features), width), dtype=np.float32)
            for i, words in enumerate(features):
                vec = vectors.mean(words) if vectors is not None else None
                if vec is not None:
                    matrix[i] = vec
            return matrix
        return _Bm25View(features, self.config.k1, self.config.b)

    def _score_view(self, name: str, view: Any, feature: list[str]) -> np.ndarray:
        if name == "vector":
            vec = self._vectors.mean(feature) if self._vectors is not None else None
            if vec is None:
                return np.zeros(view.shape[0], dtype=np.float32)
            floor = self.config.vector_floor
            return np.clip((view @ vec - floor) / (1 - floor), 0.0, 1.0).astype(np.float32)
        return view.scores(feature)


# --------------------------------------------------------------------------- evaluation


def eval_search(search: Any, queries: list[dict]) -> dict:
    """Retrieval quality on labelled queries.

    A query counts as a hit at k when any of its relevant ids is among the first k hits.
    MRR is the mean reciprocal rank of the first relevant hit within the top
    ``max(EVAL_KS)`` (10) hits, 0 when none is there.

    Args:
        search: The search to evaluate (:class:`FaqSearch`, or a baseline with the same
            ``kb`` and ``search`` interface).
        queries: Items ``{"query": str, "relevant": [faq ids]}`` (see :func:`read_queries`).

    Returns:
        ``{"hit@1", "hit@5", "hit@10", "mrr"}`` as fractions in [0, 1], and ``queries`` (count).

    Raises:
        ValueError: A relevant id does not exist in the searched knowledge base.
    """
    depth = max(EVAL_KS)
    known = set(search.kb.ids)
    hits_at = dict.fromkeys(EVAL_KS, 0)
    reciprocal = 0.0
    for item in queries:
        relevant = set(item["relevant"])
        unknown = sorted(relevant - known)
        if unknown:
            raise ValueError(f"質問「{item['query']}」の正解 id「{', '.join(unknown)}」はナレッジにありません。"
                             f"対処: 評価するナレッジフォルダ（--kb）と正解 id を確認してください。")
        ranked = [h.faq_id for h in search.search(item["query"], top=depth)]
        rank = next((pos for pos, faq_id in enumerate(ranked, start=1) if faq_id in relevant), None)
        if rank is None:
            continue
        reciprocal += 1.0 / rank
        for k in EVAL_KS:
            if rank <= k:
                hits_at[k] += 1
    count = len(queries)
    result: dict[str, float | int] = {f"hit@{k}": (hits_at[k] / count if count else 0.0) for k in EVAL_KS}
    result["mrr"] = reciprocal / count if count else 0.0
    result["queries"] = count
    return result


def read_queries(path: Path) -> list[dict]:
    """Read a JSON Lines file of labelled queries: ``{"query": "...", "relevant": ["id", ...]}``.

    Blank lines are skipped. Every error names the file and the line.

    Args:
        path: The ``.jsonl`` file.

    Returns:
        Items with ``query`` (str) and ``relevant`` (list of ids).

    Raises:
        KnowledgeError: The file is missing or not UTF-8, or a line is not a JSON object
            with a non-empty ``query`` string and a non-empty ``relevant`` list of ids.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise KnowledgeError(path, None, "評価用の質問ファイルが見つかりません。",
                             "--queries にファイルのパスを正しく指定してください。") from exc
    except UnicodeDecodeError as exc:
        raise KnowledgeError(path, None, "UTF-8 で保存されていません。",
                             "エディタで文字コードを UTF-8 にして保存し直してください。") from exc
    example = '{"query": "住所を変えたい", "relevant": ["change-address"]}'
    items: list[dict] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{lineno}行目"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise KnowledgeError(path, where, f"JSON として読めません（{exc.msg}、{exc.colno}文字目）。",
                                 f"1行に1つ、{example} の形で書いてください。") from exc
        if not isinstance(raw, dict):
            raise KnowledgeError(path, where, "行が JSON のオブジェクト（{...}）になっていません。",
                                 f"{example} の形で書いてください。")
        query = raw.get("query")
        if not isinstance(query, str) or not query.strip():
            raise KnowledgeError(path, where, "`query`（質問の文字列）がありません。",
                                 f"{example} のように `query` を書いてください。")
        relevant = raw.get("relevant")
        if isinstance(relevant, str):
            relevant = [relevant]
        if not isinstance(relevant, list) or not relevant or not all(isinstance(r, str) and r for r in relevant):
            raise KnowledgeError(path, where, "`relevant`（正解の FAQ id のリスト）がありません。",
                                 f"{example} のように id を1つ以上書いてください。")
        items.append({"query": query, "relevant": relevant})
    return items
