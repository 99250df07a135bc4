"""GiNZA's static word vectors (the ``ja_ginza`` package's ``vocab/vectors``), read once per process.

One reader for both users: the NLU featurizer (:mod:`bot.nlu.ginza_vectors`) and the FAQ
search (:mod:`bot.knowledge.search`), so the ~220 MB table is in memory once. It is read
with numpy and msgpack, without spaCy's pipeline (parser, NER and a second Sudachi
dictionary), and words are looked up by spaCy's own string hash.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger(__name__)

def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A, the hash spaCy uses for its string keys (``spacy.strings.hash_string``).

    Re-implemented so that reading the vectors needs neither spaCy nor thinc (importing
    them pulls in TensorFlow, ~3 s). Tested against spaCy in tests/test_kb_search.py.
    """
    mask = 0xFFFFFFFFFFFFFFFF
    m = 0xC6A4A7935BD1E995
    r = 47
    length = len(data)
    h = (seed ^ (length * m)) & mask
    end = length - (length % 8)
    for i in range(0, end, 8):
        k = int.from_bytes(data[i:i + 8], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h ^= k
        h = (h * m) & mask
    tail = data[end:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * m) & mask
    h ^= h >> r
    h = (h * m) & mask
    h ^= h >> r
    return h


@dataclass(frozen=True)
class StaticVectors:
    """A spaCy static vector table: string hash -> row of a (rows, width) float32 matrix."""

    table: np.ndarray
    key2row: dict[int, int]

    @property
    def width(self) -> int:
        """Number of dimensions."""
        return int(self.table.shape[1])

    def get(self, word: str) -> np.ndarray | None:
        """The vector of ``word`` (a Sudachi normalised form), or ``None`` when unknown."""
        row = self.key2row.get(murmurhash64a(word.encode("utf-8")))
        return None if row is None else self.table[row]

    def mean(self, words: Iterable[str]) -> np.ndarray | None:
        """Unit-length mean vector of the known words, or ``None`` when none is known."""
        rows = [self.key2row.get(murmurhash64a(w.encode("utf-8"))) for w in words]
        known = [r for r in rows if r is not None]
        if not known:
            return None
        vec = self.table[known].mean(axis=0)
        length = float(np.linalg.norm(vec))
        return vec / length if length > 0 else None


@lru_cache(maxsize=2)
def load_static_vectors(package: str) -> StaticVectors | None:
    """Read the static vectors of an installed spaCy model package, once per process.

    Reads ``vocab/vectors`` (numpy) and ``vocab/key2row`` (msgpack) directly (~0.3 s);
    see :mod:`bot.nlu.ginza_vectors`, which reads the same files through spaCy.

    Args:
        package: Package name, e.g. ``ja_ginza``.

    Returns:
        The table, or ``None`` (with a warning) when the package or its vectors are missing;
        the search then runs on its BM25 views alone.
    """
    import msgpack

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        log.warning("spaCy model package %r is not installed; FAQ search runs without word vectors "
                    "(fix: `make setup` installs ja-ginza)", package)
        return None
    package_dir = Path(list(spec.submodule_search_locations)[0])
    found = sorted(package_dir.glob("*/vocab/vectors"))
    if not found:
        log.warning("%s has no vocab/vectors; FAQ search runs without word vectors", package_dir)
        return None
    vocab_dir = found[0].parent
    cfg = vocab_dir / "vectors.cfg"
    if cfg.exists() and json.loads(cfg.read_text(encoding="utf-8")).get("mode", "default") != "default":
        log.warning("%s: floret vectors are not supported; FAQ search runs without word vectors", vocab_dir)
        return None
    table = np.load(vocab_dir / "vectors", allow_pickle=False)
    key2row = msgpack.unpackb((vocab_dir / "key2row").read_bytes(), strict_map_key=False)
    return StaticVectors(table=np.asarray(table, dtype=np.float32), key2row=key2row)
