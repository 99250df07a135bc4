"""Cheaper fingerprints for Rasa 3.6's training cache: sparse features and tokens.

After every component, ``rasa train`` fingerprints the whole training data for its cache,
features included. Rasa 3.6 turns each sparse feature matrix into text, one
``"(i, j)\\tvalue"`` line per non-zero (``rasa.shared.nlu.training_data.util.sparse_matrix_to_string``),
which took 11 of the 150 s of a ``rasa train`` with 18,500 examples (py-spy, README
"Training cost"). The replacement hashes the same content (shape, coordinates, values) in
C: equal matrices still give equal fingerprints and any changed value a different one, so
the cache behaves as before (old cache entries simply miss once).

Tokens are fingerprinted again after every component too; Rasa hashes each of a token's
five fields separately and then the list (12 of the 150 s). :class:`HashedToken` hashes them
in one go, from the same fields.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import scipy.sparse
from rasa.nlu.tokenizers.tokenizer import Token


def sparse_matrix_fingerprint(matrix: scipy.sparse.spmatrix) -> str:
    """A stable digest of a sparse matrix's shape, coordinates, values and value type.

    Args:
        matrix: Any scipy sparse matrix.

    Returns:
        ``"rows x cols:dtype:sha256"``; equal for matrices with the same non-zeros in the same
        order (what Rasa's text form compares), different when any of them differs.
    """
    coo = matrix.tocoo()
    digest = hashlib.sha256()
    for part in (coo.row.astype(np.int64), coo.col.astype(np.int64), np.ascontiguousarray(coo.data)):
        digest.update(part.tobytes())
    return f"{coo.shape[0]}x{coo.shape[1]}:{coo.data.dtype.str}:{digest.hexdigest()}"


def install() -> None:
    """Make Rasa's ``Features.fingerprint`` use :func:`sparse_matrix_fingerprint` (idempotent).

    ``Features.fingerprint`` looks the function up on the module at call time, so replacing the
    module attribute is enough. Nothing happens if a Rasa version no longer has it.
    """
    from rasa.shared.nlu.training_data import util

    if hasattr(util, "sparse_matrix_to_string"):
        util.sparse_matrix_to_string = sparse_matrix_fingerprint


class HashedToken(Token):
    """A Rasa token whose fingerprint is one hash of all its fields (see module docstring)."""

    def fingerprint(self) -> str:
        """Digest of text, offsets, lemma and data; changes whenever any of them does."""
        fields = json.dumps([self.text, self.start, self.end, self.lemma, self.data], ensure_ascii=False,
                            sort_keys=True, default=repr)
        return hashlib.md5(fields.encode("utf-8"), usedforsecurity=False).hexdigest()
