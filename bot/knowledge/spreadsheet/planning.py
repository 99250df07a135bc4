"""Planning an import: which entry each row updates or creates, the merged entries, and conflicts.

Nothing here touches files: :func:`plan_import` turns the read table and the current
knowledge base into :class:`Target` s (one per imported row) and :class:`Conflict` s (rows
whose questions another FAQ has; they are not imported).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.knowledge.loader import LONG_ANSWER_CHARS, question_key
from bot.knowledge.model import FaqEntry, KnowledgeBase
from bot.knowledge.spreadsheet.common import (
    JA_HEADERS,
    NEW_ID_PREFIX,
    TITLE_CHARS,
    Conflict,
    SheetError,
    SheetRow,
    long_answers_warning,
    unique,
)
from bot.knowledge.spreadsheet.reading import Sheet

_NEW_ID = re.compile(rf"^{re.escape(NEW_ID_PREFIX)}(\d+)$")


@dataclass
class Target:
    """What one imported table row does to the knowledge base.

    Attributes:
        row: The row.
        faq_id: The entry it updates or creates.
        old: The entry before the import (``None`` for a new entry).
        new: The entry after the import.
    """

    row: SheetRow
    faq_id: str
    old: FaqEntry | None
    new: FaqEntry


@dataclass
class Plan:
    """The outcome of :func:`plan_import`.

    Attributes:
        targets: One per imported row, in row order.
        conflicts: Questions of rows that are not imported (another FAQ has them), in row order.
        skipped_ids: Id -> row for the rows not imported that carry an ID.
        warnings: Points worth a look (long titles and answers, a number that names an
            unrelated existing FAQ).
    """

    targets: list[Target] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    skipped_ids: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Owner:
    """Who keeps a question: an existing entry (file) or an imported row."""

    faq_id: str
    question: str
    row: int | None = None
    file: Path | None = None


def plan_import(sheet: Sheet, old_kb: KnowledgeBase) -> Plan:
    """Decide, row by row, which entry each row updates or creates, and find conflicts.

    A row without ID updates the existing entry whose first question equals its 質問,
    otherwise it is a new entry with the next free ``faq-0001``-style id. A row is a
    *conflict* (and not imported) when one of its questions — compared with
    :func:`bot.knowledge.loader.question_key` — already belongs to another FAQ: an
    existing one, or one of an earlier imported row (the first occurrence wins). A row
    without ID whose 質問 an earlier row has is a conflict too (not a second update).

    Args:
        sheet: The read table.
        old_kb: The knowledge base before the import.

    Returns:
        The plan; the caller decides whether conflicts stop the import.

    Raises:
        SheetError: A row that cannot be imported whatever is skipped (no ID and no
            質問, two rows for the same FAQ, an empty required cell of a new FAQ).
    """
    by_first_question: dict[str, FaqEntry] = {}
    owners: dict[str, dict[str, _Owner]] = {}  # question key -> entry id -> who has it
    for entry in old_kb.entries:
        by_first_question.setdefault(entry.questions[0], entry)
        for question in entry.questions:
            key = question_key(question)
            if key:  # questions of punctuation only (「？」) are not compared, as in the validator
                owners.setdefault(key, {}).setdefault(entry.id, _Owner(entry.id, question, file=entry.source))
    used_numbers = [int(m.group(1)) for faq_id in old_kb.ids + [r.id for r in sheet.rows if r.id]
                    if (m := _NEW_ID.match(faq_id))]
    next_number = max(used_numbers, default=0) + 1
    in_sheet: dict[str, _Owner] = {}  # question key -> first imported row that has it
    claimed: dict[str, int] = {}
    plan = Plan()
    for row in sheet.rows:
        old: FaqEntry | None = None
        faq_id: str | None
        if row.id is not None:
            faq_id = row.id
            old = old_kb.get(faq_id)
        else:
            if row.question is None:
                raise SheetError(sheet.path, "ID も質問も空です。",
                                 "新しい FAQ なら質問を、既存の FAQ を直すなら ID を書いてください。",
                                 row=row.row, column=sheet.label("question"))
            earlier = in_sheet.get(question_key(row.question))
            if earlier is not None:  # the same question twice in the table: a conflict, not a second update
                plan.conflicts.append(Conflict(row.row, None, row.question, sheet.label("question"),
                                               earlier.question, earlier.faq_id, other_row=earlier.row))
                continue
            old = by_first_question.get(row.question)
            faq_id = old.id if old is not None else None
        if faq_id is not None and faq_id in claimed:
            raise SheetError(sheet.path, f"{claimed[faq_id]}行目と同じ FAQ（{faq_id}）を指しています"
                                         "（ID が空の行は、質問が同じ既存の FAQ の更新になります）。",
                             "1つの FAQ は1行にまとめてください。", row=row.row, column=sheet.label("id"))
        conflicts = _conflicts(sheet, row, faq_id, old, owners)
        if conflicts:
            plan.conflicts.extend(conflicts)
            if row.id is not None:
                plan.skipped_ids[row.id] = row.row
            continue
        if faq_id is None:
            faq_id = f"{NEW_ID_PREFIX}{next_number:04d}"
            next_number += 1
        claimed[faq_id] = row.row
        new = _merged_entry(sheet, row, faq_id, old)
        for question in row.questions:
            key = question_key(question)
            if key:
                owners.setdefault(key, {}).setdefault(faq_id, _Owner(faq_id, question, row=row.row))
                in_sheet.setdefault(key, _Owner(faq_id, question, row=row.row))
        plan.targets.append(Target(row, faq_id, old, new))
    plan.warnings.extend(_warnings(plan.targets))
    return plan


def _conflicts(sheet: Sheet, row: SheetRow, faq_id: str | None, old: FaqEntry | None,
               owners: dict[str, dict[str, _Owner]]) -> list[Conflict]:
    """Questions the row would add to its entry that another FAQ already has."""
    own = {question_key(q) for q in old.questions} if old is not None else set()
    found = []
    seen: set[str] = set()
    for question in row.questions:
        key = question_key(question)
        if not key or key in own or key in seen:
            continue
        seen.add(key)
        others = [owner for owner_id, owner in (owners.get(key) or {}).items() if owner_id != faq_id]
        if others:
            other = others[0]
            column = sheet.label("question") if question == row.question else _paraphrase_label(sheet, row)
            found.append(Conflict(row.row, faq_id, question, column, other.question, other.faq_id,
                                  other_row=other.row, other_file=other.file))
    return found


def _paraphrase_label(sheet: Sheet, row: SheetRow) -> str:
    """Column of a further phrasing: 言い換え, or 質問 when the table has no 言い換え column (a multi-line 質問 cell)."""
    return sheet.label("paraphrases") if "paraphrases" in sheet.columns else sheet.label("question")


def _merged_entry(sheet: Sheet, row: SheetRow, faq_id: str, old: FaqEntry | None) -> FaqEntry:
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
    return unique(questions)


def _warnings(targets: list[Target]) -> list[str]:
    """Long titles (per row), long answers (one line for all) and numbers that name an unrelated FAQ."""
    warnings = []
    long_answers = []
    for target in targets:
        new, old, number = target.new, target.old, target.row.row
        if len(new.title) > TITLE_CHARS and (old is None or old.title != new.title):
            warnings.append(f"{number}行目（{target.faq_id}）のタイトルが {len(new.title)} 文字あります"
                            f"（ボタンに表示されるので {TITLE_CHARS} 文字以内がおすすめです）。")
        if len(new.answer) > LONG_ANSWER_CHARS and (old is None or old.answer != new.answer):
            long_answers.append((number, target.faq_id, len(new.answer)))
        if target.row.id_number is not None and old is not None and target.row.questions:
            if not {question_key(q) for q in target.row.questions} & {question_key(q) for q in old.questions}:
                warnings.append(f"{number}行目: ID 列の番号 {target.row.id_number} は既存の FAQ {target.faq_id}"
                                f"（{old.source.name}「{old.title}」）を指しますが、質問が1つも一致しません。"
                                "番号を振り直した場合は別の FAQ を上書きしています。"
                                f"違う FAQ なら ID 列を直すか空にして取り込み直してください。")
    if long_answers:
        warnings.append(long_answers_warning(long_answers))
    return warnings


def check_references(sheet: Sheet, plan: Plan, old_kb: KnowledgeBase) -> None:
    """Every 関連ID of an imported row must name an existing or imported entry.

    Raises:
        SheetError: One does not (the message says when it names a skipped row).
    """
    known = set(old_kb.ids) | {t.faq_id for t in plan.targets}
    for target in plan.targets:
        for rel in target.row.related or ():
            if rel in known:
                continue
            if rel in plan.skipped_ids:
                raise SheetError(sheet.path, f"関連ID「{rel}」の行（{plan.skipped_ids[rel]}行目）は、質問の重複で"
                                             "取り込まなかったので、関連づけられません。",
                                 f"{plan.skipped_ids[rel]}行目の質問の重複を直すか、この関連ID を消してください。",
                                 row=target.row.row, column=sheet.label("related"))
            raise SheetError(sheet.path, f"関連ID「{rel}」という FAQ はありません。",
                             "存在する ID（この表か knowledge/faq/ にあるもの）に直してください。",
                             row=target.row.row, column=sheet.label("related"))
