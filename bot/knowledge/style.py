"""The 表記・敬語 list (``knowledge/style.yml``): preferred terms and the variants not to use.

One list for FAQ answers (checked by `bot kb validate`) and for every text the code shows to
customers and agents (checked by ``tests/test_style.py`` over :mod:`bot.copy` and the browser
scripts), so 「お客様」 and 「お客さま」, or 「オペレーター」 and 「担当者」, cannot both come back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.errors import KnowledgeError
from bot.knowledge.yaml_io import read_yaml

STYLE_FILE = "style.yml"
PROJECT_STYLE = Path(__file__).resolve().parents[2] / "knowledge" / STYLE_FILE
CUSTOMER = "customer"
AGENT = "agent"


@dataclass(frozen=True)
class Term:
    """One rule: write ``use``, never any of ``avoid`` (for ``only`` readers, or all)."""

    use: str
    avoid: tuple[str, ...]
    only: str | None = None
    allow: tuple[str, ...] = ()


def load_style(directory: Path | None = None, path: Path | None = None) -> tuple[Term, ...]:
    """Read the style list of a knowledge folder (its own ``style.yml``, else the project's).

    Raises:
        KnowledgeError: The file is malformed (names the rule and the fix).
    """
    if path is None:
        own = directory / STYLE_FILE if directory is not None else None
        path = own if own is not None and own.exists() else PROJECT_STYLE
    if not path.exists():
        return ()
    raw = read_yaml(path) or {}
    items = raw.get("terms") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise KnowledgeError(path, None, "「terms:」の一覧がありません。", "ファイルの先頭の例にならって書いてください。")
    terms = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("use"), str) or not isinstance(item.get("not"), list):
            raise KnowledgeError(path, f"{number}番目", "「use:」（使う言葉）と「not:」（使わない言葉の一覧）が必要です。",
                                 "例: 「- use: お客さま」の次の行に「not: [お客様]」と書いてください。")
        terms.append(Term(item["use"], tuple(str(v) for v in item["not"]), item.get("only"),
                          tuple(str(v) for v in item.get("allow") or ())))
    return tuple(terms)


def style_problems(text: str, terms: tuple[Term, ...], reader: str = CUSTOMER) -> list[tuple[str, str]]:
    """Forbidden variants in ``text``, read by ``reader`` (``customer`` or ``agent``).

    Returns:
        ``(problem, fix)`` pairs in Japanese, one per variant found.
    """
    found = []
    for term in terms:
        if term.only and term.only != reader:
            continue
        checked = text
        for allowed in term.allow:
            checked = checked.replace(allowed, "")
        # Longest first, and each match removed: 「オペレーター」 is one finding, not also 「オペレータ」.
        for variant in sorted(term.avoid, key=len, reverse=True):
            if variant in checked:
                checked = checked.replace(variant, "")
                found.append((f"「{variant}」は使わない言い方です（knowledge/style.yml）。",
                              f"「{term.use}」に直してください。"))
    return found
