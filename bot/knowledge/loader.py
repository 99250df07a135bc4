"""Load and check ``knowledge/faq/*.yml``; every error names the file, the entry and the fix."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.errors import KnowledgeError
from bot.knowledge.facts import FACTS_FILE, Facts, load_facts, resolve
from bot.knowledge.model import FaqEntry, KnowledgeBase, Link
from bot.knowledge.phrasings import read_phrasings
from bot.knowledge.yaml_io import SAFE_YAML_LOADER, read_yaml  # noqa: F401 - SAFE_YAML_LOADER re-exported
from bot.text.normalize import fold

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# The classifier needs about this many phrasings to learn an entry; fewer is a warning of
# `bot kb validate`, not an error (search still finds the entry, e.g. right after an import).
RECOMMENDED_QUESTIONS = 10
# Answers longer than this are a warning (of `bot kb validate` and `bot kb import`), not an
# error: real FAQ tables have answers of well over 1,000 characters.
LONG_ANSWER_CHARS = 400
# The widget shows about this many characters of an answer and folds the rest behind 「続きを読む」
# (FOLD_CHARS in bot/server/static/widget/widget.js; tests/test_knowledge.py checks they agree).
WIDGET_FOLD_CHARS = 300
# Hard safety cap for absurd values (the same as one spreadsheet cell); this one is an error.
MAX_ANSWER_CHARS = 10_000
# Why a long answer is worth a look, and the fix (shared by `bot kb validate` and `bot kb import`).
LONG_ANSWER_REASON = (f"ウィジェットでは長い回答は約 {WIDGET_FOLD_CHARS} 文字で折りたたまれ、"
                      "お客さまが「続きを読む」を押すまで残りは表示されません。")
LONG_ANSWER_FIX = "大事なことを最初の数行に書き、要点に絞って短くするか、詳しい説明はリンク先に移してください。"
REQUIRED_FIELDS = ("id", "category", "title", "questions", "answer")

logger = logging.getLogger(__name__)


def question_key(text: str) -> str:
    """Key under which two questions count as the same question.

    Questions that differ only in width, case, long-vowel/wave variants, punctuation,
    spaces or control characters have the same key. The one rule for duplicate questions,
    used by ``bot kb validate`` (:mod:`bot.knowledge.validate`) and ``bot kb import``
    (:mod:`bot.knowledge.spreadsheet`), so an import never creates what the validator rejects.

    Args:
        text: A question.

    Returns:
        The key; empty for a question of punctuation only (such questions are never compared).
    """
    return "".join(ch for ch in fold(text) if unicodedata.category(ch)[0] not in "PZC")


def long_answer_notice(length: int) -> tuple[str, str] | None:
    """Problem and fix (Japanese) for an answer of ``length`` characters, or ``None`` when it is not long.

    A long answer is a warning, never an error: the bot answers with it all the same.

    Args:
        length: Characters of the answer (after stripping).

    Returns:
        ``(problem, fix)`` when ``length`` is over :data:`LONG_ANSWER_CHARS`, else ``None``.
    """
    if length <= LONG_ANSWER_CHARS:
        return None
    return f"回答が {length:,} 文字あります（目安は {LONG_ANSWER_CHARS} 文字以内）。{LONG_ANSWER_REASON}", LONG_ANSWER_FIX


def _text_list(value: Any, path: Path, entry_id: str, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KnowledgeError(path, entry_id, f"`{field_name}` は文字列のリストで書いてください。",
                             f"例: `{field_name}:` の下に `- ...` を1行ずつ書きます。")
    return tuple(v.strip() for v in value if v.strip())


def _parse_links(value: Any, path: Path, entry_id: str) -> tuple[Link, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise KnowledgeError(path, entry_id, "`links` はリストで書いてください。",
                             "例: `- title: マイページ` と `url: https://...` の組を並べます。")
    links = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("title"), str) \
                or not isinstance(item.get("url"), str):
            raise KnowledgeError(path, entry_id, f"リンク {item!r} に title と url が必要です。",
                                 "`title:` と `url:` を両方書いてください。")
        if not re.match(r"^(https?://|\{urls\.)", item["url"]):
            raise KnowledgeError(path, entry_id, f"リンク先「{item['url']}」は http(s) ではありません。",
                                 "https:// で始まる URL を書いてください。")
        links.append(Link(title=item["title"].strip(), url=item["url"].strip()))
    return tuple(links)


def parse_entry(raw: Any, path: Path, index: int, facts: Facts | None = None) -> FaqEntry:
    """Check one raw YAML entry and turn it into a :class:`FaqEntry`.

    Args:
        raw: The mapping read from YAML.
        path: Its file, for error messages.
        index: Its position in the file (1-based), named when the id is missing.
        facts: The fact sheet whose values replace ``{name}`` placeholders in the answer and
            the links; ``None`` keeps the text as written (spreadsheet export and import).

    Returns:
        The entry.

    Raises:
        KnowledgeError: A field is missing or malformed.
    """
    label = f"{index}番目"
    if not isinstance(raw, dict):
        raise KnowledgeError(path, label, "エントリが `id:` などの項目を持つ形になっていません。",
                             "`- id: ...` で始まるブロックとして書いてください。")
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not ID_PATTERN.match(entry_id):
        raise KnowledgeError(path, str(entry_id or label), "`id` は半角英小文字・数字・ハイフンで書いてください。",
                             "例: `id: change-address`（一度公開した id は変えないでください）")
    for name in REQUIRED_FIELDS:
        value = raw.get(name)
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            raise KnowledgeError(path, entry_id, f"`{name}` がありません。", f"`{name}:` を追加してください。")
    for name in ("category", "title", "answer"):
        if not isinstance(raw[name], str):
            raise KnowledgeError(path, entry_id, f"`{name}` は文字列で書いてください。",
                                 f"`{name}: ...` の形にしてください。")
    questions = _text_list(raw["questions"], path, entry_id, "questions")
    if not questions:
        raise KnowledgeError(path, entry_id, "質問例がありません。",
                             f"言い回しの違う質問例を {RECOMMENDED_QUESTIONS} 件ほど書いてください。")
    answer = raw["answer"].strip()
    if len(answer) > MAX_ANSWER_CHARS:  # long answers (over LONG_ANSWER_CHARS) are only a warning of validate
        raise KnowledgeError(path, entry_id, f"回答が {len(answer):,} 文字あります（上限 {MAX_ANSWER_CHARS:,} 文字）。",
                             "内容を確認し、要点に絞るか、詳しい説明はリンク先に移してください。")
    links = _parse_links(raw.get("links"), path, entry_id)
    if facts is not None:
        answer = resolve(answer, facts, path, entry_id)
        links = tuple(Link(resolve(link.title, facts, path, entry_id), resolve(link.url, facts, path, entry_id))
                      for link in links)
    return FaqEntry(
        id=entry_id,
        category=raw["category"].strip(),
        title=raw["title"].strip(),
        questions=questions,
        answer=answer,
        links=links,
        related=_text_list(raw.get("related"), path, entry_id, "related"),
        source=path,
    )


def assistant_name(directory: Path) -> str:
    """What the chat calls itself: 「<service.name>の<service.chat_name>」 from ``directory``'s own
    ``facts.yml``, only the chat name when the folder has none (e.g. made by ``bot kb import --kb``).
    """
    own = directory / FACTS_FILE
    facts = load_facts(path=own) if own.exists() else Facts()
    chat = facts.values.get("service.chat_name") or KnowledgeBase.assistant_name
    service = facts.values.get("service.name")
    return f"{service}の{chat}" if service else chat


def load_knowledge(directory: Path, resolve_facts: bool = True) -> KnowledgeBase:
    """Load every ``*.yml`` under ``directory/faq`` (sorted by file name).

    Args:
        directory: The knowledge directory (``knowledge/`` by default).
        resolve_facts: Replace ``{name}`` placeholders with the fact sheet's values
            (:mod:`bot.knowledge.facts`); ``False`` keeps them (spreadsheet import and export,
            so a round trip keeps the placeholders).

    Returns:
        The knowledge base, each entry with its customers' phrasings (``phrasings.yml``; a
        broken part of that file is logged and left out, never an error: :mod:`bot.knowledge.phrasings`).

    Raises:
        KnowledgeError: A file or entry is malformed, an id is used twice or a
            ``related`` id does not exist.
    """
    faq_dir = directory / "faq"
    files = sorted(faq_dir.glob("*.yml"))
    if not files:
        raise KnowledgeError(faq_dir, None, "FAQ ファイル（*.yml）が見つかりません。",
                             "knowledge/faq/ に カテゴリごとの YAML ファイルを置いてください。")
    facts = load_facts(directory) if resolve_facts else None
    entries: list[FaqEntry] = []
    seen: dict[str, Path] = {}
    for path in files:
        doc = read_yaml(path)
        raw_entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(raw_entries, list):
            raise KnowledgeError(path, None, "ファイルに「entries:」の行がありません。",
                                 "説明のコメントのあとに「entries:」の行を書き、その下に「  - id: ...」でエントリを並べてください。")
        for index, raw in enumerate(raw_entries, start=1):
            entry = parse_entry(raw, path, index, facts)
            if entry.id in seen:
                raise KnowledgeError(path, entry.id, f"id「{entry.id}」は {seen[entry.id]} でも使われています。",
                                     "どちらかの id を別の名前にしてください。")
            seen[entry.id] = path
            entries.append(entry)
    for entry in entries:
        for rel in entry.related:
            if rel not in seen:
                raise KnowledgeError(entry.source, entry.id, f"related の「{rel}」という id はありません。",
                                     f"存在する id（例: {', '.join(list(seen)[:3])}）に直してください。")
    phrasings, findings = read_phrasings(directory, set(seen))
    for finding in findings:
        logger.warning("%s:%s（%s）: %s %s", finding.path, finding.line or "-", finding.entry or "-",
                       finding.problem, finding.fix)
    entries = [replace(entry, phrasings=phrasings[entry.id]) if entry.id in phrasings else entry
               for entry in entries]
    return KnowledgeBase(entries=tuple(entries), assistant_name=assistant_name(directory))
