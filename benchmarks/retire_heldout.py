"""Turn read held-out generations into training data (``data/nlu/retired_heldout.yml``).

A held-out generation is read once, to judge one change; after that it is no longer unseen,
and its floors in ``tests/test_eval.py`` only guard against regressions. Its messages are
then worth more as training data: each generation was written by another independent writer,
in styles the hand-written training data does not have. This script converts the named
generations' labelled messages to Rasa NLU examples:

* FAQ questions (labelled with an FAQ id) -> ``faq``; complaints, everyday text, requests for
  a person, give-ups and small talk keep their intent;
* vague messages (no single right intent: they are asked back) and non-Japanese ones (decided
  by the language check, not the classifier) are left out;
* a message already in the training data, in a tuning set, or in a held-out generation kept
  when these were retired (:data:`KEPT_GENERATIONS`) is left out, compared by ``match_key``, so
  those sets stay unseen. A generation written later is not looked at: like any held-out set, it
  is scored on its messages that are not in the training data (``unseen_only``).

The retired generations' files move from ``tests/data/`` to ``benchmarks/retired_heldout/`` (they
are no longer held out) and leave ``HELDOUT_GENERATIONS``.

Usage: ``python -m benchmarks.retire_heldout heldout_v2 heldout_v3 ...`` (writes the YAML file;
``tests/test_retired_heldout.py`` checks that the file is what the script writes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.evaluation.report import heldout_sets, match_key, training_texts, tuning_texts  # noqa: E402
from bot.knowledge.loader import load_knowledge  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402

DATA = PROJECT_ROOT / "tests" / "data"
RETIRED = PROJECT_ROOT / "benchmarks" / "retired_heldout"
OUT = PROJECT_ROOT / "data" / "nlu" / "retired_heldout.yml"
# The generations in data/nlu/retired_heldout.yml, and those still held out when they were retired.
GENERATIONS = ("heldout_v2", "heldout_v3", "heldout_v4", "heldout_v5", "heldout_v6")
KEPT_GENERATIONS = ("", "heldout_v7", "heldout_v8")
KEPT_INTENTS = {"complaint", "out_of_scope", "request_human", "give_up", "greet", "goodbye", "thanks", "affirm",
                "deny", "bot_challenge"}


def intent_of(label: str, faq_ids: set[str]) -> str | None:
    """The training intent of a held-out label (``None``: not used for training)."""
    if label in faq_ids:
        return "faq"
    return label if label in KEPT_INTENTS else None


def example_line(text: str) -> str | None:
    """``text`` as one Rasa example line, or ``None`` when Rasa would read markup in it."""
    one_line = " ".join(text.split())
    if not one_line or "](" in one_line or "]{" in one_line or one_line.startswith(("#", "/")):
        return None
    return one_line


def retired_examples(generations: tuple[str, ...] | list[str], out: Path = OUT) -> str:
    """The YAML text of ``out`` for ``generations`` (folders under ``benchmarks/retired_heldout``)."""
    header = [
        "# Read held-out generations turned into training data (benchmarks/retire_heldout.py; do not edit by hand).",
        f"# Generations: {', '.join(generations)} (benchmarks/retired_heldout/<generation>/README.md: who wrote them, how;",
        "# each was read once to judge one change). Vague and non-Japanese messages are left out, and so is",
        "# any message also in the training data, a tuning set or a held-out generation still kept.",
    ]
    files = [path for generation in generations for path in heldout_sets(RETIRED / generation)]
    return labelled_to_nlu(files, [g for g in KEPT_GENERATIONS if g not in generations], out, header)


def labelled_to_nlu(files: list[Path], protected_generations: list[str] | tuple[str, ...], out: Path,
                    header: list[str]) -> str:
    """Rasa NLU YAML (for ``out``) of the labelled messages in ``files`` (JSON Lines).

    Args:
        files: ``{"text", "label"}`` files, read in order.
        protected_generations: Held-out folders under ``tests/data`` whose texts must stay unseen.
        out: The file the YAML is for (its current content does not count as training data).
        header: Comment lines that say where the examples come from.
    """
    protected = tuning_texts(PROJECT_ROOT / "benchmarks" / "data")
    for generation in protected_generations:
        for path in heldout_sets(DATA / generation):
            protected |= {match_key(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines()
                          if line.strip()}
    seen = training_texts(out.parent, exclude=out) | protected
    faq_ids = set(load_knowledge(PROJECT_ROOT / "knowledge").ids)
    by_intent: dict[str, list[str]] = defaultdict(list)
    skipped = 0
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            intent = intent_of(row["label"], faq_ids)
            example = example_line(row["text"])
            key = match_key(row["text"])
            if intent is None or example is None or not key or key in seen:
                skipped += 1
                continue
            seen.add(key)
            by_intent[intent].append(example)
    body = ['version: "3.1"', "nlu:"]
    for intent in sorted(by_intent):
        body.append(f"  - intent: {intent}")
        body.append("    examples: |")
        body += [f"      - {text}" for text in by_intent[intent]]
    counts = {intent: len(texts) for intent, texts in sorted(by_intent.items())}
    print(f"{sum(counts.values())} examples {counts}; {skipped} left out", file=sys.stderr)
    return "\n".join(header + body) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("generations", nargs="*", default=list(GENERATIONS),
                        help="folders under benchmarks/retired_heldout (default: those in the file now)")
    args = parser.parse_args(argv)
    OUT.write_text(retired_examples(args.generations), encoding="utf-8")
    print(f"wrote {OUT.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
