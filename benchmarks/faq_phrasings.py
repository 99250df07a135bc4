"""Customers' phrasings for the FAQ search (``knowledge/phrasings.yml``) from labelled messages.

The read held-out generations (``benchmarks/retired_heldout/``) and the writers' batches
(``benchmarks/writer_batches/``) hold customer messages labelled with the FAQ entry that answers
them. They already train the classifier's ``faq`` intent (``data/nlu/retired_heldout.yml``,
``data/nlu/writer_batches.yml``); this script gives the same messages, with their entry, to the
FAQ search, which matches them like the entries' questions (:mod:`bot.knowledge.phrasings`).

Left out: messages also in a tuning set or in any held-out generation (read or not), messages
equal to a question of the entry itself (nothing to add) or of another entry (the editors'
question decides), messages with a card number, telephone number or e-mail address (writers'
examples, but the file must never hold a customer's), and ids no entry has. Phrasings already in the file are kept (editors add
their own), unless a later held-out generation holds the same text; new ones are appended per entry.

Usage: ``python -m benchmarks.faq_phrasings`` (``tests/test_retired_heldout.py`` checks that the
file holds every phrasing this would add, and none of a held-out generation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.retire_heldout import GENERATIONS, RETIRED  # noqa: E402
from benchmarks.writer_batches import batch_files  # noqa: E402
from bot.evaluation.report import (HELDOUT_GENERATIONS, UNREAD_GENERATIONS, heldout_sets,  # noqa: E402
                                   match_key, tuning_texts)
from bot.knowledge.loader import load_knowledge, question_key  # noqa: E402
from bot.knowledge.model import KnowledgeBase  # noqa: E402
from bot.knowledge.phrasings import has_personal_data, phrasings_path, read_phrasings  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402

KNOWLEDGE = PROJECT_ROOT / "knowledge"
HEADER = """\
# お客さまの言い回し（FAQ ごと）: FAQ 検索が、各エントリの questions と同じように照合します。
# 実際のお客さまは「引っ越したけど箱どうなる？」「ﾒｲｷﾞ ﾍﾝｺｳ」のように書きます。答えが分かっている
# お客さまの文を、その FAQ の id の下に1行ずつ足してください。回答・タイトル・ボットの学習データは
# 変わりません（保存すると1秒ほどで検索に使われます。再学習は不要です）。
# 最初の内容は、読み終えた評価セットと独立した書き手の文から作りました（benchmarks/faq_phrasings.py）。
# 書き方: phrasings: の下に「  <FAQ の id>:」、その下に「    - 言い回し」。
# 氏名・電話番号・メールアドレス・カード番号などの個人情報は消してから足してください。
"""


def source_files() -> list[Path]:
    """Labelled messages: the retired generations' customer questions, then the writers' batches."""
    return [RETIRED / generation / "heldout.jsonl" for generation in GENERATIONS] + batch_files()


def protected_texts() -> set[str]:
    """Texts that must stay unseen: every tuning set and held-out generation (read or not)."""
    protected = tuning_texts(PROJECT_ROOT / "benchmarks" / "data")
    for generation in (*HELDOUT_GENERATIONS, *UNREAD_GENERATIONS):
        for path in heldout_sets(PROJECT_ROOT / "tests" / "data" / generation):
            protected |= {match_key(json.loads(line)["text"]) for line in path.read_text(encoding="utf-8").splitlines()
                          if line.strip()}
    return protected


def new_phrasings(directory: Path = KNOWLEDGE, kb: KnowledgeBase | None = None,
                  protected: set[str] | None = None) -> dict[str, list[str]]:
    """Per FAQ id, the labelled messages that qualify (module docstring), in source order.

    Args:
        directory: The knowledge folder (read when ``kb`` is not given).
        kb: Its loaded knowledge base, if the caller has it.
        protected: :func:`protected_texts`, if the caller has it.
    """
    kb = kb or load_knowledge(directory)
    question_owner = {question_key(q): entry.id for entry in kb.entries for q in (entry.title, *entry.questions)}
    protected = protected_texts() if protected is None else protected
    found: dict[str, list[str]] = {entry.id: [] for entry in kb.entries}
    seen: set[str] = set()
    for path in source_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            text = " ".join(str(row["text"]).split())
            key = question_key(text)
            if (row["label"] not in found or not key or key in seen or key in question_owner
                    or match_key(text) in protected or has_personal_data(text)):
                continue
            seen.add(key)
            found[row["label"]].append(text)
    return {faq_id: texts for faq_id, texts in found.items() if texts}


def merged(directory: Path = KNOWLEDGE) -> dict[str, list[str]]:
    """The file's phrasings with the new ones appended (ids in knowledge order, then others)."""
    current, _ = read_phrasings(directory)
    kb = load_knowledge(directory)
    # A held-out generation written after a phrasing was added may contain the same text
    # (「解約したい」): it leaves the file, so that no evaluation text is ever searched for.
    protected = protected_texts()
    result = {faq_id: [t for t in texts if match_key(t) not in protected] for faq_id, texts in current.items()}
    for faq_id, texts in new_phrasings(directory, kb, protected).items():
        have = {question_key(t) for t in result.get(faq_id, [])}
        result.setdefault(faq_id, []).extend(t for t in texts if question_key(t) not in have)
    position = {faq_id: i for i, faq_id in enumerate(kb.ids)}
    return dict(sorted(result.items(), key=lambda item: position.get(item[0], len(position))))


def render(phrasings: dict[str, list[str]]) -> str:
    """The file's text: the editors' header and the YAML."""
    body = yaml.safe_dump({"phrasings": phrasings}, allow_unicode=True, sort_keys=False, width=10_000)
    return HEADER + body


def main() -> int:
    path = phrasings_path(KNOWLEDGE)
    phrasings = merged()
    path.write_text(render(phrasings), encoding="utf-8")
    print(f"wrote {path.relative_to(PROJECT_ROOT)}: {sum(map(len, phrasings.values()))} phrasings "
          f"of {len(phrasings)} entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
