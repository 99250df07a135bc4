"""``bot kb import``: read a table, plan the merge, write it (all or nothing)."""

from __future__ import annotations

from pathlib import Path

from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import KnowledgeBase
from bot.knowledge.spreadsheet.common import ImportReport, SheetConflictError, SheetError
from bot.knowledge.spreadsheet.planning import check_references, plan_import
from bot.knowledge.spreadsheet.reading import load_sheet
from bot.knowledge.spreadsheet.writing import render, validate_in_copy, write_files


def import_sheet(path: Path, kb_dir: Path, encoding: str | None = None, skip_conflicts: bool = False) -> ImportReport:
    """Merge an FAQ table into a knowledge directory, all or nothing.

    Rows whose ID (or, when the ID cell is empty, whose 質問 equals the first question of an
    existing entry) matches an entry update it where the table gives a value: category,
    title, answer, related and links are replaced; questions are merged (質問 becomes the
    first question, new 言い換え are appended, existing questions are never dropped). Other
    rows become new entries in ``faq/imported.yml`` (id from the ID column — a plain number
    ``12`` gives ``faq-0012`` —, or the next free ``faq-0001``-style id). Entries the table
    does not name are left untouched. Existing files keep their comments and order
    (ruamel.yaml round trip); only files whose content changes are rewritten.

    A row with a question another FAQ already has (up to notation; an existing FAQ or an
    earlier row) is a *conflict*: by default nothing is imported and every conflict is
    listed (:class:`SheetConflictError`); with ``skip_conflicts`` such rows are skipped (the
    first occurrence is kept) and listed in :attr:`ImportReport.skipped_conflicts`.

    Answers over :data:`bot.knowledge.loader.LONG_ANSWER_CHARS` characters are imported
    with a warning; only cells over 10,000 characters are refused.

    Nothing in ``kb_dir`` changes unless the whole result is valid: the new state is
    written to a temporary copy and loaded with :func:`bot.knowledge.loader.load_knowledge`
    first; each file is then replaced atomically (temporary file + ``os.replace``).

    Args:
        path: The table (``.xlsx`` or ``.csv``).
        kb_dir: The knowledge directory (holding ``faq/``); created when it does not exist.
        encoding: CSV encoding, overriding the detection (see :func:`read_sheet`).
        skip_conflicts: Import the other rows and skip the conflicting ones, instead of
            stopping.

    Returns:
        Which entries were added, changed and unchanged, the rows skipped, and the files written.

    Raises:
        SheetConflictError: Conflicting rows and ``skip_conflicts`` is false (nothing written).
        SheetError: The table is invalid or would make the knowledge base invalid.
        KnowledgeError: The knowledge directory was already broken before the import.
    """
    path, kb_dir = Path(path), Path(kb_dir)
    sheet = load_sheet(path, encoding)
    faq_dir = kb_dir / "faq"
    if kb_dir.exists() and not kb_dir.is_dir():
        raise SheetError(kb_dir, "ナレッジフォルダとして指定された場所がファイルです。", "--kb にはフォルダを指定してください。")
    files = sorted(faq_dir.glob("*.yml")) if faq_dir.is_dir() else []
    old_kb = load_knowledge(kb_dir, resolve_facts=False) if files else KnowledgeBase(entries=())
    plan = plan_import(sheet, old_kb)
    if plan.conflicts and not skip_conflicts:
        raise SheetConflictError(path, plan.conflicts)
    check_references(sheet, plan, old_kb)

    report = ImportReport(sheet=path, kb_dir=kb_dir, skipped_empty_rows=sheet.skipped_empty_rows,
                          skipped_conflicts=list(plan.conflicts), ignored_columns=sheet.ignored_columns,
                          encoding=sheet.encoding, warnings=sheet.notes + plan.warnings)
    for target in plan.targets:
        if target.row.id is None:
            report.assigned_ids[target.row.row] = target.faq_id
        elif target.row.id_number is not None:
            report.numbered_ids[target.row.row] = target.faq_id
        if target.old is None:
            report.added.append(target.faq_id)
        elif target.old == target.new:
            report.unchanged.append(target.faq_id)
        else:
            report.changed.append(target.faq_id)
    if not report.added and not report.changed:
        return report

    texts = render(faq_dir, files, plan.targets, report)
    validate_in_copy(sheet, kb_dir, files, texts, plan.targets)
    write_files(kb_dir, texts)
    report.written = sorted(texts)
    return report
