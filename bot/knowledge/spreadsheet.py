"""Spreadsheet import/export of the FAQ (``knowledge/faq/*.yml``) for content editors.

Editors keep FAQs in Excel; this module reads such a table (``.xlsx`` or ``.csv``), merges it
into a knowledge directory and writes the knowledge base back out as a table. The guide for
editors is ``docs/importing-faq.md``.

Columns (one FAQ per row, the first non-empty row is the header; headers are matched after
NFKC, removing spaces and lower-casing, so ``ＩＤ``, ``id`` and `` ID `` are the same):

==============  ==========================  =========  ===========================================
Japanese        English                     required   content
==============  ==========================  =========  ===========================================
ID              id                          no         stable id (``a-z``, ``0-9``, hyphens); empty:
                                                       matched by 質問 or a new ``faq-0001`` id
カテゴリ          category                    yes*       category
タイトル          title                       no         button label; default: 質問 cut to 20 chars
質問             question                    yes*       the main customer question
回答             answer                      yes*       the answer (at most 400 characters)
言い換え          paraphrase(s)               no         more phrasings: one per line or separated
言い換え1, 2 …    paraphrase1, paraphrase2 …             by 「｜」/「|」; several columns allowed
関連ID           related                     no         related ids, separated by commas
リンク            link(s)                     no         one link per line: ``タイトル https://...``
==============  ==========================  =========  ===========================================

(*) The columns must exist; their cells may be empty on rows that update an existing entry
(an empty cell keeps the current value). Other columns (e.g. 備考) are ignored. In an
``.xlsx`` the sheet named ``FAQ`` is read, otherwise the first sheet.

CLI wiring (``bot kb import`` / ``bot kb export`` in :mod:`bot.cli`)::

    # bot kb import FILE [--encoding ENC] [--kb DIR]
    kb_dir = Path(args.kb) if args.kb else get_settings().knowledge_dir
    report = import_sheet(Path(args.file), kb_dir, encoding=args.encoding)
    print(report.summary())
    return 0

    # bot kb export FILE [--encoding ENC] [--kb DIR]    (ENC only matters for .csv)
    count = export_sheet(kb_dir, Path(args.file), encoding=args.encoding)
    print(f"{count} 件の FAQ を {args.file} に書き出しました。")
    return 0

Both raise :class:`SheetError` (bad table, with file, row, column and fix) or
:class:`bot.errors.KnowledgeError` (the knowledge directory itself is broken); both are
``ValueError`` subclasses, which :func:`bot.cli.main` already prints as ``エラー: ...``.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import shutil
import tempfile
import unicodedata
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time as day_time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RuamelYAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from bot.errors import KnowledgeError
from bot.knowledge.loader import ID_PATTERN, MAX_ANSWER_CHARS, load_knowledge
from bot.knowledge.model import FaqEntry, KnowledgeBase, Link
from bot.text.normalize import fold

__all__ = ["ImportReport", "SheetError", "SheetRow", "export_sheet", "import_sheet", "read_sheet"]

MAX_CELL_CHARS = 10_000
TITLE_CHARS = 20
IMPORTED_FILE = "imported.yml"
NEW_ID_PREFIX = "faq-"
XLSX_SUFFIXES = (".xlsx", ".xlsm")
CSV_SUFFIXES = (".csv",)
PREFERRED_SHEET = "FAQ"

# Field names used internally, in export column order, with the Japanese header written on export.
FIELDS = ("id", "category", "title", "question", "answer", "paraphrases", "related", "links")
JA_HEADERS = {"id": "ID", "category": "カテゴリ", "title": "タイトル", "question": "質問", "answer": "回答",
              "paraphrases": "言い換え", "related": "関連ID", "links": "リンク"}
REQUIRED_COLUMNS = ("category", "question", "answer")
# Header (after _header_key) -> field. 言い換え / paraphrase(s) may carry a number (言い換え1, 言い換え2 ...).
_HEADER_ALIASES = {
    "id": "id",
    "カテゴリ": "category", "カテゴリー": "category", "category": "category",
    "タイトル": "title", "title": "title",
    "質問": "question", "question": "question",
    "回答": "answer", "answer": "answer",
    "関連id": "related", "related": "related",
    "リンク": "links", "link": "links", "links": "links",
}
_PARAPHRASE_HEADER = re.compile(r"^(?:言い換え|paraphrases?)\d*$")
# Several phrasings in one cell: one per line, or separated by a full-width or ASCII bar.
_PARAPHRASE_SEPARATOR = re.compile(r"[\n|｜]")
_RELATED_SEPARATOR = re.compile(r"[,、\s]+")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://\S+")
_LINK_TITLE_TRAILER = " \t\u3000:：-－–—"
_NEW_ID = re.compile(rf"^{re.escape(NEW_ID_PREFIX)}(\d+)$")
# Encodings editors name that mean Windows' Shift_JIS (CP932 adds ①, ～, 髙 ... that Excel writes).
_CP932_ALIASES = {"shift_jis", "shift-jis", "shiftjis", "sjis", "s_jis", "x-sjis", "ms_kanji", "windows-31j",
                  "cp932", "ms932", "mskanji"}

IMPORTED_HEADER = """\
# FAQ: 表計算ソフト（Excel / CSV）から `bot kb import` で取り込んだエントリ。
#
# 取り込んだあとは、ほかのファイルと同じようにこのファイルを直接編集してかまいません。
# 項目の意味は registration.yml の先頭のコメントを見てください。
# 手順の説明: docs/importing-faq.md
"""


class SheetError(ValueError):
    """A problem in an imported or exported table, phrased for the content editor (in Japanese).

    Attributes:
        path: The table file.
        row: Row number as Excel shows it (the header is usually row 1), if any.
        column: Column as ``E列「回答」``, if any.
        problem: What is wrong.
        fix: How to fix it.
    """

    def __init__(self, path: Path | str, problem: str, fix: str, row: int | None = None,
                 column: str | None = None) -> None:
        self.path = Path(path)
        self.row = row
        self.column = column
        self.problem = problem
        self.fix = fix
        place = "・".join(part for part in (f"{row}行目" if row else "", column or "") if part)
        super().__init__(f"{self.path}" + (f"（{place}）" if place else "") + f": {problem} 対処: {fix}")


@dataclass(frozen=True)
class SheetRow:
    """One non-empty data row of the table; ``None`` / ``()`` means the cell was empty.

    Attributes:
        row: Row number as Excel shows it.
        id: Entry id, if given.
        category: Category, if given.
        title: Title, if given.
        question: The main question (質問), if given.
        answer: Answer, if given.
        paraphrases: Further phrasings from every 言い換え column, in order, without duplicates.
        related: Related ids, or ``None`` when the cell is empty.
        links: Links, or ``None`` when the cell is empty.
    """

    row: int
    id: str | None = None
    category: str | None = None
    title: str | None = None
    question: str | None = None
    answer: str | None = None
    paraphrases: tuple[str, ...] = ()
    related: tuple[str, ...] | None = None
    links: tuple[Link, ...] | None = None

    @property
    def questions(self) -> tuple[str, ...]:
        """質問 followed by the paraphrases, without exact duplicates."""
        return tuple(_unique(([self.question] if self.question else []) + list(self.paraphrases)))


@dataclass
class ImportReport:
    """What :func:`import_sheet` did.

    Attributes:
        sheet: The imported table.
        kb_dir: The knowledge directory.
        added: Ids of new entries, in row order.
        changed: Ids of existing entries the table changed.
        unchanged: Ids named by the table whose entries were already identical.
        assigned_ids: Row number -> id for rows whose ID cell was empty (a new id, or the
            existing entry with the same 質問); editors should copy them into the table.
        skipped_empty_rows: Empty rows between the header and the last row.
        ignored_columns: Headers that are not FAQ columns (e.g. 備考).
        written: Files written (empty when nothing changed).
        encoding: Encoding a CSV was read with (``None`` for ``.xlsx``).
        warnings: Points worth a look that did not stop the import (e.g. long titles).
    """

    sheet: Path
    kb_dir: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    assigned_ids: dict[int, str] = field(default_factory=dict)
    skipped_empty_rows: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A Japanese summary for the editor's terminal."""
        lines = [f"{self.sheet} を {self.kb_dir} に取り込みました: 追加 {len(self.added)} 件、"
                 f"変更 {len(self.changed)} 件、変更なし {len(self.unchanged)} 件。"]
        for label, ids in (("追加", self.added), ("変更", self.changed)):
            if ids:
                lines.append(f"  {label}: {_abbreviate(ids)}")
        if self.assigned_ids:
            pairs = [f"{row}行目 → {faq_id}" for row, faq_id in self.assigned_ids.items()]
            lines.append(f"  ID 列が空だった行の ID（表の ID 列に書き写すと次回から確実です）: {_abbreviate(pairs)}")
        if self.skipped_empty_rows:
            lines.append(f"  空の行を {self.skipped_empty_rows} 行読み飛ばしました。")
        if self.ignored_columns:
            lines.append(f"  取り込まなかった列: {', '.join(self.ignored_columns)}")
        if self.encoding:
            lines.append(f"  文字コード: {self.encoding}")
        lines.extend(f"  注意: {warning}" for warning in self.warnings)
        if self.written:
            lines.append("  書き込んだファイル: " + ", ".join(str(p) for p in self.written))
            lines.append("次に `bot kb validate` で確認し、`make train` で学習し直してください。")
        else:
            lines.append("knowledge のファイルは変わっていません。")
        return "\n".join(lines)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Column:
    field: str
    index: int  # 0-based
    header: str

    @property
    def label(self) -> str:
        return f"{_column_letter(self.index + 1)}列「{self.header}」"


@dataclass
class _Sheet:
    """A parsed table: rows plus what error messages and the report need."""

    path: Path
    rows: list[SheetRow]
    columns: dict[str, list[_Column]]
    skipped_empty_rows: int
    ignored_columns: list[str]
    encoding: str | None

    def label(self, field_name: str) -> str:
        columns = self.columns.get(field_name)
        return columns[0].label if columns else f"「{JA_HEADERS[field_name]}」"


def read_sheet(path: Path, encoding: str | None = None) -> list[SheetRow]:
    """Read and check an FAQ table (``.xlsx`` or ``.csv``).

    Args:
        path: The table. ``.xlsx``: the sheet ``FAQ`` or else the first sheet; formulas give
            the value Excel saved with them. ``.csv``: UTF-8 (with or without BOM) or
            Shift_JIS/CP932, detected automatically.
        encoding: CSV encoding, overriding the detection (``cp932``, ``utf-8``, ...;
            ``shift_jis`` is read as CP932). Ignored for ``.xlsx``.

    Returns:
        The non-empty data rows, in order.

    Raises:
        SheetError: The file cannot be read, a required column is missing or a cell is
            invalid (the message names the row, the column and the fix).
    """
    return _load_sheet(path, encoding).rows


def _load_sheet(path: Path, encoding: str | None) -> _Sheet:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in XLSX_SUFFIXES + CSV_SUFFIXES:
        raise SheetError(path, f"「{path.suffix or '拡張子なし'}」の形式には対応していません。",
                         "Excel ブック（.xlsx）か CSV（.csv）で保存したファイルを指定してください。")
    if not path.is_file():
        raise SheetError(path, "ファイルが見つかりません。", "ファイル名と場所（フォルダ）を確認してください。")
    if suffix in XLSX_SUFFIXES:
        table, used = _xlsx_rows(path), None
    else:
        table, used = _csv_rows(path, encoding)
    try:
        return _parse_table(path, table, used)
    finally:
        table.close()  # an error mid-table leaves the generator (and the workbook) open otherwise


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    """Yield (row number, cell values) of the sheet; formulas give their cached values."""
    try:
        import openpyxl
        from openpyxl.cell.cell import TYPE_ERROR
    except ImportError as exc:  # pragma: no cover - installed by make setup
        raise SheetError(path, "Excel ファイルを読むための openpyxl が入っていません。",
                         "`.venv/bin/pip install openpyxl` を実行するか、CSV で保存して取り込んでください。") from exc
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        # OLE2: the old .xls format, or an .xlsx protected by a password.
        raise SheetError(path, "古い Excel 形式（.xls）か、パスワード付きのブックです。",
                         "Excel で開き、パスワードを外して「Excel ブック (*.xlsx)」形式で保存し直してください。")
    if not head.startswith(b"PK"):
        raise SheetError(path, "Excel ブック（.xlsx）ではありません（中身が別の形式です）。",
                         "Excel で開いて「Excel ブック (*.xlsx)」形式で保存し直すか、CSV なら拡張子を .csv にしてください。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Data Validation extension is not supported"
            values_book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            formula_book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises zip, XML, Key and Value errors for broken files
        raise SheetError(path, f"Excel ブックとして読めません（{type(exc).__name__}: {exc}）。",
                         "ファイルが壊れていないか確認し、Excel で開いて「Excel ブック (*.xlsx)」形式で保存し直してください。") \
            from exc
    try:
        sheets = values_book.sheetnames
        if not sheets:
            raise SheetError(path, "シートがありません。", "FAQ を書いたシートを含めて保存してください。")
        name = PREFERRED_SHEET if PREFERRED_SHEET in sheets else sheets[0]
        values_sheet, formula_sheet = values_book[name], formula_book[name]
        for sheet in (values_sheet, formula_sheet):
            # Some programs write a wrong <dimension>; without this, rows past it would be cut off.
            if hasattr(sheet, "reset_dimensions"):
                sheet.reset_dimensions()
        try:
            pairs = zip(values_sheet.iter_rows(), formula_sheet.iter_rows(values_only=True))
            for number, (cells, formulas) in enumerate(pairs, start=1):
                values: list[Any] = []
                for index, cell in enumerate(cells):
                    value = getattr(cell, "value", None)
                    formula = formulas[index] if index < len(formulas) else None
                    data_type = getattr(cell, "data_type", None)
                    if value is None and isinstance(formula, str) and formula.startswith("="):
                        values.append(_Formula(formula))
                    elif data_type == TYPE_ERROR:
                        values.append(_Formula(str(formula or ""), error=str(value)))
                    else:
                        values.append(value)
                yield number, values
        except SheetError:
            raise
        except Exception as exc:  # broken XML inside an otherwise valid zip
            raise SheetError(path, f"シート「{name}」を読めません（{type(exc).__name__}: {exc}）。",
                             "Excel で開いて「Excel ブック (*.xlsx)」形式で保存し直してください。") from exc
    finally:
        values_book.close()
        formula_book.close()


@dataclass(frozen=True)
class _Formula:
    """A formula cell without a usable value (not calculated, or an Excel error like #N/A)."""

    formula: str
    error: str | None = None


def _codec_name(encoding: str) -> str:
    """Canonical codec for an encoding name the editor typed (Shift_JIS -> cp932, UTF-8 tolerates a BOM)."""
    name = encoding.strip().lower()
    if name in _CP932_ALIASES:
        return "cp932"
    canonical = codecs.lookup(name).name  # LookupError for unknown names
    if canonical == "utf-8":
        return "utf-8-sig"
    if canonical == "shift_jis":
        return "cp932"
    return canonical


def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """The text of a CSV file and the encoding used (strict decoding; never guesses silently)."""
    if not encoding and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SheetError(path, "UTF-16（Excel の「Unicode テキスト」）の CSV には対応していません。",
                         "Excel で「CSV UTF-8 (コンマ区切り) (*.csv)」形式で保存し直してください。")
    if raw.startswith(b"PK\x03\x04"):
        raise SheetError(path, "中身は Excel ブック（.xlsx）です。", "拡張子を .xlsx にしてから取り込んでください。")
    if encoding:
        try:
            codec = _codec_name(encoding)
        except LookupError as exc:
            raise SheetError(path, f"文字コード「{encoding}」を知りません。",
                             "--encoding には utf-8 か cp932（Shift_JIS）を指定してください。") from exc
        try:
            return raw.decode(codec), "utf-8" if codec == "utf-8-sig" else codec
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise SheetError(path, f"指定された文字コード {encoding} では読めません（ファイルの {line} 行目付近）。",
                             "--encoding を付けずに自動判定にするか、正しい文字コード（utf-8 / cp932）を指定してください。") \
                from exc
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return raw.decode("cp932"), "cp932"
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, utf8_error.start) + 1
            raise SheetError(path, f"文字コードを判定できません（UTF-8 でも Shift_JIS(CP932) でも読めません。"
                                   f"ファイルの {line} 行目付近）。",
                             "Excel で「CSV UTF-8 (コンマ区切り) (*.csv)」形式で保存し直すか、"
                             "--encoding で文字コードを指定してください。") from exc


def _csv_rows(path: Path, encoding: str | None) -> tuple[Iterator[tuple[int, list[Any]]], str]:
    text, used = _decode(path, path.read_bytes(), encoding)

    def rows() -> Iterator[tuple[int, list[Any]]]:
        # Row numbers count records, as Excel shows them (a cell with line breaks is one row).
        reader = csv.reader(io.StringIO(text, newline=""))
        number = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise SheetError(path, f"{MAX_CELL_CHARS:,} 文字を超えるセルがあります。",
                                     "長すぎるセルを短くしてください（回答は 400 文字まで）。", row=number + 1) from exc
                raise SheetError(path, f"CSV として読めません（{exc}）。",
                                 "Excel で開いて CSV 形式で保存し直してください。", row=number + 1) from exc
            number += 1
            yield number, list(record)

    return rows(), used


def _header_key(value: Any) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", _cell_text(value))).lower()


def _map_header(path: Path, number: int, cells: Sequence[Any], encoding: str | None
                ) -> tuple[dict[str, list[_Column]], list[str]]:
    columns: dict[str, list[_Column]] = defaultdict(list)
    ignored: list[str] = []
    for index, value in enumerate(cells):
        header = _cell_text(value).strip()
        if not header:
            continue
        key = _header_key(value)
        field_name = "paraphrases" if _PARAPHRASE_HEADER.match(key) else _HEADER_ALIASES.get(key)
        if field_name is None:
            ignored.append(header)
            continue
        column = _Column(field_name, index, header)
        if columns[field_name] and field_name != "paraphrases":
            raise SheetError(path, f"「{JA_HEADERS[field_name]}」の列が {columns[field_name][0].label}と"
                                   f"{column.label}の2つあります。",
                             "片方の見出しを消すか別の名前にしてください（言い換えの列だけは複数にできます）。", row=number)
        columns[field_name].append(column)
    missing = [JA_HEADERS[name] for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        found = [_cell_text(v).strip() for v in cells if _cell_text(v).strip()]
        hint = f" 文字化けしている場合は --encoding で文字コードを指定してください（今回の判定: {encoding}）。" \
            if encoding else ""
        raise SheetError(path, f"必要な列 {'・'.join(f'「{m}」' for m in missing)} がありません"
                               f"（見出し行: {number}行目。見つかった見出し: {', '.join(found) or 'なし'}）。",
                         "1行目に見出しとして カテゴリ・質問・回答 を書いてください（英語の category / question / "
                         "answer でも構いません）。" + hint, row=number)
    return dict(columns), ignored


def _parse_table(path: Path, table: Iterable[tuple[int, list[Any]]], encoding: str | None) -> _Sheet:
    rows: list[SheetRow] = []
    columns: dict[str, list[_Column]] | None = None
    ignored: list[str] = []
    pending_empty = 0  # empty rows not yet known to be followed by data (trailing ones do not count)
    skipped = 0
    seen_ids: dict[str, int] = {}
    for number, cells in table:
        if columns is None:
            if any(_cell_text(v).strip() for v in cells if not isinstance(v, _Formula)):
                columns, ignored = _map_header(path, number, cells, encoding)
            continue
        row = _parse_row(path, number, cells, columns)
        if row is None:
            pending_empty += 1
            continue
        skipped += pending_empty
        pending_empty = 0
        if row.id is not None:
            if row.id in seen_ids:
                raise SheetError(path, f"ID「{row.id}」が {seen_ids[row.id]}行目と {number}行目の2回出てきます。",
                                 "1つの FAQ は1行にまとめるか、どちらかの ID を直してください。",
                                 row=number, column=columns["id"][0].label)
            seen_ids[row.id] = number
        rows.append(row)
    if columns is None:
        raise SheetError(path, "見出し行がありません（表が空です）。",
                         "1行目に ID・カテゴリ・タイトル・質問・回答・言い換え・関連ID・リンク の見出しを書いてください。")
    return _Sheet(path, rows, columns, skipped, ignored, encoding)


def _parse_row(path: Path, number: int, cells: Sequence[Any],
               columns: dict[str, list[_Column]]) -> SheetRow | None:
    """One data row, or ``None`` when every FAQ cell is empty."""
    texts: dict[str, list[str]] = {}
    for field_name, field_columns in columns.items():
        texts[field_name] = []
        for column in field_columns:
            value = cells[column.index] if column.index < len(cells) else None
            if isinstance(value, _Formula):
                if value.error:
                    raise SheetError(path, f"数式の結果がエラー {value.error} になっています（{value.formula}）。",
                                     "Excel で数式を直すか、セルに値を直接書いてください。", row=number, column=column.label)
                raise SheetError(path, f"数式（{value.formula}）の計算結果がファイルに保存されていません。",
                                 "Excel で開いて保存し直すか、数式のセルをコピーして「値として貼り付け」してください。",
                                 row=number, column=column.label)
            text = _cell_text(value).replace("\r\n", "\n").replace("\r", "\n")
            if len(text) > MAX_CELL_CHARS:
                raise SheetError(path, f"セルが {len(text):,} 文字あります（1つのセルは {MAX_CELL_CHARS:,} 文字まで）。",
                                 "内容を確認し、別の行や列に分けるか短くしてください。", row=number, column=column.label)
            texts[field_name].append(text.strip())
    if not any(text for values in texts.values() for text in values):
        return None

    def single(field_name: str) -> tuple[str | None, str]:
        values = texts.get(field_name) or [""]
        return values[0] or None, columns[field_name][0].label if field_name in columns else ""

    raw_id, id_label = single("id")
    faq_id = None
    if raw_id is not None:
        faq_id = unicodedata.normalize("NFKC", raw_id).strip()
        if not ID_PATTERN.match(faq_id):
            raise SheetError(path, f"ID「{raw_id}」は使えない形です。",
                             "ID は半角の英小文字・数字とハイフンで書いてください（例: change-address）。"
                             "新しい FAQ なら空のままにすると自動で付きます。", row=number, column=id_label)
    answer, answer_label = single("answer")
    if answer is not None and len(answer) > MAX_ANSWER_CHARS:
        raise SheetError(path, f"回答が {len(answer)} 文字あります（上限 {MAX_ANSWER_CHARS} 文字）。",
                         "要点に絞るか、詳しい説明はリンク先に移してください。", row=number, column=answer_label)
    question_pieces = _split_phrasings(single("question")[0] or "")
    paraphrases: list[str] = question_pieces[1:]
    for text in texts.get("paraphrases", []):
        paraphrases.extend(_split_phrasings(text))
    main_question = question_pieces[0] if question_pieces else None
    related_text, related_label = single("related")
    links_text, links_label = single("links")
    return SheetRow(
        row=number,
        id=faq_id,
        category=_one_line(single("category")[0]),
        title=_one_line(single("title")[0]),
        question=main_question,
        answer=answer,
        paraphrases=tuple(p for p in _unique(paraphrases) if p != main_question),
        related=_parse_related(path, number, related_label, related_text) if related_text else None,
        links=_parse_links(path, number, links_label, links_text) if links_text else None,
    )


def _split_phrasings(text: str) -> list[str]:
    return _unique(piece.strip() for piece in _PARAPHRASE_SEPARATOR.split(text) if piece.strip())


def _parse_related(path: Path, number: int, label: str, text: str) -> tuple[str, ...]:
    ids = [part for part in _RELATED_SEPARATOR.split(unicodedata.normalize("NFKC", text)) if part]
    for faq_id in ids:
        if not ID_PATTERN.match(faq_id):
            raise SheetError(path, f"関連ID「{faq_id}」は ID の形ではありません。",
                             "関連する FAQ の ID をカンマ区切りで書いてください（例: change-phone, change-email）。",
                             row=number, column=label)
    return tuple(_unique(ids))


def _parse_links(path: Path, number: int, label: str, text: str) -> tuple[Link, ...]:
    links = []
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        match = _URL.search(line)
        if match is None:
            raise SheetError(path, f"リンク「{line}」に URL がありません。",
                             "1行に1つずつ「マイページ https://...」の形で書いてください。", row=number, column=label)
        if match.group(1).lower() not in ("http", "https"):
            raise SheetError(path, f"リンク先「{match.group(0)}」は http(s) ではありません。",
                             "https:// で始まる URL を書いてください。", row=number, column=label)
        if line[match.end():].strip():
            raise SheetError(path, f"リンク「{line}」の URL のあとに文字があります。",
                             "1行に1つずつ「タイトル URL」の順で書いてください。", row=number, column=label)
        title = line[:match.start()].strip(_LINK_TITLE_TRAILER)
        if not title:
            raise SheetError(path, f"リンク「{line}」にタイトルがありません。",
                             "URL の前にボタンに表示する文字を書いてください（例: マイページ https://...）。",
                             row=number, column=label)
        url = match.group(0)
        if not url.startswith(("http://", "https://")):  # the loader accepts lower-case schemes only
            url = url[:len(match.group(1))].lower() + url[len(match.group(1)):]
        links.append(Link(title=title, url=url))
    return tuple(links)


def _cell_text(value: Any) -> str:
    if value is None or isinstance(value, _Formula):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != day_time(0) else value.date().isoformat()
    if isinstance(value, (date, day_time)):
        return value.isoformat()
    return str(value)


def _one_line(text: str | None) -> str | None:
    return " ".join(text.split()) if text else None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _column_letter(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _abbreviate(items: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ほか {len(items) - limit} 件" if len(items) > limit else "")


# --------------------------------------------------------------------------- importing


def question_key(text: str) -> str:
    """Key under which two questions count as the same (as ``bot kb validate`` compares them).

    Same rule as ``bot.knowledge.validate._question_key`` (fold, then drop punctuation,
    spaces and control characters), so an import never creates what the validator rejects.
    """
    return "".join(ch for ch in fold(text) if unicodedata.category(ch)[0] not in "PZC")


@dataclass
class _Target:
    """What one table row does to the knowledge base."""

    row: SheetRow
    faq_id: str
    old: FaqEntry | None
    new: FaqEntry


def import_sheet(path: Path, kb_dir: Path, encoding: str | None = None) -> ImportReport:
    """Merge an FAQ table into a knowledge directory, all or nothing.

    Rows whose ID (or, when the ID cell is empty, whose 質問 equals the first question of an
    existing entry) matches an entry update it where the table gives a value: category,
    title, answer, related and links are replaced; questions are merged (質問 becomes the
    first question, new 言い換え are appended, existing questions are never dropped). Other
    rows become new entries in ``faq/imported.yml`` (id from the ID column, or the next free
    ``faq-0001``-style id). Entries the table does not name are left untouched. Existing
    files keep their comments and order (ruamel.yaml round trip); only files whose content
    changes are rewritten.

    Nothing in ``kb_dir`` changes unless the whole result is valid: the new state is
    written to a temporary copy and loaded with :func:`bot.knowledge.loader.load_knowledge`
    first; each file is then replaced atomically (temporary file + ``os.replace``).

    Args:
        path: The table (``.xlsx`` or ``.csv``).
        kb_dir: The knowledge directory (holding ``faq/``); created when it does not exist.
        encoding: CSV encoding, overriding the detection (see :func:`read_sheet`).

    Returns:
        Which entries were added, changed and unchanged, and the files written.

    Raises:
        SheetError: The table is invalid or would make the knowledge base invalid.
        KnowledgeError: The knowledge directory was already broken before the import.
    """
    path, kb_dir = Path(path), Path(kb_dir)
    sheet = _load_sheet(path, encoding)
    faq_dir = kb_dir / "faq"
    if kb_dir.exists() and not kb_dir.is_dir():
        raise SheetError(kb_dir, "ナレッジフォルダとして指定された場所がファイルです。", "--kb にはフォルダを指定してください。")
    files = sorted(faq_dir.glob("*.yml")) if faq_dir.is_dir() else []
    old_kb = load_knowledge(kb_dir) if files else KnowledgeBase(entries=())
    targets = _plan(sheet, old_kb)
    _check_references(sheet, targets, old_kb)
    _check_duplicate_questions(sheet, targets, old_kb)

    report = ImportReport(sheet=path, kb_dir=kb_dir, skipped_empty_rows=sheet.skipped_empty_rows,
                          ignored_columns=sheet.ignored_columns, encoding=sheet.encoding)
    for target in targets:
        if target.row.id is None:
            report.assigned_ids[target.row.row] = target.faq_id
        if target.old is None:
            report.added.append(target.faq_id)
        elif target.old == target.new:
            report.unchanged.append(target.faq_id)
        else:
            report.changed.append(target.faq_id)
        if len(target.new.title) > TITLE_CHARS and (target.old is None or target.old.title != target.new.title):
            report.warnings.append(f"{target.row.row}行目（{target.faq_id}）のタイトルが {len(target.new.title)} 文字あります"
                                   f"（ボタンに表示されるので {TITLE_CHARS} 文字以内がおすすめです）。")
    if not report.added and not report.changed:
        return report

    texts = _render(faq_dir, files, targets, report)
    _validate_in_copy(sheet, kb_dir, files, texts, targets)
    _write_files(kb_dir, texts)
    report.written = sorted(texts)
    return report


def _plan(sheet: _Sheet, old_kb: KnowledgeBase) -> list[_Target]:
    """Decide, for each row, which entry it updates or creates, and the resulting entry."""
    by_first_question: dict[str, FaqEntry] = {}
    for entry in old_kb.entries:
        by_first_question.setdefault(entry.questions[0], entry)
    used_numbers = [int(m.group(1)) for faq_id in old_kb.ids + [r.id for r in sheet.rows if r.id]
                    if (m := _NEW_ID.match(faq_id))]
    next_number = max(used_numbers, default=0) + 1
    claimed: dict[str, int] = {}
    question_rows: dict[str, int] = {}
    targets = []
    for row in sheet.rows:
        old = None
        if row.id is not None:
            faq_id = row.id
            old = old_kb.get(faq_id)
        else:
            if row.question is None:
                raise SheetError(sheet.path, "ID も質問も空です。",
                                 "新しい FAQ なら質問を、既存の FAQ を直すなら ID を書いてください。",
                                 row=row.row, column=sheet.label("question"))
            if row.question in question_rows:
                raise SheetError(sheet.path, f"質問「{row.question}」の行が {question_rows[row.question]}行目にもあります。",
                                 "1つの FAQ は1行にまとめてください。", row=row.row, column=sheet.label("question"))
            question_rows[row.question] = row.row
            old = by_first_question.get(row.question)
            if old is not None:
                faq_id = old.id
            else:
                faq_id = f"{NEW_ID_PREFIX}{next_number:04d}"
                next_number += 1
        if faq_id in claimed:
            raise SheetError(sheet.path, f"{claimed[faq_id]}行目と同じ FAQ（{faq_id}）を指しています"
                                         "（ID が空の行は、質問が同じ既存の FAQ の更新になります）。",
                             "1つの FAQ は1行にまとめてください。", row=row.row, column=sheet.label("id"))
        claimed[faq_id] = row.row
        new = _merged_entry(sheet, row, faq_id, old)
        targets.append(_Target(row, faq_id, old, new))
    return targets


def _merged_entry(sheet: _Sheet, row: SheetRow, faq_id: str, old: FaqEntry | None) -> FaqEntry:
    if old is None:
        def required(field_name: str, value: str | None) -> str:
            if not value:
                raise SheetError(sheet.path, f"新しい FAQ（{faq_id}）なのに「{JA_HEADERS[field_name]}」が空です。",
                                 f"「{JA_HEADERS[field_name]}」を書いてください（既存の FAQ を直すつもりなら ID を確かめてください）。",
                                 row=row.row, column=sheet.label(field_name))
            return value

        category = required("category", row.category)
        question = required("question", row.question)
        answer = required("answer", row.answer)
        return FaqEntry(id=faq_id, category=category, title=row.title or question[:TITLE_CHARS].strip(),
                        questions=row.questions, answer=answer, links=row.links or (), related=row.related or ())
    return FaqEntry(
        id=faq_id,
        category=row.category or old.category,
        title=row.title or old.title,
        questions=tuple(_merged_questions(list(old.questions), row)),
        answer=row.answer or old.answer,
        links=old.links if row.links is None else row.links,
        related=old.related if row.related is None else row.related,
    )


def _merged_questions(questions: list[str], row: SheetRow) -> list[str]:
    """質問 first, the existing questions in their order, then new 言い換え (never drops any)."""
    if row.question and (not questions or questions[0] != row.question):
        if row.question in questions:
            questions.remove(row.question)
        questions.insert(0, row.question)
    questions.extend(p for p in row.paraphrases if p not in questions)
    return _unique(questions)


def _check_references(sheet: _Sheet, targets: list[_Target], old_kb: KnowledgeBase) -> None:
    known = set(old_kb.ids) | {t.faq_id for t in targets}
    for target in targets:
        for rel in target.row.related or ():
            if rel not in known:
                raise SheetError(sheet.path, f"関連ID「{rel}」という FAQ はありません。",
                                 "存在する ID（この表か knowledge/faq/ にあるもの）に直してください。",
                                 row=target.row.row, column=sheet.label("related"))


def _check_duplicate_questions(sheet: _Sheet, targets: list[_Target], old_kb: KnowledgeBase) -> None:
    """A question the table adds must not belong to another entry (the classifier could not tell them apart)."""
    final = {e.id: e for e in old_kb.entries}
    final.update({t.faq_id: t.new for t in targets})
    owners: dict[str, set[str]] = defaultdict(set)
    for entry in final.values():
        for question in entry.questions:
            owners[question_key(question)].add(entry.id)
    owners.pop("", None)  # questions of punctuation only (「？」) are not compared, as in the validator
    for target in targets:
        before = set(target.old.questions) if target.old else set()
        for question in target.new.questions:
            if question in before:
                continue
            others = sorted(owners.get(question_key(question), set()) - {target.faq_id})
            if others:
                column = sheet.label("question") if question == target.row.question else sheet.label("paraphrases")
                raise SheetError(sheet.path, f"質問「{question}」は別の FAQ（{', '.join(others)}）の質問例と同じです"
                                             "（表記の違いを除いて）。",
                                 f"同じ FAQ なら ID 列に {others[0]} と書き、別の FAQ なら言い回しを変えてください。",
                                 row=target.row.row, column=column)


# --------------------------------------------------------------------------- YAML writing


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    """A round-trip YAML; the default indentation is the layout of knowledge/faq/*.yml."""
    rt = YAML(typ="rt")
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    rt.width = 4096  # never re-wrap long questions
    rt.preserve_quotes = True
    return rt


@dataclass
class _EditableFile:
    """A YAML file loaded for editing, with the settings that write it back unchanged."""

    doc: Any
    yaml: YAML
    crlf: bool = False
    relaid_out: bool = False  # ruamel could not reproduce its layout: the whole file gets re-indented

    def dump(self) -> str:
        buffer = io.StringIO()
        self.yaml.dump(self.doc, buffer)
        text = buffer.getvalue()
        return text.replace("\n", "\r\n") if self.crlf else text


_PYYAML_RESOLVER = yaml.resolver.Resolver()


def _yaml_text(text: str) -> Any:
    """A string ruamel (YAML 1.2) writes so that PyYAML (YAML 1.1, used by the loader) reads it back as the same str."""
    if "\n" in text:
        return LiteralScalarString(text)
    if _PYYAML_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
        return DoubleQuotedScalarString(text)  # yes / no / on / 1:20 / 0777 ... are not strings in YAML 1.1
    return text


def _yaml_links(links: Sequence[Link]) -> CommentedSeq:
    return CommentedSeq(CommentedMap([("title", _yaml_text(link.title)), ("url", _yaml_text(link.url))])
                        for link in links)


def _yaml_related(related: Sequence[str]) -> CommentedSeq:
    seq = CommentedSeq(related)
    seq.fa.set_flow_style()  # `related: [a, b]`, as in the hand-written files
    return seq


def _new_node(entry: FaqEntry) -> CommentedMap:
    node = CommentedMap()
    node["id"] = entry.id
    node["category"] = _yaml_text(entry.category)
    node["title"] = _yaml_text(entry.title)
    node["questions"] = CommentedSeq(_yaml_text(q) for q in entry.questions)
    node["answer"] = _yaml_text(entry.answer)
    if entry.links:
        node["links"] = _yaml_links(entry.links)
    if entry.related:
        node["related"] = _yaml_related(entry.related)
    return node


def _set_after(node: CommentedMap, key: str, value: Any, after: Sequence[str]) -> None:
    """Set ``node[key]``; a new key goes after the last of ``after`` present (keeps the usual field order)."""
    if key in node:
        node[key] = value
        return
    keys = list(node.keys())
    position = max((keys.index(k) + 1 for k in after if k in node), default=len(keys))
    node.insert(position, key, value)


def _update_node(node: CommentedMap, old: FaqEntry, new: FaqEntry) -> None:
    """Change only what differs, in place, so comments and layout of the rest stay."""
    for key in ("category", "title", "answer"):
        if getattr(old, key) != getattr(new, key):
            node[key] = _yaml_text(getattr(new, key))
    if old.questions != new.questions:
        seq = node["questions"]
        first = new.questions[0]
        if old.questions[0] != first:
            index = next((i for i, q in enumerate(seq) if isinstance(q, str) and q.strip() == first), None)
            comment = None
            if index is not None:
                comment = seq.ca.items.pop(index, None)  # the moved question keeps its comment
                del seq[index]
            seq.insert(0, _yaml_text(first))
            if comment is not None:
                seq.ca.items[0] = comment
        present = {q.strip() for q in seq if isinstance(q, str)}
        for question in new.questions:
            if question not in present:
                seq.append(_yaml_text(question))
                present.add(question)
    if old.links != new.links:
        _set_after(node, "links", _yaml_links(new.links), ("answer",))
    if old.related != new.related:
        _set_after(node, "related", _yaml_related(new.related), ("answer", "links"))


def _load_rt(path: Path) -> _EditableFile:
    """Load ``path`` for editing with an indentation that writes it back byte for byte, if there is one."""
    raw = path.read_bytes().decode("utf-8")  # not read_text(): it would hide CRLF line endings
    text = raw.replace("\r\n", "\n")
    try:
        edit = _EditableFile(_yaml().load(text), _yaml(), crlf="\r\n" in raw)
        if edit.dump().replace("\r\n", "\n") == text:
            return edit
        # Not the project's layout (hand-edited with another indentation): try the one the file uses.
        _, sequence, offset = load_yaml_guess_indent(text)
        if sequence:
            guessed = _yaml(mapping=max(offset or 0, 2), sequence=sequence, offset=offset or 0)
            other = _EditableFile(guessed.load(text), guessed, crlf=edit.crlf)
            if other.dump().replace("\r\n", "\n") == text:
                return other
    except RuamelYAMLError as exc:  # PyYAML read it, ruamel does not (e.g. a key written twice)
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.line + 1}行目: " if mark is not None else ""
        raise KnowledgeError(path, None, f"YAML を書き換えのために読めません（{where}{getattr(exc, 'problem', None) or exc}）。",
                             "同じ項目が2回書かれていないかなど、指摘された行を確認してください。") from exc
    edit.relaid_out = True
    return edit


def _render(faq_dir: Path, files: list[Path], targets: list[_Target], report: ImportReport) -> dict[Path, str]:
    """New text of every file that changes (existing files edited in place, new entries appended)."""
    docs: dict[Path, _EditableFile] = {}
    where: dict[str, tuple[Path, CommentedMap]] = {}
    changed_ids = {t.faq_id for t in targets if t.old is not None and t.old != t.new}
    files_to_edit = {t.old.source for t in targets if t.faq_id in changed_ids and t.old is not None}
    for path in files:
        if path in files_to_edit:
            docs[path] = _load_rt(path)
            for node in docs[path].doc["entries"]:
                if isinstance(node, dict) and node.get("id") in changed_ids:
                    where[node["id"]] = (path, node)
    touched: set[Path] = set()
    for target in targets:
        if target.faq_id in changed_ids and target.old is not None:
            path, node = where[target.faq_id]
            _update_node(node, target.old, target.new)
            touched.add(path)
    new_entries = [t.new for t in targets if t.old is None]
    if new_entries:
        imported = faq_dir / IMPORTED_FILE
        if imported not in docs:
            docs[imported] = _load_rt(imported) if imported.exists() else \
                _EditableFile(_yaml().load(IMPORTED_HEADER + "entries: []\n"), _yaml())
        doc = docs[imported].doc
        entries = doc.get("entries")
        if not isinstance(entries, CommentedSeq):
            entries = doc["entries"] = CommentedSeq()
        entries.fa.set_block_style()
        for entry in new_entries:
            entries.append(_new_node(entry))
            if len(entries) > 1:  # a blank line between entries, as in the hand-written files
                entries.yaml_set_comment_before_after_key(len(entries) - 1, before="\n")
        touched.add(imported)
    texts = {}
    for path in sorted(touched):
        texts[path] = docs[path].dump()
        if docs[path].relaid_out:
            report.warnings.append(f"{path.name} はコメントと順番は残りますが、インデントの書き方が整え直されました。")
    return texts


def _validate_in_copy(sheet: _Sheet, kb_dir: Path, files: list[Path], texts: dict[Path, str],
                      targets: list[_Target]) -> None:
    """Load the would-be knowledge base from a temporary copy; it must load and hold exactly the planned entries."""
    rows = {t.faq_id: t.row.row for t in targets}
    with tempfile.TemporaryDirectory(prefix="kb-import-") as tmp:
        copy_faq = Path(tmp) / "faq"
        copy_faq.mkdir()
        for path in files:
            shutil.copyfile(path, copy_faq / path.name)
        for path, text in texts.items():
            (copy_faq / path.name).write_text(text, encoding="utf-8")
        try:
            new_kb = load_knowledge(Path(tmp))
        except KnowledgeError as exc:
            real = kb_dir / "faq" / exc.path.name
            raise SheetError(sheet.path, f"取り込むと {real}（{exc.entry or '全体'}）が不正になります: {exc.problem}",
                             exc.fix, row=rows.get(exc.entry or "")) from exc
    for target in targets:
        loaded = new_kb.get(target.faq_id)
        if loaded != target.new:
            raise SheetError(sheet.path, f"FAQ「{target.faq_id}」を YAML に書くと内容が変わってしまいます"
                                         "（特殊な文字が含まれている可能性があります）。",
                             "この行の制御文字や特殊な記号を消してから取り込み直してください。", row=target.row.row)


def _write_files(kb_dir: Path, texts: dict[Path, str]) -> None:
    """Write every file via a temporary sibling and ``os.replace``; on failure nothing is replaced."""
    created: list[Path] = []
    for directory in (kb_dir, kb_dir / "faq"):
        if not directory.exists():
            directory.mkdir()
            created.append(directory)
    sibling_mode = next((p.stat().st_mode for p in sorted((kb_dir / "faq").glob("*.yml"))), None)
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in texts.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if path.exists():
                shutil.copymode(path, tmp)
            else:
                os.chmod(tmp, (sibling_mode or 0o644) & 0o777)
    except OSError as exc:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for directory in reversed(created):
            directory.rmdir()
        raise SheetError(kb_dir, f"ファイルを書き込めません（{exc}）。",
                         "フォルダの書き込み権限と空き容量を確認してください。knowledge のファイルは変わっていません。") from exc
    for tmp, path in staged:
        os.replace(tmp, path)


# --------------------------------------------------------------------------- exporting


def _export_rows(kb: KnowledgeBase) -> list[list[str]]:
    rows = [[JA_HEADERS[name] for name in FIELDS]]
    for entry in kb.entries:
        rows.append([
            entry.id,
            entry.category,
            entry.title,
            entry.questions[0],
            entry.answer,
            "\n".join(entry.questions[1:]),
            ", ".join(entry.related),
            "\n".join(f"{link.title} {link.url}" for link in entry.links),
        ])
    return rows


def export_sheet(kb_dir: Path, path: Path, encoding: str | None = None) -> int:
    """Write the knowledge base as a table that :func:`import_sheet` reads back unchanged.

    Columns: ID, カテゴリ, タイトル, 質問 (first question), 回答, 言い換え (the other
    questions, one per line), 関連ID (comma separated), リンク (``タイトル URL`` per line).

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
    kb = load_knowledge(Path(kb_dir))
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
        codec = _codec_name(encoding) if encoding else "utf-8-sig"
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
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text such as "=" at the start must stay text, not become a formula
            cell.alignment = wrap
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = {"A": 20, "B": 16, "C": 24, "D": 36, "E": 60, "F": 48, "G": 28, "H": 48}
    for letter, width in widths.items():
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    book.save(tmp)
