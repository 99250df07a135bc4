"""Reading an FAQ table (``.xlsx`` or ``.csv``) into checked :class:`SheetRow` s.

Headers are matched after NFKC, removing spaces and lower-casing, against the names in
:data:`HEADER_NAMES`. A field may have several names in tiers of preference: when a table
has columns for the same field from different tiers (e.g. 大分類 and 分類), the preferred
one is used and the other is reported as ignored; two columns of the same tier (e.g. 回答
and answer) are an error, since either could be meant.

A table may come from anywhere, so reading it is bounded (security review, issue #11): the
file size (:data:`MAX_SHEET_BYTES`), the FAQ rows (:data:`MAX_SHEET_ROWS`) and, for an .xlsx,
what the zip unpacks to (:data:`MAX_XLSX_UNPACKED_BYTES`, :data:`MAX_XLSX_RATIO`, checked
before openpyxl opens it). openpyxl parses the XML with defusedxml (its ``DEFUSEDXML`` flag),
so entity declarations (billion laughs, external entities) are refused, never expanded; an
.xlsx is not read at all without it. A cell starting with ``'`` followed by a formula
character loses that quote (:func:`~bot.knowledge.spreadsheet.common.restore_formula`), the
one the export adds.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import warnings
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time as day_time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from bot.knowledge.loader import ID_PATTERN
from bot.knowledge.model import Link
from bot.knowledge.spreadsheet.common import (
    CSV_SUFFIXES,
    JA_HEADERS,
    MAX_CELL_CHARS,
    MAX_SHEET_BYTES,
    MAX_SHEET_ROWS,
    MAX_XLSX_RATIO,
    MAX_XLSX_UNPACKED_BYTES,
    MEGABYTE,
    NEW_ID_PREFIX,
    PREFERRED_SHEET,
    REQUIRED_COLUMNS,
    XLSX_SUFFIXES,
    SheetError,
    SheetRow,
    XLSX_RATIO_MIN_BYTES,
    codec_name,
    column_letter,
    megabytes,
    restore_formula,
    unique,
)

# Header names (as compared: NFKC, no spaces, lower case) of each field, in tiers of preference.
# Several 言い換え / paraphrase(s) columns are allowed and may carry a number (言い換え1, 言い換え2 ...).
HEADER_NAMES: dict[str, tuple[tuple[str, ...], ...]] = {
    "id": (("id",), ("管理番号",), ("番号", "no", "no.")),
    # The category is a broad grouping shown to customers: 大分類 wins over a (finer) 分類.
    "category": (("カテゴリ", "カテゴリー", "category"), ("大分類",), ("分類",)),
    "title": (("タイトル", "title"), ("件名",)),
    "question": (("質問", "question"), ("質問文",), ("問い合わせ内容", "お問い合わせ内容"), ("よくある質問",), ("q",)),
    "answer": (("回答", "answer"), ("回答文",), ("答え",), ("a",)),
    "related": (("関連id", "related"),),
    "links": (("リンク", "link", "links"),),
}
_HEADER_FIELDS = {name: (field_name, tier) for field_name, tiers in HEADER_NAMES.items()
                  for tier, names in enumerate(tiers) for name in names}
_PARAPHRASE_HEADER = re.compile(r"^(?:言い換え|paraphrases?)\d*$")
# Several phrasings in one cell: one per line, or separated by a full-width or ASCII bar.
_PARAPHRASE_SEPARATOR = re.compile(r"[\n|｜]")
_RELATED_SEPARATOR = re.compile(r"[,、\s]+")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://\S+")
_LINK_TITLE_TRAILER = " \t\u3000:：-－–—"
_NUMBER_ID = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Column:
    """One FAQ column of the table."""

    field: str
    index: int  # 0-based
    header: str

    @property
    def label(self) -> str:
        """The column as editors see it, e.g. ``E列「回答」``."""
        return f"{column_letter(self.index + 1)}列「{self.header}」"


@dataclass
class Sheet:
    """A parsed table: rows plus what error messages and the report need.

    Attributes:
        path: The table file.
        rows: The non-empty data rows, in order.
        columns: Field -> its column(s) (several only for 言い換え).
        skipped_empty_rows: Empty rows between the header and the last data row.
        ignored_columns: Headers not read (unknown, or a less preferred name of a field).
        encoding: Encoding a CSV was read with (``None`` for ``.xlsx``).
        notes: Warnings about the header (which of two columns was used).
    """

    path: Path
    rows: list[SheetRow]
    columns: dict[str, list[Column]]
    skipped_empty_rows: int
    ignored_columns: list[str]
    encoding: str | None
    notes: list[str] = field(default_factory=list)

    def label(self, field_name: str) -> str:
        """The column of ``field_name`` for messages (its header name when the table has none)."""
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
    return load_sheet(path, encoding).rows


def load_sheet(path: Path, encoding: str | None) -> Sheet:
    """Read and check a table, keeping its columns and header notes (see :func:`read_sheet`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in XLSX_SUFFIXES + CSV_SUFFIXES:
        raise SheetError(path, f"「{path.suffix or '拡張子なし'}」の形式には対応していません。",
                         "Excel ブック（.xlsx）か CSV（.csv）で保存したファイルを指定してください。")
    if not path.is_file():
        raise SheetError(path, "ファイルが見つかりません。", "ファイル名と場所（フォルダ）を確認してください。")
    size = path.stat().st_size
    if size > MAX_SHEET_BYTES:
        trim = "画像や使っていないシートを消すか、" if suffix in XLSX_SUFFIXES else ""
        raise SheetError(path, f"ファイルが {megabytes(size)} あります（上限 {MAX_SHEET_BYTES // MEGABYTE} MB）。"
                               "大きすぎるファイルは安全のため読み込みません。",
                         f"{trim}表を複数のファイルに分けて1つずつ取り込んでください"
                         "（取り込みは追加と変更だけなので、分けてもほかの FAQ は消えません）。")
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
    _check_unpacked_size(path)
    if not getattr(openpyxl, "DEFUSEDXML", False):
        # Without defusedxml openpyxl parses with the standard library, which does not refuse
        # entity declarations: fail closed rather than read a hostile workbook with it.
        raise SheetError(path, "Excel ブックを安全に読むためのパッケージ defusedxml が入っていません"
                               "（XML の実体展開などの攻撃を防ぐために必要です）。",
                         "`make setup` を実行して依存パッケージを入れ直してください"
                         "（環境変数 OPENPYXL_DEFUSEDXML を False にしている場合は外してください）。"
                         "すぐに取り込むなら CSV で保存して取り込めます。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Data Validation extension is not supported"
            values_book = openpyxl.load_workbook(path, read_only=True, data_only=True)
            formula_book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises zip, XML, Key and Value errors for broken files
        if _is_unsafe_xml(exc):
            raise _unsafe_xml_error(path) from exc
        raise _unreadable_xlsx_error(path, exc) from exc
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
            if _is_unsafe_xml(exc):
                raise _unsafe_xml_error(path) from exc
            raise SheetError(path, f"シート「{name}」を読めません（{type(exc).__name__}: {exc}）。",
                             "Excel で開いて「Excel ブック (*.xlsx)」形式で保存し直してください。") from exc
    finally:
        values_book.close()
        formula_book.close()


_XLSX_FIX = "ファイルが壊れていないか確認し、Excel で開いて「Excel ブック (*.xlsx)」形式で保存し直してください。"
_TOO_BIG_XLSX_FIX = ("Excel で FAQ の表だけを新しいブックにコピーし（「値として貼り付け」）、保存し直して取り込むか、"
                     "CSV（UTF-8）で保存して取り込んでください。出所の分からないファイルなら取り込まないでください。")


def _unreadable_xlsx_error(path: Path, exc: BaseException) -> SheetError:
    return SheetError(path, f"Excel ブックとして読めません（{type(exc).__name__}: {exc}）。", _XLSX_FIX)


def _check_unpacked_size(path: Path) -> None:
    """Refuse an .xlsx that unpacks to too much (a zip bomb), before any of its XML is parsed.

    The sizes checked are the ones the zip declares; :mod:`zipfile`, which openpyxl reads
    with, never yields more than the declared size of a member (and then fails its CRC
    check), so they bound what openpyxl can unpack.

    Raises:
        SheetError: The zip cannot be read, unpacks to more than
            :data:`MAX_XLSX_UNPACKED_BYTES` in all, or has a member over
            :data:`XLSX_RATIO_MIN_BYTES` compressed more than :data:`MAX_XLSX_RATIO` times.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except Exception as exc:  # BadZipFile, or OSError / ValueError / EOFError for truncated files
        raise _unreadable_xlsx_error(path, exc) from exc
    total = sum(member.file_size for member in members)
    if total > MAX_XLSX_UNPACKED_BYTES:
        raise SheetError(path, f"Excel ブックを展開すると {megabytes(total)} になります（上限 "
                               f"{MAX_XLSX_UNPACKED_BYTES // MEGABYTE} MB）。展開すると巨大になるファイル（zip 爆弾）"
                               "の可能性があるため、読み込みません。", _TOO_BIG_XLSX_FIX)
    for member in members:
        if member.file_size > XLSX_RATIO_MIN_BYTES and member.file_size > MAX_XLSX_RATIO * max(member.compress_size, 1):
            ratio = member.file_size / max(member.compress_size, 1)
            raise SheetError(path, f"Excel ブックの中に圧縮率が異常に高い部分があります（{member.filename}: "
                                   f"{megabytes(member.file_size)} が {member.compress_size:,} バイトに圧縮、{ratio:,.0f} 倍。"
                                   f"上限 {MAX_XLSX_RATIO} 倍）。展開すると巨大になるファイル（zip 爆弾）の可能性があるため、"
                                   "読み込みません。", _TOO_BIG_XLSX_FIX)


def _is_unsafe_xml(exc: BaseException) -> bool:
    """Whether defusedxml refused the XML (an entity declaration, an external reference ...).

    openpyxl wraps parse errors in its own ``ValueError``, so the whole chain is searched.
    """
    try:
        from defusedxml import DefusedXmlException
    except ImportError:  # pragma: no cover - _xlsx_rows refuses to read without defusedxml
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DefusedXmlException):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _unsafe_xml_error(path: Path) -> SheetError:
    return SheetError(path, "ブックの中に XML の実体（エンティティ）宣言（<!ENTITY ...>）があります。展開すると巨大になる"
                            "攻撃（billion laughs）やほかのファイルの読み出しに使われるもので、Excel が保存したブックには"
                            "ありません。安全のため読み込みません。",
                      "Excel で開いて「Excel ブック (*.xlsx)」形式で保存し直してください。出所の分からないファイルなら"
                      "取り込まないでください。")


@dataclass(frozen=True)
class _Formula:
    """A formula cell without a usable value (not calculated, or an Excel error like #N/A)."""

    formula: str
    error: str | None = None


def _decode(path: Path, raw: bytes, encoding: str | None) -> tuple[str, str]:
    """The text of a CSV file and the encoding used (strict decoding; never guesses silently)."""
    if not encoding and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SheetError(path, "UTF-16（Excel の「Unicode テキスト」）の CSV には対応していません。",
                         "Excel で「CSV UTF-8 (コンマ区切り) (*.csv)」形式で保存し直してください。")
    if raw.startswith(b"PK\x03\x04"):
        raise SheetError(path, "中身は Excel ブック（.xlsx）です。", "拡張子を .xlsx にしてから取り込んでください。")
    if encoding:
        try:
            codec = codec_name(encoding)
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
                                     "長すぎるセルを確認して短くしてください（長い説明はリンク先に移せます）。", row=number + 1) from exc
                raise SheetError(path, f"CSV として読めません（{exc}）。",
                                 "Excel で開いて CSV 形式で保存し直してください。", row=number + 1) from exc
            number += 1
            yield number, list(record)

    return rows(), used



def _header_key(value: Any) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", cell_text(value))).lower()


def _map_header(path: Path, number: int, cells: Sequence[Any], encoding: str | None
                ) -> tuple[dict[str, list[Column]], list[str], list[str]]:
    """Columns of each field, ignored headers and notes about the choices made."""
    candidates: dict[str, list[tuple[int, Column]]] = defaultdict(list)
    paraphrases: list[Column] = []
    ignored: list[str] = []
    for index, value in enumerate(cells):
        header = cell_text(value).strip()
        if not header:
            continue
        key = _header_key(value)
        if _PARAPHRASE_HEADER.match(key):
            paraphrases.append(Column("paraphrases", index, header))
            continue
        if key not in _HEADER_FIELDS:
            ignored.append(header)
            continue
        field_name, tier = _HEADER_FIELDS[key]
        candidates[field_name].append((tier, Column(field_name, index, header)))
    columns: dict[str, list[Column]] = {}
    notes: list[str] = []
    for field_name, found in candidates.items():
        best = min(tier for tier, _ in found)
        chosen = [column for tier, column in found if tier == best]
        if len(chosen) > 1:
            raise SheetError(path, f"「{JA_HEADERS[field_name]}」の列が {chosen[0].label}と{chosen[1].label}の2つあります。",
                             "片方の見出しを消すか別の名前にしてください（言い換えの列だけは複数にできます）。", row=number)
        columns[field_name] = chosen
        for tier, column in found:
            if tier != best:
                ignored.append(column.header)
                notes.append(f"{chosen[0].label}と{column.label}の両方があるので、{JA_HEADERS[field_name]}には"
                             f"{chosen[0].label}を使い、{column.label}は取り込みませんでした"
                             f"（「{chosen[0].header}」が優先です）。")
    if paraphrases:
        columns["paraphrases"] = paraphrases
    ignored.sort(key=lambda header: next(i for i, v in enumerate(cells) if cell_text(v).strip() == header))
    missing = [JA_HEADERS[name] for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        found_headers = [cell_text(v).strip() for v in cells if cell_text(v).strip()]
        hint = f" 文字化けしている場合は --encoding で文字コードを指定してください（今回の判定: {encoding}）。" \
            if encoding else ""
        raise SheetError(path, f"必要な列 {'・'.join(f'「{m}」' for m in missing)} がありません"
                               f"（見出し行: {number}行目。見つかった見出し: {', '.join(found_headers) or 'なし'}）。",
                         "1行目に見出しとして カテゴリ・質問・回答 を書いてください（英語の category / question / "
                         "answer や、「分類」「問い合わせ内容」「回答文」などの言い方でも構いません。"
                         "使える見出しは docs/importing-faq.md の表にあります）。" + hint, row=number)
    return columns, ignored, notes


def _parse_table(path: Path, table: Iterable[tuple[int, list[Any]]], encoding: str | None) -> Sheet:
    rows: list[SheetRow] = []
    columns: dict[str, list[Column]] | None = None
    ignored: list[str] = []
    notes: list[str] = []
    pending_empty = 0  # empty rows not yet known to be followed by data (trailing ones do not count)
    skipped = 0
    seen_ids: dict[str, int] = {}
    for number, cells in table:
        if columns is None:
            if any(cell_text(v).strip() for v in cells if not isinstance(v, _Formula)):
                columns, ignored, notes = _map_header(path, number, cells, encoding)
            continue
        row = _parse_row(path, number, cells, columns)
        if row is None:
            pending_empty += 1
            continue
        skipped += pending_empty
        pending_empty = 0
        if len(rows) >= MAX_SHEET_ROWS:
            raise SheetError(path, f"FAQ の行が {MAX_SHEET_ROWS:,} 行を超えています（この行が {MAX_SHEET_ROWS + 1:,} 行目の"
                                   " FAQ です）。大きすぎる表は安全のため読み込みません。",
                             f"表を {MAX_SHEET_ROWS:,} 行以下の複数のファイルに分けて、1つずつ取り込んでください"
                             "（取り込みは追加と変更だけなので、分けてもほかの FAQ は消えません）。", row=number)
        if row.id is not None:
            if row.id in seen_ids:
                written = f"（番号 {row.id_number} は {row.id} として扱います）" if row.id_number is not None else ""
                raise SheetError(path, f"ID「{row.id}」が {seen_ids[row.id]}行目と {number}行目の2回出てきます{written}。",
                                 "1つの FAQ は1行にまとめるか、どちらかの ID を直してください。",
                                 row=number, column=columns["id"][0].label)
            seen_ids[row.id] = number
        rows.append(row)
    if columns is None:
        raise SheetError(path, "見出し行がありません（表が空です）。",
                         "1行目に ID・カテゴリ・タイトル・質問・回答・言い換え・関連ID・リンク の見出しを書いてください。")
    return Sheet(path, rows, columns, skipped, ignored, encoding, notes)


def _parse_id(path: Path, number: int, label: str, raw_id: str) -> tuple[str, int | None]:
    """The entry id of an ID cell and, for a plain number, that number (``12`` -> ``faq-0012``, 12).

    A plain number (``12``, ``0012``, ``１２``) is shorthand for the automatic ``faq-0012``
    form: the same FAQ whether Excel kept the leading zeros or not, and no id that is only
    digits (which Excel would turn back into a number).
    """
    faq_id = unicodedata.normalize("NFKC", raw_id).strip()
    if _NUMBER_ID.match(faq_id):
        value = int(faq_id)
        return f"{NEW_ID_PREFIX}{value:04d}", value
    if not ID_PATTERN.match(faq_id):
        raise SheetError(path, f"ID「{raw_id}」は使えない形です。",
                         "ID は半角の英小文字・数字とハイフンで書いてください（例: change-address、city-0001）。"
                         f"番号だけなら {NEW_ID_PREFIX}0012 の形になります。"
                         "新しい FAQ なら空のままにすると自動で付きます。", row=number, column=label)
    return faq_id, None


def _parse_row(path: Path, number: int, cells: Sequence[Any], columns: dict[str, list[Column]]) -> SheetRow | None:
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
            # The quote `bot kb export` puts before a formula-like text is not part of the FAQ.
            text = restore_formula(cell_text(value).replace("\r\n", "\n").replace("\r", "\n").strip())
            if len(text) > MAX_CELL_CHARS:
                raise SheetError(path, f"セルが {len(text):,} 文字あります（1つのセルは {MAX_CELL_CHARS:,} 文字まで）。",
                                 "内容を確認し、別の行や列に分けるか短くしてください。", row=number, column=column.label)
            texts[field_name].append(text)
    if not any(text for values in texts.values() for text in values):
        return None

    def single(field_name: str) -> tuple[str | None, str]:
        values = texts.get(field_name) or [""]
        return values[0] or None, columns[field_name][0].label if field_name in columns else ""

    raw_id, id_label = single("id")
    faq_id, id_number = _parse_id(path, number, id_label, raw_id) if raw_id is not None else (None, None)
    # Long answers are fine here (a warning of the import); only MAX_CELL_CHARS is a limit.
    answer = single("answer")[0]
    # A 質問 cell may hold several questions, one per line: the first is the main question.
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
        paraphrases=tuple(p for p in unique(paraphrases) if p != main_question),
        related=_parse_related(path, number, related_label, related_text) if related_text else None,
        links=_parse_links(path, number, links_label, links_text) if links_text else None,
        id_number=id_number,
    )


def _split_phrasings(text: str) -> list[str]:
    return unique(piece.strip() for piece in _PARAPHRASE_SEPARATOR.split(text) if piece.strip())


def _parse_related(path: Path, number: int, label: str, text: str) -> tuple[str, ...]:
    ids = [part for part in _RELATED_SEPARATOR.split(unicodedata.normalize("NFKC", text)) if part]
    for faq_id in ids:
        if not ID_PATTERN.match(faq_id):
            raise SheetError(path, f"関連ID「{faq_id}」は ID の形ではありません。",
                             "関連する FAQ の ID をカンマ区切りで書いてください（例: change-phone, change-email）。",
                             row=number, column=label)
    return tuple(unique(ids))


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


def cell_text(value: Any) -> str:
    """A cell value as the text Excel shows (whole numbers without ``.0``)."""
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
