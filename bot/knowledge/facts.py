"""The service fact sheet (``knowledge/facts.yml``): placeholders in answers and contradiction checks.

Answers may write ``{phone}``, ``{hours.staffed}`` or ``{plans.standard.monthly}``; the loader
replaces them with the fact sheet's values, so a price or a phone number is written once.
:func:`contradictions` finds what an answer states literally (prices, phone numbers, URLs,
e-mail addresses, times) that the fact sheet does not contain: `bot kb validate` reports each
as an error, so an answer can no longer disagree with the demo page or another answer.

A knowledge folder without its own ``facts.yml`` (e.g. one made by ``bot kb import --kb``) uses
the project's, as for ``synonyms.yml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from bot.errors import KnowledgeError
from bot.knowledge.yaml_io import read_yaml

FACTS_FILE = "facts.yml"
PROJECT_FACTS = Path(__file__).resolve().parents[2] / "knowledge" / FACTS_FILE
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*)\}")
# What an answer may state only as the fact sheet says it.
_PHONE = re.compile(r"(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])|(?<!\d)0120\d{6}(?!\d)")
_URL = re.compile(r"https?://[^\s）)」』、。,]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PRICE = re.compile(r"(?<![\d,.])(\d{1,3}(?:,\d{3})+|\d+)\s*円")
_TIME = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?!\d)")


@dataclass(frozen=True)
class Facts:
    """The fact sheet, flattened to dotted names (``plans.standard.monthly``) and display texts.

    Attributes:
        values: Display text of each leaf (integers with thousands separators).
        raw: The YAML as read.
        path: Where it was read from (``None``: no fact sheet).
    """

    values: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def get(self, name: str) -> str:
        """The display text of ``name`` (``KeyError`` when the sheet has no such fact)."""
        return self.values[name]

    @property
    def prices(self) -> set[int]:
        """Every amount of money (円) the sheet states, in its integers and in its texts."""
        amounts = {value for _, value in _leaves(self.raw) if isinstance(value, int) and not isinstance(value, bool)}
        for text in self.values.values():
            amounts |= {int(m.group(1).replace(",", "")) for m in _PRICE.finditer(text)}
        return amounts

    @property
    def phones(self) -> set[str]:
        """Phone numbers of the sheet, digits only."""
        return {re.sub(r"\D", "", m.group(0)) for text in self.values.values() for m in _PHONE.finditer(text)}

    @property
    def urls(self) -> set[str]:
        """URLs of the sheet (without a trailing slash)."""
        return {m.group(0).rstrip("/") for text in self.values.values() for m in _URL.finditer(text)}

    @property
    def emails(self) -> set[str]:
        """E-mail addresses of the sheet (lower case)."""
        return {m.group(0).lower() for text in self.values.values() for m in _EMAIL.finditer(text)}

    @property
    def times(self) -> set[str]:
        """Times of day of the sheet, as written (``9:00``, ``18:00``)."""
        return {m.group(0) for text in self.values.values() for m in _TIME.finditer(text)}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return "、".join(_display(v) for v in value)
    return str(value).strip()


def facts_path(directory: Path) -> Path | None:
    """``directory/facts.yml``, else the project's own, else ``None``."""
    own = directory / FACTS_FILE
    if own.exists():
        return own
    return PROJECT_FACTS if PROJECT_FACTS.exists() else None


def load_facts(directory: Path | None = None, path: Path | None = None) -> Facts:
    """Read the fact sheet of a knowledge folder (or ``path``).

    Args:
        directory: A knowledge folder; its ``facts.yml`` or the project's is read.
        path: An explicit file (tests).

    Returns:
        The facts; empty when there is no fact sheet at all.

    Raises:
        KnowledgeError: The file is not valid YAML or not a mapping.
    """
    path = path or (facts_path(directory) if directory is not None else PROJECT_FACTS)
    if path is None or not path.exists():
        return Facts()
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise KnowledgeError(path, None, "「項目名: 値」の形で書かれていません。",
                             "ファイルの先頭の例にならって「phone: 0120-000-123」のように書いてください。")
    values = {name: _display(value) for name, value in _leaves(raw) if value is not None}
    return Facts(values=values, raw=raw, path=path)


def resolve(text: str, facts: Facts, path: Path, entry: str | None) -> str:
    """Replace each ``{name}`` of ``text`` with the fact's display text.

    Raises:
        KnowledgeError: ``text`` names a fact the sheet does not have.
    """
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in facts.values:
            known = ", ".join(f"{{{n}}}" for n in list(facts.values)[:4])
            raise KnowledgeError(path, entry, f"「{{{name}}}」はファクトシート（knowledge/facts.yml）にない項目です。",
                                 f"facts.yml にある項目名（例: {known}）に直してください。")
        return facts.values[name]

    return PLACEHOLDER.sub(replace, text)


def contradictions(text: str, facts: Facts) -> list[tuple[str, str]]:
    """What ``text`` (an answer, placeholders already replaced) states against the fact sheet.

    Args:
        text: The answer, or a link's URL.
        facts: The fact sheet; nothing is checked when it is empty.

    Returns:
        ``(problem, fix)`` pairs in Japanese, one per stated value the sheet does not have.
    """
    if not facts.values:
        return []
    found: list[tuple[str, str]] = []
    sheet = "ファクトシート（knowledge/facts.yml）"
    prices = facts.prices
    for match in _PRICE.finditer(text):
        amount = int(match.group(1).replace(",", ""))
        if amount not in prices:
            found.append((f"金額「{match.group(0)}」が{sheet}にありません。",
                          "{plans.standard.monthly}円 のように facts.yml の値を差し込むか、facts.yml を直してください。"))
    phones = facts.phones
    for match in _PHONE.finditer(text):
        if re.sub(r"\D", "", match.group(0)) not in phones:
            found.append((f"電話番号「{match.group(0)}」が{sheet}の番号（{facts.values.get('phone', 'なし')}）と違います。",
                          "電話番号は {phone} と書いてください。"))
    urls = facts.urls
    for match in _URL.finditer(text):
        if match.group(0).rstrip("/") not in urls:
            found.append((f"URL「{match.group(0)}」が{sheet}にありません。",
                          "{urls.mypage} のように facts.yml の URL を差し込むか、facts.yml の urls に追加してください。"))
    emails = facts.emails
    for match in _EMAIL.finditer(text):
        if match.group(0).lower() not in emails:
            found.append((f"メールアドレス「{match.group(0)}」が{sheet}にありません。",
                          "メールアドレスは {email} と書いてください。"))
    times = facts.times
    for match in _TIME.finditer(text):
        if match.group(0) not in times:
            written = f"{int(match.group(1))}:{match.group(2)}"
            hint = (f"時刻は「{written}」のように先頭の 0 を付けずに書いてください。" if written in times
                    else "受付時間は {hours.staffed} と書くか、facts.yml の hours を直してください。")
            found.append((f"時刻「{match.group(0)}」が{sheet}の時刻（{'、'.join(sorted(times)) or 'なし'}）と違います。", hint))
    return found
