"""Exporting the knowledge base as a table that the import reads back unchanged.

Every cell whose text a spreadsheet would run as a formula (``= + - @``, tab, carriage return
and the full-width ``＝ ＋ － ＠``) is written with a leading ``'`` (OWASP's advice against CSV
injection), in CSV and in .xlsx alike; the import removes exactly that quote
(:func:`~bot.knowledge.spreadsheet.common.defuse_formula` /
:func:`~bot.knowledge.spreadsheet.common.restore_formula`), so export → import is lossless.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeBase
from bot.knowledge.spreadsheet.common import (
    CSV_SUFFIXES,
    FIELDS,
    JA_HEADERS,
    PREFERRED_SHEET,
    XLSX_SUFFIXES,
    SheetError,
    codec_name,
    defuse_formula,
)


def _export_rows(kb: KnowledgeBase) -> list[list[str]]:
    """The header and one row per entry, every cell defused against formula injection."""
    rows = [[JA_HEADERS[name] for name in FIELDS]]
    for entry in kb.entries:
        rows.append([defuse_formula(text) for text in (
            entry.id,
            entry.category,
            entry.title,
            entry.questions[0],
            entry.answer,
            "\n".join(entry.questions[1:]),
            ", ".join(entry.related),
            "\n".join(f"{link.title} {link.url}" for link in entry.links),
        )])
    return rows


def export_sheet(kb_dir: Path, path: Path, encoding: str | None = None) -> int:
    """Write the knowledge base as a table that :func:`import_sheet` reads back unchanged.

    Columns: ID, カテゴリ, タイトル, 質問 (first question), 回答, 言い換え (the other
    questions, one per line), 関連ID (comma separated), リンク (``タイトル URL`` per line).
    A cell that a spreadsheet would run as a formula starts with an added ``'`` (see the
    module docstring); the import removes it.

    Args:
        kb_dir: The knowledge directory.
        path: ``.xlsx`` (sheet ``FAQ``) or ``.csv``.
        encoding: CSV only: ``None``/``utf-8`` writes UTF-8 with BOM (so Excel detects it),
            ``cp932`` (or ``shift_jis``) the encoding of Japanese Windows.

    Returns:
        The number of entries written.

    Raises:
        SheetError: Unsupported format, a character the encoding cannot hold, or the file
            cannot be written.
        KnowledgeError: The knowledge directory is broken.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in XLSX_SUFFIXES + CSV_SUFFIXES:
        raise SheetError(path, f"「{path.suffix or '拡張子なし'}」の形式には書き出せません。",
                         "ファイル名の最後を .xlsx か .csv にしてください。")
    if not path.parent.is_dir():
        raise SheetError(path, f"フォルダ {path.parent} がありません。", "先にフォルダを作るか、別の場所を指定してください。")
    kb = load_knowledge(Path(kb_dir), resolve_facts=False)  # placeholders survive the round trip
    rows = _export_rows(kb)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        if suffix in XLSX_SUFFIXES:
            _write_xlsx(path, kb, rows, Path(tmp))
        else:
            _write_csv(path, kb, rows, Path(tmp), encoding)
        if path.exists():
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(kb.entries)


def _write_csv(path: Path, kb: KnowledgeBase, rows: list[list[str]], tmp: Path, encoding: str | None) -> None:
    try:
        codec = codec_name(encoding) if encoding else "utf-8-sig"
    except LookupError as exc:
        raise SheetError(path, f"文字コード「{encoding}」を知りません。", "utf-8 か cp932 を指定してください。") from exc
    for entry, values in zip(kb.entries, rows[1:]):
        for cell in values:
            problem = _lossy_character(cell, codec)
            if problem:
                raise SheetError(path, f"{problem}（FAQ: {entry.id}）。",
                                 "UTF-8（--encoding なし）か .xlsx で書き出すか、その文字を言い換えてください。")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)  # CRLF, as Excel writes CSV
    tmp.write_bytes(buffer.getvalue().encode(codec))


def _lossy_character(text: str, codec: str) -> str | None:
    """Why ``text`` would not come back unchanged from ``codec``, or ``None``.

    CP932 cannot hold some characters (emoji) and silently maps others to look-alikes
    (〜 U+301C becomes ～ U+FF5E, − becomes －): both would change the FAQ on re-import.
    """
    try:
        if text.encode(codec).decode(codec) == text:
            return None
    except UnicodeEncodeError:
        pass
    for char in dict.fromkeys(text):
        try:
            back = char.encode(codec).decode(codec)
        except UnicodeEncodeError:
            return f"「{char}」は文字コード {codec} で書けません"
        if back != char:
            return f"「{char}」(U+{ord(char):04X}) は文字コード {codec} では「{back}」(U+{ord(back):04X}) に変わってしまいます"
    return None


def _write_xlsx(path: Path, kb: KnowledgeBase, rows: list[list[str]], tmp: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils.exceptions import IllegalCharacterError

    book = Workbook()
    sheet = book.active
    sheet.title = PREFERRED_SHEET
    wrap = Alignment(wrap_text=True, vertical="top")
    for number, values in enumerate(rows):
        try:
            sheet.append(values)
        except IllegalCharacterError as exc:
            entry = kb.entries[number - 1].id if number else None
            raise SheetError(path, f"FAQ「{entry}」に Excel に書けない制御文字があります。",
                             "YAML からその文字を消すか、CSV で書き出してください。") from exc
    for row in sheet.iter_rows():
        for cell in row:
            if cell.data_type == "f":
                # openpyxl stores a text starting with "=" as a formula; the cells are defused
                # already, this keeps any text a text all the same.
                cell.data_type = "s"
            cell.alignment = wrap
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = {"A": 20, "B": 16, "C": 24, "D": 36, "E": 60, "F": 48, "G": 28, "H": 48}
    for letter, width in widths.items():
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    book.save(tmp)
