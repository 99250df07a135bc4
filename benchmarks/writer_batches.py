"""Training text from independent writers (``data/nlu/writer_batches.yml``).

Each batch in ``benchmarks/writer_batches/<batch>/`` was written by a writer who saw no
repository data (no training data, no code, no evaluation set) to a short brief that names one
kind of text (``brief.md``): social-media posts, dialogue lines and letters, complaints and
give-ups, customer questions. Held-out generations showed that what another writer actually
writes teaches the classifier more than text written to a description of the misses. The batches
are converted as the retired held-out generations are (:func:`benchmarks.retire_heldout.labelled_to_nlu`):
FAQ ids become ``faq``; texts also in the training data, a tuning set or a held-out generation
(:data:`PROTECTED_GENERATIONS`, the unread one included) are left out.

Usage: ``python -m benchmarks.writer_batches`` (writes the YAML file; ``tests/test_retired_heldout.py``
checks that the file is what this writes).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.retire_heldout import labelled_to_nlu  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402

BATCHES = PROJECT_ROOT / "benchmarks" / "writer_batches"
OUT = PROJECT_ROOT / "data" / "nlu" / "writer_batches.yml"
# Held-out generations (w1-w4: heldout_v9 unread then; w5-w7: heldout_v10 unread then; the
# later generations 11 and 12 too: a text of theirs that a batch also holds is left out).
PROTECTED_GENERATIONS = ("", "heldout_v7", "heldout_v8", "heldout_v9", "heldout_v10", "heldout_v11", "heldout_v12")


def batch_files() -> list[Path]:
    """Every batch's ``texts.jsonl``, in batch order."""
    return sorted(BATCHES.glob("*/texts.jsonl"))


def batch_examples(out: Path = OUT) -> str:
    """The YAML text of ``out``."""
    names = [path.parent.name for path in batch_files()]
    header = [
        "# Training text from independent writers (benchmarks/writer_batches.py; do not edit by hand).",
        f"# Batches: {', '.join(names)} (benchmarks/writer_batches/<batch>/brief.md: what each was asked to write).",
        "# Texts also in the training data, a tuning set or a held-out generation are left out.",
    ]
    return labelled_to_nlu(batch_files(), PROTECTED_GENERATIONS, out, header)


def main() -> int:
    OUT.write_text(batch_examples(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
