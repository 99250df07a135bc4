"""Editors' list files (``canned.yml``, ``csat.yml``, ``departments.yml``, ``phrasings.yml``): how a
problem is reported, and how such a file is read.

Each reader returns what it could read plus a :class:`Finding` per problem, phrased for the
editor in Japanese with the line and the fix; ``bot kb validate`` lists them, and the bot keeps
using what was readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge.yaml_io import SAFE_YAML_LOADER


@dataclass(frozen=True)
class Finding:
    """A problem of an editor's file (``canned.yml`` and others), phrased for the editor (Japanese)."""

    path: Path
    line: int | None
    entry: str | None
    problem: str
    fix: str
    severity: str = "error"  # or "warning": the file is used all the same


def read_editor_yaml(path: Path, others: str, quoting: str) -> tuple[str, Any, Finding | None]:
    """The text and YAML of an editor's list file, or a finding when it cannot be read.

    Args:
        path: The file (it exists).
        others: What the fix compares the indentation with (「ほかの定型文」).
        quoting: How a text with 「: 」 or 「#」 is written in this file.

    Returns:
        ``(text, document, None)``, or ``("", None, finding)`` for a file that is not UTF-8 or not YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
        return text, yaml.load(text, Loader=SAFE_YAML_LOADER), None  # noqa: S506 - a safe loader
    except UnicodeDecodeError:
        return "", None, Finding(path, None, None, "UTF-8 で保存されていません。",
                                 "エディタで文字コードを UTF-8 にして保存し直してください。")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return "", None, Finding(path, mark.line + 1 if mark else None, None,
                                 "この行の付近の書き方が正しくないため、ファイルを読めません。",
                                 f"その行と前の行の字下げ（スペースの数）、「:」「-」の位置を、{others}とそろえてください。"
                                 f"文中に「: 」や「#」がある文章は、{quoting}")
