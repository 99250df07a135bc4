"""What every layer of the spreadsheet import/export shares: constants, errors, rows and the report."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from bot.knowledge.loader import LONG_ANSWER_CHARS, LONG_ANSWER_FIX, LONG_ANSWER_REASON, MAX_ANSWER_CHARS
from bot.knowledge.model import Link

# One cell holds at most what the loader accepts as an answer (a safety cap for absurd cells).
MAX_CELL_CHARS = MAX_ANSWER_CHARS
# Limits of an imported table (security review, issue #11): far above a real FAQ table (the
# tests' municipal table of 2,000 FAQs with long answers is 0.1 MB as .xlsx, 6 MB unpacked),
# low enough that a huge or hostile file cannot exhaust memory or time.
MEGABYTE = 1024 * 1024
MAX_SHEET_BYTES = 20 * MEGABYTE  # the file as it is on disk (.xlsx or .csv)
MAX_SHEET_ROWS = 20_000  # non-empty data rows (FAQs)
# An .xlsx is a zip: what it unpacks to is checked before openpyxl opens it (zip bombs).
MAX_XLSX_UNPACKED_BYTES = 100 * MEGABYTE  # all members together
MAX_XLSX_RATIO = 200  # unpacked / packed size of one member (ordinary sheets: 5-60)
XLSX_RATIO_MIN_BYTES = MEGABYTE  # smaller members may be as compressible as they like
# A text starting with one of these is run as a formula by Excel / LibreOffice when the cell is
# opened or edited (OWASP "CSV injection"); Japanese Excel also takes the full-width forms.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
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
# Encodings editors name that mean Windows' Shift_JIS (CP932 adds ①, ～, 髙 ... that Excel writes).
_CP932_ALIASES = {"shift_jis", "shift-jis", "shiftjis", "sjis", "s_jis", "x-sjis", "ms_kanji", "windows-31j",
                  "cp932", "ms932", "mskanji"}


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
class Conflict:
    """A row whose question (up to notation, see :func:`bot.knowledge.loader.question_key`) another FAQ has.

    The bot could not tell the two FAQs apart, so such a row is not imported: by default the
    import stops (:class:`SheetConflictError`), with ``--skip-conflicts`` the row is skipped.
    The first occurrence (the existing FAQ, or the earlier row) is kept.

    Attributes:
        row: The row that conflicts (and is skipped).
        faq_id: The id the row names or would update; ``None`` for a new row without ID.
        question: The conflicting question, as written in the row.
        column: Its column, e.g. ``D列「質問」``.
        other_question: The same question as the kept FAQ writes it.
        other_id: Id of the kept FAQ (``None``: never, kept rows have ids; typed for safety).
        other_row: Row of the table that keeps the question, when it comes from the table.
        other_file: File of the existing FAQ that keeps it, when it comes from the knowledge base.
    """

    row: int
    faq_id: str | None
    question: str
    column: str
    other_question: str
    other_id: str | None
    other_row: int | None = None
    other_file: Path | None = None

    def describe(self) -> str:
        """One Japanese line naming both rows (or the row and the file), the ids and the question."""
        if self.other_row is not None:
            other = f"{self.other_row}行目（{self.other_id or 'ID なし'}）"
        else:
            other = f"既存の FAQ {self.other_id}（{self.other_file.name if self.other_file else 'knowledge'}）"
        same = "" if self.other_question == self.question else f"の「{self.other_question}」"
        return (f"{self.row}行目（{self.faq_id or 'ID なし'}）・{self.column}: 質問「{self.question}」が"
                f" {other}{same}と同じです")


class SheetConflictError(SheetError):
    """Rows whose questions other FAQs already have; nothing was imported.

    Attributes:
        conflicts: Every conflict, in row order (the rows ``--skip-conflicts`` would skip).
    """

    def __init__(self, path: Path | str, conflicts: Sequence[Conflict]) -> None:
        self.conflicts = list(conflicts)
        rows = len({c.row for c in self.conflicts})
        lines = "".join(f"\n  - {c.describe()}" for c in self.conflicts)
        super().__init__(
            path,
            f"ほかの FAQ と同じ質問（表記の違いを除いて同じもの）がある行が {rows} 行あります。"
            f"同じ質問が2つの FAQ にあると、ボットはどちらで答えるか区別できません。{lines}\n",
            "それぞれの行の質問を言い換えるか、同じ内容なら1行にまとめてください（既存の FAQ を直すなら ID 列にその ID を"
            "書きます）。これらの行だけを飛ばしてほかを取り込むには --skip-conflicts を付けて実行してください"
            "（先に出てきた方が残ります）。knowledge のファイルは変わっていません。")


@dataclass(frozen=True)
class SheetRow:
    """One non-empty data row of the table; ``None`` / ``()`` means the cell was empty.

    Attributes:
        row: Row number as Excel shows it.
        id: Entry id, if given (a plain number ``12`` in the ID cell gives ``faq-0012``).
        category: Category, if given.
        title: Title, if given.
        question: The main question (質問; the first line when the cell holds several), if given.
        answer: Answer, if given.
        paraphrases: Further phrasings (the other lines of the 質問 cell, then every 言い換え
            column), in order, without duplicates.
        related: Related ids, or ``None`` when the cell is empty.
        links: Links, or ``None`` when the cell is empty.
        id_number: The number written in the ID cell when it was a plain number (``12`` for
            ``faq-0012``), else ``None``; not part of equality.
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
    id_number: int | None = field(default=None, compare=False)

    @property
    def questions(self) -> tuple[str, ...]:
        """質問 followed by the paraphrases, without exact duplicates."""
        return tuple(unique(([self.question] if self.question else []) + list(self.paraphrases)))


@dataclass
class ImportReport:
    """What :func:`bot.knowledge.spreadsheet.import_sheet` did.

    Attributes:
        sheet: The imported table.
        kb_dir: The knowledge directory.
        added: Ids of new entries, in row order.
        changed: Ids of existing entries the table changed.
        unchanged: Ids named by the table whose entries were already identical.
        assigned_ids: Row number -> id for rows whose ID cell was empty (a new id, or the
            existing entry with the same 質問); editors should copy them into the table.
        numbered_ids: Row number -> id for rows whose ID cell held a plain number (``12`` ->
            ``faq-0012``).
        skipped_empty_rows: Empty rows between the header and the last row.
        skipped_conflicts: Conflicts of the rows skipped with ``skip_conflicts`` (questions
            another FAQ has), in row order; a row may appear once per conflicting question.
        ignored_columns: Headers that are not FAQ columns (e.g. 備考), or a second column for
            the same field that lost to a preferred header (e.g. 分類 when 大分類 exists).
        written: Files written (empty when nothing changed).
        encoding: Encoding a CSV was read with (``None`` for ``.xlsx``).
        warnings: Points worth a look that did not stop the import (long titles, long
            answers, which of two category columns was used ...).
    """

    sheet: Path
    kb_dir: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    assigned_ids: dict[int, str] = field(default_factory=dict)
    numbered_ids: dict[int, str] = field(default_factory=dict)
    skipped_empty_rows: int = 0
    skipped_conflicts: list[Conflict] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    encoding: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped_rows(self) -> list[int]:
        """Rows not imported because of a conflict, in order."""
        return sorted({c.row for c in self.skipped_conflicts})

    def summary(self) -> str:
        """A Japanese summary for the editor's terminal."""
        skipped = f"、質問の重複でスキップ {len(self.skipped_rows)} 行" if self.skipped_conflicts else ""
        lines = [f"{self.sheet} を {self.kb_dir} に取り込みました: 追加 {len(self.added)} 件、"
                 f"変更 {len(self.changed)} 件、変更なし {len(self.unchanged)} 件{skipped}。"]
        for label, ids in (("追加", self.added), ("変更", self.changed)):
            if ids:
                lines.append(f"  {label}: {abbreviate(ids)}")
        if self.skipped_conflicts:
            lines.append("  スキップした行（ほかの FAQ と同じ質問があるため取り込んでいません。先に出てきた方が残っています。"
                         "質問を言い換えるか1行にまとめて、もう一度取り込んでください）:")
            lines.extend(f"    - {conflict.describe()}" for conflict in self.skipped_conflicts)
        if self.assigned_ids:
            pairs = [f"{row}行目 → {faq_id}" for row, faq_id in self.assigned_ids.items()]
            lines.append(f"  ID 列が空だった行の ID（表の ID 列に書き写すと次回から確実です）: {abbreviate(pairs)}")
        if self.numbered_ids:
            row, faq_id = next(iter(self.numbered_ids.items()))
            lines.append(f"  ID 列の番号は「{NEW_ID_PREFIX}」で始まる ID にしました（{len(self.numbered_ids)} 件。"
                         f"例: {row}行目 → {faq_id}）。")
        if self.skipped_empty_rows:
            lines.append(f"  空の行を {self.skipped_empty_rows} 行読み飛ばしました。")
        if self.ignored_columns:
            lines.append(f"  取り込まなかった列: {', '.join(self.ignored_columns)}")
        if self.encoding:
            lines.append(f"  文字コード: {self.encoding}")
        lines.extend(f"  注意: {warning}" for warning in self.warnings)
        if self.written:
            lines.append("  書き込んだファイル: " + ", ".join(str(p) for p in self.written))
            # Which entry answers is decided by the FAQ search at run time: no retraining (README).
            lines.append("次に `bot kb validate` で確認してください。動いているボットには数秒で反映されます（再学習は不要です）。")
            if self.added or self.changed:
                lines.append("（開発者の方へ: 質問例を次の学習にも使うには `bot kb build` を実行してください。）")
        else:
            lines.append("knowledge のファイルは変わっていません。")
        return "\n".join(lines)


def long_answers_warning(found: Sequence[tuple[int, str, int]]) -> str:
    """One warning for every imported answer over :data:`LONG_ANSWER_CHARS` characters.

    Args:
        found: ``(row, faq id, characters)`` of each long answer, in row order (not empty).

    Returns:
        The warning (Japanese), naming the rows.
    """
    places = [f"{row}行目（{faq_id}、{length:,} 文字）" for row, faq_id, length in found]
    return (f"回答が {LONG_ANSWER_CHARS} 文字を超える FAQ が {len(found)} 件あります: {abbreviate(places, 10)}。"
            f"{LONG_ANSWER_REASON} 対処: {LONG_ANSWER_FIX}（取り込みはしました）")


def codec_name(encoding: str) -> str:
    """Canonical codec for an encoding name the editor typed (Shift_JIS -> cp932, UTF-8 tolerates a BOM).

    Raises:
        LookupError: Unknown encoding.
    """
    name = encoding.strip().lower()
    if name in _CP932_ALIASES:
        return "cp932"
    canonical = codecs.lookup(name).name  # LookupError for unknown names
    if canonical == "utf-8":
        return "utf-8-sig"
    if canonical == "shift_jis":
        return "cp932"
    return canonical


def defuse_formula(text: str) -> str:
    """``text`` as a spreadsheet cell that is never run as a formula (OWASP: a leading ``'``).

    A text starting with one of :data:`FORMULA_PREFIXES`, possibly after quotes of its own,
    gets one more ``'`` in front, so that :func:`restore_formula` gives back exactly ``text``:
    ``=SUM`` -> ``'=SUM``, ``'=SUM`` -> ``''=SUM``; other texts are unchanged.

    Args:
        text: A cell's text.

    Returns:
        The text to write into a CSV or .xlsx cell.
    """
    return "'" + text if text.lstrip("'").startswith(FORMULA_PREFIXES) else text


def restore_formula(text: str) -> str:
    """Undo :func:`defuse_formula`: remove one leading ``'`` when formula characters follow.

    Only the quote the export adds is removed (``'=SUM`` -> ``=SUM``, ``''=SUM`` -> ``'=SUM``);
    ``'引用'`` or ``' =1`` stay as they are. This is also how an editor writes such a text by
    hand in a CSV file.

    Args:
        text: A cell's text as read from the table.

    Returns:
        The text the cell stands for.
    """
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_PREFIXES):
        return text[1:]
    return text


def megabytes(size: int) -> str:
    """A byte count for messages, e.g. ``20.0 MB``."""
    return f"{size / MEGABYTE:,.1f} MB"


def unique(items: Iterable[str]) -> list[str]:
    """``items`` without exact duplicates, in order."""
    return list(dict.fromkeys(items))


def column_letter(number: int) -> str:
    """Excel's column letters for a 1-based column number (1 -> A, 27 -> AA)."""
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def abbreviate(items: Sequence[str], limit: int = 20) -> str:
    """The first ``limit`` items, comma separated, and how many more there are."""
    shown = ", ".join(items[:limit])
    return shown + (f" ほか {len(items) - limit} 件" if len(items) > limit else "")
