"""Texts of the satisfaction survey (CSAT) after a chat: ``knowledge/csat.yml``.

When an agent resolves a ticket, the widget and LINE ask the customer one question
(1–5) and an optional comment. Editors keep the question, the meaning of each rating,
the comment label and the buttons' texts in ``csat.yml``; :func:`csat_texts` reads them
at run time (again when the file changes), so an edit needs no restart.
:func:`read_csat` reports each problem for `bot kb validate` with the line and the fix,
in Japanese; the bot itself falls back to :data:`DEFAULT_TEXTS` when the file is broken
(the survey is never dropped because of a typo).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge.editor_files import Finding
from bot.knowledge.style import Term, style_problems
from bot.knowledge.yaml_io import SAFE_YAML_LOADER

logger = logging.getLogger(__name__)

CSAT_FILE = "csat.yml"
RATINGS = (1, 2, 3, 4, 5)
# Field -> (Japanese name for the findings, maximum characters).
FIELDS = {
    "question": ("質問文", 100),
    "comment_label": ("ご意見の入力欄の見出し", 30),
    "submit": ("送信ボタンの文字", 10),
    "skip": ("閉じるボタンの文字", 10),
    "thanks": ("回答のあとのお礼", 100),
}
MAX_LABEL_CHARS = 10


@dataclass(frozen=True)
class CsatTexts:
    """What the survey shows (see ``knowledge/csat.yml`` for each field)."""

    question: str
    labels: tuple[str, str, str, str, str]
    comment_label: str
    submit: str
    skip: str
    thanks: str

    def as_dict(self) -> dict[str, Any]:
        """The ``texts`` of the ``survey`` state (docs/server-api.md): labels keyed "1".."5"."""
        return {"question": self.question, "labels": {str(n): label for n, label in zip(RATINGS, self.labels)},
                "comment_label": self.comment_label, "submit": self.submit, "skip": self.skip,
                "thanks": self.thanks}


DEFAULT_TEXTS = CsatTexts(
    question="今回の担当者の対応はいかがでしたか？",
    labels=("とても不満", "不満", "ふつう", "満足", "とても満足"),
    comment_label="ご意見・ご感想（任意）", submit="送信する", skip="回答しない",
    thanks="ご回答ありがとうございました。")


def csat_path(directory: Path) -> Path:
    """``directory/csat.yml`` (it may not exist)."""
    return directory / CSAT_FILE


def _line_of(text: str, key: str) -> int | None:
    """1-based line of a top-level ``key:`` in the file (for the findings)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return number
    return None


def read_csat(directory: Path, terms: tuple[Term, ...] = ()) -> tuple[CsatTexts | None, list[Finding]]:
    """The survey texts of ``directory/csat.yml`` and every problem found.

    Args:
        directory: A knowledge folder.
        terms: The style list (empty: not checked).

    Returns:
        ``(texts, findings)``: ``texts`` is ``None`` when the file is missing or has any
        problem; a missing file is no finding (the defaults are used).
    """
    path = csat_path(directory)
    if not path.exists():
        return None, []
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.load(text, Loader=SAFE_YAML_LOADER)  # noqa: S506 - a safe loader
    except UnicodeDecodeError:
        return None, [Finding(path, None, None, "UTF-8 で保存されていません。",
                              "エディタで文字コードを UTF-8 にして保存し直してください。")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [Finding(path, mark.line + 1 if mark else None, None,
                              "この行の付近の書き方が正しくないため、ファイルを読めません。",
                              "その行と前の行の字下げ（スペースの数）、「:」の位置を確認してください。"
                              "文中に「: 」や「#」がある文章は、全体を「」ではなく \"...\" で囲んでください。")]
    if not isinstance(doc, dict):
        return None, [Finding(path, None, None, "「question:」などの項目が並んでいません。",
                              "ファイルの説明のとおり、question: / labels: / comment_label: / submit: / skip: / thanks: を書いてください。")]
    findings: list[Finding] = []
    values: dict[str, str] = {}
    for key, (name, limit) in FIELDS.items():
        value = doc.get(key)
        line = _line_of(text, key)
        if not isinstance(value, str) or not value.strip():
            findings.append(Finding(path, line, key, f"{name}（{key}）がありません。",
                                    f"「{key}: 」に続けて{name}を書いてください。"))
            continue
        value = " ".join(value.split())
        if len(value) > limit:
            findings.append(Finding(path, line, key, f"{name}が {len(value)} 文字あります。",
                                    f"{limit} 文字以内に短くしてください。"))
        findings += [Finding(path, line, key, problem, fix) for problem, fix in style_problems(value, terms)]
        values[key] = value
    labels = _labels(doc.get("labels"), path, _line_of(text, "labels"), terms, findings)
    unknown = sorted(str(k) for k in doc if k not in FIELDS and k != "labels")
    for key in unknown:
        findings.append(Finding(path, _line_of(text, key), key, f"「{key}」という項目はありません。",
                                "使える項目は question、labels、comment_label、submit、skip、thanks です。つづりを確かめてください。"))
    if findings or labels is None:
        return None, findings
    return CsatTexts(labels=labels, **values), []


def _labels(raw: Any, path: Path, line: int | None, terms: tuple[Term, ...],
            findings: list[Finding]) -> tuple[str, str, str, str, str] | None:
    """The five rating labels, or ``None`` (with findings) when any is missing or wrong."""
    fix = "「labels:」の下に、字下げして「1: とても不満」から「5: とても満足」まで 5 行書いてください。"
    if not isinstance(raw, dict):
        findings.append(Finding(path, line, "labels", "labels（1〜5 の意味）がありません。", fix))
        return None
    keys = {int(k) if isinstance(k, int) or (isinstance(k, str) and k.strip().isdigit()) else k: v
            for k, v in raw.items()}
    extra = sorted(str(k) for k in keys if k not in RATINGS)
    if extra:
        findings.append(Finding(path, line, "labels", f"labels に 1〜5 以外の番号（{'、'.join(extra)}）があります。", fix))
    result = []
    for rating in RATINGS:
        value = keys.get(rating)
        if not isinstance(value, str) or not value.strip():
            findings.append(Finding(path, line, f"labels.{rating}", f"評価 {rating} の意味がありません。", fix))
            continue
        value = " ".join(value.split())
        if len(value) > MAX_LABEL_CHARS:
            findings.append(Finding(path, line, f"labels.{rating}", f"評価 {rating} の意味が {len(value)} 文字あります。",
                                    f"{MAX_LABEL_CHARS} 文字以内に短くしてください（LINE のボタンに入りきりません）。"))
        findings += [Finding(path, line, f"labels.{rating}", problem, fix)
                     for problem, fix in style_problems(value, terms)]
        result.append(value)
    if extra or len(result) != len(RATINGS):
        return None
    return tuple(result)  # type: ignore[return-value]


@functools.lru_cache(maxsize=4)
def _cached(directory: str, stamp: int) -> CsatTexts:
    texts, findings = read_csat(Path(directory))
    if findings:
        logger.warning("%s has %d problem(s); the survey uses its default texts (bot kb validate lists them)",
                       csat_path(Path(directory)), len(findings))
    return texts or DEFAULT_TEXTS


def csat_texts(directory: Path | None = None) -> CsatTexts:
    """The survey texts of ``directory`` (default: the configured knowledge folder, else the project's).

    Read again when the file changes; a broken or missing file gives :data:`DEFAULT_TEXTS`.
    """
    if directory is None:
        from bot.settings import get_settings

        path = get_settings().knowledge_file(CSAT_FILE)
        directory = path.parent
    try:
        stamp = csat_path(directory).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _cached(str(directory), stamp)
