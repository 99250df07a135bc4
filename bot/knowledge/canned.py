"""Canned replies (定型文) of the agent console: ``knowledge/canned.yml``.

Editors keep each reply as a shortcut, a title and a text. The text may carry placeholders,
filled when an agent opens a ticket (:func:`render`):

- ``{customer_name}``: the customer's name with 「さま」 (「山田 太郎さま」), or 「お客さま」 when
  the ticket has no name;
- ``{agent_name}``: the agent's display name (「佐藤」);
- ``{faq:change-address}``: that FAQ's answer with its link lines, as the bot sends it;
- a fact of ``knowledge/facts.yml`` (``{phone}``, ``{hours.staffed}``), as in FAQ answers.

:func:`read_canned` reads the file (each malformed entry is a finding, the others load);
:func:`check_canned` finds what `bot kb validate` reports as errors: an unknown FAQ id or
placeholder, a duplicate shortcut, an empty text, a variant the style list forbids. Each
finding names the line, the entry and the fix, in Japanese. A folder without ``canned.yml``
simply has no canned replies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from bot.knowledge.editor_files import Finding, read_editor_yaml
from bot.knowledge.facts import Facts, contradictions
from bot.knowledge.model import KnowledgeBase
from bot.knowledge.style import Term, style_problems
from bot.knowledge.yaml_io import entry_lines

CANNED_FILE = "canned.yml"
SHORTCUT_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Anything in braces is meant as a placeholder: an unknown one must be an error, never sent as written.
PLACEHOLDER = re.compile(r"\{([^{}\n]*)\}")
CUSTOMER_NAME = "customer_name"
AGENT_NAME = "agent_name"
FAQ_PREFIX = "faq:"
UNKNOWN_CUSTOMER = "お客さま"
HONORIFIC = "さま"
MAX_TITLE_CHARS = 30
# A placeholder list for the fixes (the editors' guide has the full description).
KNOWN_PLACEHOLDERS = "{customer_name}、{agent_name}、{faq:FAQ の id}、facts.yml の項目名（例: {phone}）"


@dataclass(frozen=True)
class CannedReply:
    """One canned reply as written (placeholders kept).

    Attributes:
        shortcut: What the agent types after 「/」 (lower-case ASCII letters, digits, hyphens).
        title: Shown in the picker; its words find the reply too.
        text: The reply, with placeholders.
        line: Line of the entry in the file (1-based; ``None`` when unknown).
    """

    shortcut: str
    title: str
    text: str
    line: int | None = None


def canned_path(directory: Path) -> Path:
    """``directory/canned.yml`` (it may not exist)."""
    return directory / CANNED_FILE


def read_canned(directory: Path) -> tuple[list[CannedReply], list[Finding]]:
    """The well-formed entries of ``directory/canned.yml`` and a finding for each malformed one.

    Args:
        directory: A knowledge folder.

    Returns:
        ``(replies, findings)``; both empty when the folder has no ``canned.yml``.
    """
    path = canned_path(directory)
    if not path.exists():
        return [], []
    text, doc, unreadable = read_editor_yaml(path, "ほかの定型文", "text: |- の次の行から書いてください。")
    if unreadable is not None:
        return [], [unreadable]
    raw_entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(raw_entries, list):
        return [], [Finding(path, None, None, "ファイルに「entries:」の行がありません。",
                            "説明のコメントのあとに「entries:」の行を書き、その下に「  - shortcut: ...」で定型文を並べてください。")]
    lines = entry_lines(text)
    replies: list[CannedReply] = []
    findings: list[Finding] = []
    for index, raw in enumerate(raw_entries, start=1):
        line = lines[index - 1] if index <= len(lines) else None
        reply, problem = _parse(raw, index, line)
        if problem is not None:
            findings.append(Finding(path, line, *problem))
        elif reply is not None:
            replies.append(reply)
    return replies, findings


def _parse(raw: Any, index: int, line: int | None) -> tuple[CannedReply | None, tuple[str, str, str] | None]:
    """One entry, or ``(entry label, problem, fix)``."""
    label = f"{index}番目"
    if not isinstance(raw, dict):
        return None, (label, "定型文が「shortcut:」などの項目を持つ形になっていません。",
                      "「- shortcut: ...」で始まり、title: と text: を持つブロックとして書いてください。")
    shortcut = raw.get("shortcut")
    if not isinstance(shortcut, str) or not SHORTCUT_PATTERN.match(shortcut.strip()):
        return None, (str(shortcut or label), "「shortcut」は半角英小文字・数字・ハイフンで書いてください"
                      "（担当者が返信欄で「/」に続けて入力する名前です）。", "例: 「shortcut: greeting」")
    shortcut = shortcut.strip()
    title = raw.get("title")
    if not isinstance(title, str) or not title.strip():
        return None, (shortcut, "「title」（定型文の一覧に表示する名前）がありません。",
                      "「title: 最初のあいさつ」のように、日本語の短い名前を書いてください。")
    text = raw.get("text")
    if text is None or (isinstance(text, str) and not text.strip()):
        return None, (shortcut, "「text」（お客さまに送る文章）が空です。",
                      "「text: |-」の次の行から、字下げしてお客さまへの文章を書いてください。")
    if not isinstance(text, str):
        return None, (shortcut, "「text」は文章（文字列）で書いてください。",
                      "「text: |-」の次の行から、字下げしてお客さまへの文章を書いてください。")
    return CannedReply(shortcut, title.strip(), text.strip(), line), None


def placeholder_problems(text: str, kb: KnowledgeBase | None, facts: Facts) -> list[tuple[str, str]]:
    """Unknown placeholders of one text: ``(problem, fix)`` pairs in Japanese.

    Args:
        text: A canned reply's text as written.
        kb: The FAQ knowledge (``None``: FAQ ids are not checked, e.g. the FAQ files are broken).
        facts: The fact sheet of the folder.
    """
    found = []
    for match in PLACEHOLDER.finditer(text):
        name = match.group(1).strip()
        if name in (CUSTOMER_NAME, AGENT_NAME) or name in facts.values:
            continue
        if name.startswith(FAQ_PREFIX):
            faq_id = name[len(FAQ_PREFIX):].strip()
            if kb is not None and kb.get(faq_id) is None:
                examples = "、".join(kb.ids[:3])
                found.append((f"「{match.group(0)}」の FAQ「{faq_id}」はありません。",
                              f"knowledge/faq/ にある FAQ の id（例: {examples}）に直してください。"))
            continue
        found.append((f"「{match.group(0)}」は定型文で使えない差し込みです。",
                      f"使えるのは {KNOWN_PLACEHOLDERS} です。名前のつづりを確かめてください。"))
    if re.search(r"\{customer_name\}\s*(さま|様|さん|殿)", text):
        found.append(("「{customer_name}」のあとに敬称があります（「さま」は自動で付きます）。",
                      "「{customer_name}、」のように敬称を付けずに書いてください（名前がないときは「お客さま」になります）。"))
    return found


def check_canned(replies: Iterable[CannedReply], path: Path, kb: KnowledgeBase | None, facts: Facts,
                 terms: tuple[Term, ...] = (), check_facts: bool = False) -> list[Finding]:
    """Errors of well-formed entries: placeholders, duplicate shortcuts, style list, fact sheet.

    Args:
        replies: From :func:`read_canned`.
        path: The file (for the findings).
        kb: The FAQ knowledge for ``{faq:…}`` (``None``: not checked).
        facts: The fact sheet (placeholder names; contradictions when ``check_facts``).
        terms: The style list (empty: not checked).
        check_facts: Compare prices, phone numbers, URLs ... with the fact sheet (only in a
            folder with its own ``facts.yml``, as for FAQ answers).
    """
    findings: list[Finding] = []
    first: dict[str, CannedReply] = {}
    for reply in replies:
        found = placeholder_problems(reply.text, kb, facts)
        found += style_problems(reply.text, terms)
        found += [(f"タイトルの{problem}", fix) for problem, fix in style_problems(reply.title, terms)]
        if check_facts:
            found += contradictions(render(reply.text, kb, facts, None, None, strict=False), facts)
        if len(reply.title) > MAX_TITLE_CHARS:
            found.append((f"タイトルが {len(reply.title)} 文字あります（一覧に表示されます）。",
                          f"{MAX_TITLE_CHARS} 文字以内に短くしてください。"))
        if reply.shortcut in first:
            other = first[reply.shortcut]
            found.append((f"shortcut「{reply.shortcut}」は {path.name}:{other.line}（{other.title}）でも使われています。",
                          "どちらかの shortcut を別の名前にしてください（「/」に続けて入力したとき、どちらか決められません）。"))
        else:
            first[reply.shortcut] = reply
        findings += [Finding(path, reply.line, reply.shortcut, problem, fix) for problem, fix in found]
    return findings


def faq_text(kb: KnowledgeBase, faq_id: str) -> str | None:
    """An FAQ's answer with one 「▶ …はこちら: URL」 line per link, as the bot sends it."""
    from bot.wording import LINK_LINE

    entry = kb.get(faq_id)
    if entry is None:
        return None
    return "\n".join([entry.answer, *(LINK_LINE.format(title=link.title, url=link.url) for link in entry.links)])


def customer_label(name: str | None) -> str:
    """「山田 太郎さま」, or 「お客さま」 without a name."""
    name = (name or "").strip()
    return f"{name}{HONORIFIC}" if name else UNKNOWN_CUSTOMER


def render(text: str, kb: KnowledgeBase | None, facts: Facts, customer_name: str | None, agent_name: str | None,
           strict: bool = True) -> str | None:
    """``text`` with every placeholder filled in.

    Args:
        text: A canned reply as written.
        kb: The FAQ knowledge for ``{faq:…}``.
        facts: The fact sheet.
        customer_name: The ticket's customer name (``None`` / empty: 「お客さま」).
        agent_name: The agent's display name.
        strict: Return ``None`` when a placeholder is unknown (the reply is not offered);
            ``False`` leaves such a placeholder as written.

    Returns:
        The text to put in the reply box, or ``None``.
    """
    unknown = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unknown
        name = match.group(1).strip()
        if name == CUSTOMER_NAME:
            return customer_label(customer_name)
        if name == AGENT_NAME:
            return (agent_name or "").strip() or "担当者"
        if name in facts.values:
            return facts.values[name]
        if name.startswith(FAQ_PREFIX) and kb is not None:
            answer = faq_text(kb, name[len(FAQ_PREFIX):].strip())
            if answer is not None:
                return answer
        unknown = True
        return match.group(0)

    result = PLACEHOLDER.sub(replace, text)
    return None if unknown and strict else result
