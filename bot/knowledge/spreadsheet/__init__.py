"""Spreadsheet import/export of the FAQ (``knowledge/faq/*.yml``) for content editors.

Editors keep FAQs in Excel; this package reads such a table (``.xlsx`` or ``.csv``), merges it
into a knowledge directory and writes the knowledge base back out as a table. The guide for
editors is ``docs/importing-faq.md``.

Layers (modules), each only using the ones above it:

- :mod:`~bot.knowledge.spreadsheet.common`: constants, :class:`SheetError`, :class:`SheetRow`,
  :class:`Conflict`, :class:`ImportReport`;
- :mod:`~bot.knowledge.spreadsheet.reading`: a table into checked rows (:func:`read_sheet`);
- :mod:`~bot.knowledge.spreadsheet.planning`: which entry each row updates or creates, conflicts;
- :mod:`~bot.knowledge.spreadsheet.writing`: YAML edited with comments kept, checked, written atomically;
- :mod:`~bot.knowledge.spreadsheet.importing`: :func:`import_sheet`, the three above in order;
- :mod:`~bot.knowledge.spreadsheet.exporting`: :func:`export_sheet`.

Columns (one FAQ per row, the first non-empty row is the header; headers are matched after
NFKC, removing spaces and lower-casing, so ``ＩＤ``, ``id`` and `` ID `` are the same). Other
names of a column, by preference: when a table has two of them for one field, the first
listed is used and the other is reported as ignored (two of the same group are an error):

==========  ==============================================  ========  ==========================================
field       headers (Japanese / English, then other names)   required  content
==========  ==============================================  ========  ==========================================
id          ID / id; 管理番号; 番号, No, No.                  no        stable id (``a-z``, ``0-9``, hyphens); a
                                                                      plain number ``12`` means ``faq-0012``;
                                                                      empty: matched by 質問 or a new id
category    カテゴリ, カテゴリー / category; 大分類; 分類        yes*      category
title       タイトル / title; 件名                              no        button label; default: 質問 cut to 20 chars
question    質問 / question; 質問文; (お)問い合わせ内容;         yes*      the main customer question; several lines:
            よくある質問; Q                                              the first is the main one, the others
                                                                      paraphrases
answer      回答 / answer; 回答文; 答え; A                      yes*      the answer (over 400 characters: a warning;
                                                                      a cell holds at most 10,000)
paraphrases 言い換え, 言い換え1, 2 … / paraphrase(s)           no        more phrasings: one per line or separated
                                                                      by 「｜」/「|」; several columns allowed
related     関連ID / related                                  no        related ids, separated by commas
links       リンク / link(s)                                  no        one link per line: ``タイトル https://...``
==========  ==============================================  ========  ==========================================

(*) The columns must exist; their cells may be empty on rows that update an existing entry
(an empty cell keeps the current value). Other columns (e.g. 備考) are ignored. In an
``.xlsx`` the sheet named ``FAQ`` is read, otherwise the first sheet.

Conflicts: a question (compared with :func:`question_key`) that would belong to two FAQs
stops the import, listing every conflicting row; ``skip_conflicts=True`` (``bot kb import
--skip-conflicts``) imports the rest and skips those rows, keeping the first occurrence.

CLI wiring (``bot kb import`` / ``bot kb export`` in :mod:`bot.cli`)::

    # bot kb import FILE [--encoding ENC] [--kb DIR] [--skip-conflicts]
    kb_dir = Path(args.kb) if args.kb else get_settings().knowledge_dir
    report = import_sheet(Path(args.file), kb_dir, encoding=args.encoding, skip_conflicts=args.skip_conflicts)
    print(report.summary())
    return 0

    # bot kb export FILE [--encoding ENC] [--kb DIR]    (ENC only matters for .csv)
    count = export_sheet(kb_dir, Path(args.file), encoding=args.encoding)
    print(f"{count} 件の FAQ を {args.file} に書き出しました。")
    return 0

Security (issue #11): exported cells that a spreadsheet would run as a formula (``= + - @``,
tab, carriage return, full-width ``＝ ＋ － ＠``) get a leading ``'``, which the import removes
again (:func:`~bot.knowledge.spreadsheet.common.defuse_formula`); an imported table is limited
to :data:`~bot.knowledge.spreadsheet.common.MAX_SHEET_BYTES` (20 MB) and
:data:`~bot.knowledge.spreadsheet.common.MAX_SHEET_ROWS` (20,000 FAQ rows), an .xlsx also in
what it unpacks to (zip bombs), and its XML is parsed with defusedxml (no entity expansion).

Both raise :class:`SheetError` (bad table, with file, row, column and fix; its subclass
:class:`SheetConflictError` lists conflicts) or :class:`bot.errors.KnowledgeError` (the
knowledge directory itself is broken); all are ``ValueError`` subclasses, which
:func:`bot.cli.main` already prints as ``エラー: ...``.
"""

from __future__ import annotations

from bot.knowledge.loader import question_key
from bot.knowledge.spreadsheet.common import Conflict, ImportReport, SheetConflictError, SheetError, SheetRow
from bot.knowledge.spreadsheet.exporting import export_sheet
from bot.knowledge.spreadsheet.importing import import_sheet
from bot.knowledge.spreadsheet.reading import read_sheet

__all__ = ["Conflict", "ImportReport", "SheetConflictError", "SheetError", "SheetRow", "export_sheet", "import_sheet",
           "question_key", "read_sheet"]
