"""Spreadsheet import/export of the FAQ: column mapping, merge, encodings, atomicity and editor-facing errors.

Every table is generated in ``tmp_path`` (openpyxl for .xlsx; csv in UTF-8, UTF-8 with BOM and CP932).
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any, Sequence

import openpyxl
import pytest

from bot.errors import KnowledgeError
from bot.knowledge import spreadsheet
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import Link
from bot.knowledge.spreadsheet import SheetError, SheetRow, export_sheet, import_sheet, read_sheet
from bot.settings import PROJECT_ROOT

HEADER = ["ID", "カテゴリ", "タイトル", "質問", "回答", "言い換え", "関連ID", "リンク"]

REGISTRATION = """\
# テスト用の FAQ: 登録情報の変更。
# このコメントは取り込みのあとも残らなければなりません。
entries:
  - id: change-address
    category: 登録情報の変更
    title: 住所を変更したい
    questions:
      - 住所を変更したいです
      - 引っ越したので住所を変えたい  # 口語の言い方
      - 住所変更
    answer: |-
      ご登録の住所は、マイページから変更いただけます。
      1. マイページにログインします。
      2. 「会員情報」→「住所変更」を選びます。
    links:
      - title: マイページ
        url: https://members.example/mypage
    related: [change-phone]

  # 電話番号はSMS確認があるので別のエントリ
  - id: change-phone
    category: 登録情報の変更
    title: 電話番号を変更したい
    questions:
      - 電話番号を変更したいです
      - 電話番号変更
    answer: マイページの「会員情報」から電話番号を変更いただけます。
"""

SERVICE = """\
# テスト用の FAQ: サービスについて。
entries:
  - id: hours
    category: サービスについて
    title: 営業時間
    questions:
      - 営業時間を教えてください
      - 何時まで開いていますか
    answer: 平日 9:00〜18:00 です。
  - id: faq-0003
    category: サービスについて
    title: 料金
    questions:
      - 料金はいくらですか
    answer: 月額 1,980 円です。
"""


# --------------------------------------------------------------------------- helpers


def write_xlsx(path: Path, rows: Sequence[Sequence[Any]], title: str = "Sheet1") -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(list(row))
    book.save(path)
    return path


def write_csv(path: Path, rows: Sequence[Sequence[Any]], encoding: str = "utf-8-sig") -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def row(faq_id: str = "", category: str = "", title: str = "", question: str = "", answer: str = "",
        paraphrases: str = "", related: str = "", links: str = "") -> list[str]:
    return [faq_id, category, title, question, answer, paraphrases, related, links]


def new_row(question: str = "ポイントの有効期限は？", **kwargs: str) -> list[str]:
    values = {"category": "ポイント", "question": question, "answer": "ポイントの有効期限は獲得から1年です。"}
    values.update(kwargs)
    return row(**values)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes); missing directory -> {}."""
    if not directory.exists():
        return {}
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture()
def kb(tmp_path: Path) -> Path:
    """A small knowledge directory with comments, in two files."""
    directory = tmp_path / "knowledge"
    (directory / "faq").mkdir(parents=True)
    (directory / "faq" / "registration.yml").write_text(REGISTRATION, encoding="utf-8")
    (directory / "faq" / "service.yml").write_text(SERVICE, encoding="utf-8")
    load_knowledge(directory)  # the fixture itself must be valid
    return directory


@pytest.fixture()
def real_kb(tmp_path: Path) -> Path:
    """A copy of the project's knowledge/faq (the real files, with their comments)."""
    directory = tmp_path / "real"
    shutil.copytree(PROJECT_ROOT / "knowledge" / "faq", directory / "faq")
    return directory


def entries_without_source(directory: Path) -> list[tuple[Any, ...]]:
    return [(e.id, e.category, e.title, e.questions, e.answer, e.links, e.related)
            for e in load_knowledge(directory).entries]


# --------------------------------------------------------------------------- column mapping


@pytest.mark.parametrize("headers", [
    HEADER,
    ["id", "category", "title", "question", "answer", "paraphrases", "related", "links"],
    ["ID", "Category", "TITLE", "Question", "Answer", "Paraphrase", "Related", "Link"],
    ["ＩＤ", " カテゴリー ", "タイトル", "質 問", "回答\n", "言い換え１", "関連 ID", "リンク"],
])
def test_headers_are_matched_in_japanese_and_english(tmp_path: Path, headers: list[str]) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        headers,
        row("point-expiry", "ポイント", "ポイントの期限", "ポイントの有効期限は？", "1年です。", "ポイントいつまで",
            "change-phone", "ポイント https://example.com/points"),
    ])
    [parsed] = read_sheet(path)
    assert parsed == SheetRow(row=2, id="point-expiry", category="ポイント", title="ポイントの期限",
                              question="ポイントの有効期限は？", answer="1年です。", paraphrases=("ポイントいつまで",),
                              related=("change-phone",), links=(Link("ポイント", "https://example.com/points"),))


def test_columns_in_any_order_and_unknown_columns_ignored(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        ["備考", "回答", "質問", "カテゴリ"],
        ["社内メモ", "1年です。", "ポイントの有効期限は？", "ポイント"],
    ])
    [parsed] = read_sheet(path)
    assert (parsed.category, parsed.question, parsed.answer, parsed.id) == ("ポイント", "ポイントの有効期限は？", "1年です。", None)
    report = import_sheet(path, kb)
    assert report.ignored_columns == ["備考"]
    assert "備考" in report.summary()


@pytest.mark.parametrize(("cell", "expected"), [
    ("ポイントいつまで\nポイント期限", ("ポイントいつまで", "ポイント期限")),
    ("ポイントいつまで｜ポイント期限", ("ポイントいつまで", "ポイント期限")),
    ("ポイントいつまで|ポイント期限", ("ポイントいつまで", "ポイント期限")),
    ("ポイントいつまで\r\nポイント期限\r\n", ("ポイントいつまで", "ポイント期限")),
    (" ポイントいつまで ｜ ポイント期限 \n\n  失効する？ ", ("ポイントいつまで", "ポイント期限", "失効する？")),
    ("ポイントいつまで\nポイントいつまで", ("ポイントいつまで",)),
    ("ポイントの有効期限は？\n期限", ("期限",)),  # the main question is not repeated as a paraphrase
    ("", ()),
])
def test_paraphrase_splitting(tmp_path: Path, cell: str, expected: tuple[str, ...]) -> None:
    [parsed] = read_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(paraphrases=cell)]))
    assert parsed.paraphrases == expected


def test_several_paraphrase_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "faq.csv", [
        ["カテゴリ", "質問", "回答", "言い換え1", "言い換え2", "言い換え3"],
        ["ポイント", "ポイントの有効期限は？", "1年です。", "ポイントいつまで", "期限切れ｜失効", ""],
    ])
    [parsed] = read_sheet(path)
    assert parsed.questions == ("ポイントの有効期限は？", "ポイントいつまで", "期限切れ", "失効")


def test_main_question_cell_with_several_phrasings(tmp_path: Path) -> None:
    [parsed] = read_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(question="期限は？\nいつまで？")]))
    assert (parsed.question, parsed.paraphrases) == ("期限は？", ("いつまで？",))


@pytest.mark.parametrize(("cell", "expected"), [
    ("マイページ https://members.example/mypage", (Link("マイページ", "https://members.example/mypage"),)),
    ("マイページ：https://members.example/mypage", (Link("マイページ", "https://members.example/mypage"),)),
    ("マイページ　https://a.example/\nよくある質問 ページ http://b.example/faq?x=1",
     (Link("マイページ", "https://a.example/"), Link("よくある質問 ページ", "http://b.example/faq?x=1"))),
    ("マイページ HTTPS://a.example/", (Link("マイページ", "https://a.example/"),)),
])
def test_links_cell(tmp_path: Path, cell: str, expected: tuple[Link, ...]) -> None:
    [parsed] = read_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(links=cell)]))
    assert parsed.links == expected


@pytest.mark.parametrize(("cell", "expected"), [
    ("change-phone", ("change-phone",)),
    ("change-phone, hours", ("change-phone", "hours")),
    ("change-phone、hours，faq-0003", ("change-phone", "hours", "faq-0003")),
    ("change-phone\nhours  hours", ("change-phone", "hours")),
])
def test_related_cell(tmp_path: Path, cell: str, expected: tuple[str, ...]) -> None:
    [parsed] = read_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(related=cell)]))
    assert parsed.related == expected


def test_cell_values_that_are_not_text(tmp_path: Path) -> None:
    [parsed] = read_sheet(write_xlsx(tmp_path / "faq.xlsx", [
        ["カテゴリ", "質問", "回答", "言い換え"],
        ["数字", 100, 1980.0, 3.5],
    ]))
    assert (parsed.question, parsed.answer, parsed.paraphrases) == ("100", "1980", ("3.5",))


def test_xlsx_reads_the_sheet_named_faq(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "説明"
    book.active.append(["このブックの使い方"])
    faq = book.create_sheet("FAQ")
    faq.append(HEADER)
    faq.append(new_row())
    book.save(tmp_path / "faq.xlsx")
    [parsed] = read_sheet(tmp_path / "faq.xlsx")
    assert parsed.question == "ポイントの有効期限は？"


def test_empty_rows_are_skipped_and_counted(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER,
        new_row(),
        row(),
        ["", "  ", "", "", "", "", "", ""],
        new_row(question="ポイントは譲れますか", answer="譲渡はできません。"),
        row(),
        row(),  # trailing empty rows are not counted
    ])
    parsed = read_sheet(path)
    assert [r.row for r in parsed] == [2, 5]
    report = import_sheet(path, kb)
    assert report.skipped_empty_rows == 2
    assert report.added == ["faq-0004", "faq-0005"]
    assert "空の行を 2 行読み飛ばしました" in report.summary()


def test_header_may_follow_empty_rows_and_row_numbers_stay_excel_numbers(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [row(), HEADER, new_row(faq_id="Bad_Id")])
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    assert info.value.row == 3
    assert "3行目" in str(info.value) and "A列「ID」" in str(info.value)


# --------------------------------------------------------------------------- merge


def test_merge_reports_added_changed_unchanged(tmp_path: Path, kb: Path) -> None:
    before_service = (kb / "faq" / "service.yml").read_bytes()
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER,
        # changed: new answer; other cells empty -> kept
        row("change-address", answer="住所はマイページの「会員情報」から変更できます。"),
        # unchanged: same values as the file
        row("change-phone", "登録情報の変更", "電話番号を変更したい", "電話番号を変更したいです",
            "マイページの「会員情報」から電話番号を変更いただけます。", "電話番号変更"),
        # added, without id
        new_row(related="change-address", links="ポイント https://example.com/points"),
        # no id, but the same 質問 as an existing entry's first question -> that entry, a new phrasing added
        row(question="営業時間を教えてください", paraphrases="何時から何時まで"),
    ])
    report = import_sheet(path, kb)
    assert report.added == ["faq-0004"]
    assert report.changed == ["change-address", "hours"]
    assert report.unchanged == ["change-phone"]
    assert report.assigned_ids == {4: "faq-0004", 5: "hours"}
    assert report.written == [kb / "faq" / "imported.yml", kb / "faq" / "registration.yml", kb / "faq" / "service.yml"]

    loaded = load_knowledge(kb)
    address = loaded.get("change-address")
    assert address.answer == "住所はマイページの「会員情報」から変更できます。"
    assert address.questions == ("住所を変更したいです", "引っ越したので住所を変えたい", "住所変更")
    assert address.links == (Link("マイページ", "https://members.example/mypage"),)
    assert address.related == ("change-phone",)
    assert loaded.get("hours").questions == ("営業時間を教えてください", "何時まで開いていますか", "何時から何時まで")
    new = loaded.get("faq-0004")
    assert (new.category, new.title, new.questions, new.related, new.source.name) == (
        "ポイント", "ポイントの有効期限は？", ("ポイントの有効期限は？",), ("change-address",), "imported.yml")
    assert loaded.get("faq-0003").answer == "月額 1,980 円です。"  # not in the sheet: untouched
    assert loaded.ids[:2] == ["faq-0004", "change-address"]  # files load in name order
    assert before_service != (kb / "faq" / "service.yml").read_bytes()
    assert "追加 1 件、変更 2 件、変更なし 1 件" in report.summary()


def test_questions_are_merged_never_dropped(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER,
        row("change-address", question="住所変更", paraphrases="転居しました\n住所を変更したいです"),
    ])
    import_sheet(path, kb)
    # 質問 becomes the first question; existing ones stay in their order; new ones are appended.
    assert load_knowledge(kb).get("change-address").questions == (
        "住所変更", "住所を変更したいです", "引っ越したので住所を変えたい", "転居しました")
    text = (kb / "faq" / "registration.yml").read_text(encoding="utf-8")
    assert "      - 引っ越したので住所を変えたい  # 口語の言い方\n" in text


def test_related_and_links_replaced_only_when_given(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER,
        row("change-address", related="hours, change-phone", links="会員情報 https://members.example/info"),
        row("change-phone", related="change-address", links="マイページ https://members.example/mypage"),
    ])
    report = import_sheet(path, kb)
    assert report.changed == ["change-address", "change-phone"]
    loaded = load_knowledge(kb)
    assert loaded.get("change-address").related == ("hours", "change-phone")
    assert loaded.get("change-address").links == (Link("会員情報", "https://members.example/info"),)
    assert loaded.get("change-phone").related == ("change-address",)
    text = (kb / "faq" / "registration.yml").read_text(encoding="utf-8")
    # change-phone had neither key: they are added after answer, in the usual order and style
    assert text.endswith("    answer: マイページの「会員情報」から電話番号を変更いただけます。\n"
                         "    links:\n      - title: マイページ\n        url: https://members.example/mypage\n"
                         "    related: [change-address]\n")


def test_comments_and_layout_of_existing_files_are_kept(tmp_path: Path, kb: Path) -> None:
    before = (kb / "faq" / "registration.yml").read_text(encoding="utf-8")
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER,
        row("change-address", answer="住所はマイページから変更できます。\n1. ログインします。", paraphrases="転居しました"),
    ])
    import_sheet(path, kb)
    after = (kb / "faq" / "registration.yml").read_text(encoding="utf-8")
    diff = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert diff == [
        "+      - 転居しました",
        "-      ご登録の住所は、マイページから変更いただけます。",
        "-      1. マイページにログインします。",
        "-      2. 「会員情報」→「住所変更」を選びます。",
        "+      住所はマイページから変更できます。",
        "+      1. ログインします。",
    ]
    for comment in ("# テスト用の FAQ: 登録情報の変更。", "# 口語の言い方", "  # 電話番号はSMS確認があるので別のエントリ"):
        assert comment in after


def test_real_knowledge_files_keep_comments(tmp_path: Path, real_kb: Path) -> None:
    """A change to one real entry leaves every other line of the real file as it was."""
    before = {p.name: p.read_text(encoding="utf-8") for p in (real_kb / "faq").glob("*.yml")}
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, row("change-address", paraphrases="住所を新しくしたい")])
    report = import_sheet(path, real_kb)
    assert report.changed == ["change-address"]
    after = {p.name: p.read_text(encoding="utf-8") for p in (real_kb / "faq").glob("*.yml")}
    for name in before:
        if name != "registration.yml":
            assert after[name] == before[name]
    added = [line for line in difflib.ndiff(before["registration.yml"].splitlines(),
                                            after["registration.yml"].splitlines()) if line[:2] in ("+ ", "- ")]
    assert added == ["+       - 住所を新しくしたい"]
    assert after["registration.yml"].startswith("# FAQ: 登録情報の変更 (registration / account changes)")


OTHER_LAYOUT = """\
# インデントの違う手書きのファイル
entries:
- id: other-layout
  category: その他
  title: 別の書き方
  questions:
  - 別の書き方の質問です
  answer: 回答です。
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_other_indentation_and_line_endings_are_kept(tmp_path: Path, kb: Path, newline: str) -> None:
    path = kb / "faq" / "other.yml"
    path.write_bytes(OTHER_LAYOUT.replace("\n", newline).encode("utf-8"))
    report = import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, row("other-layout", paraphrases="言い換えです")]), kb)
    assert report.changed == ["other-layout"] and report.warnings == []
    expected = OTHER_LAYOUT.replace("  - 別の書き方の質問です\n", "  - 別の書き方の質問です\n  - 言い換えです\n")
    assert path.read_bytes() == expected.replace("\n", newline).encode("utf-8")


def test_layout_that_cannot_be_kept_is_a_warning(tmp_path: Path, kb: Path) -> None:
    path = kb / "faq" / "other.yml"
    path.write_text(OTHER_LAYOUT.replace("title: 別の書き方", "title:    別の書き方"), encoding="utf-8")
    report = import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, row("other-layout", answer="新しい回答です。")]), kb)
    assert report.changed == ["other-layout"]
    assert report.warnings == ["other.yml はコメントと順番は残りますが、インデントの書き方が整え直されました。"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# インデントの違う手書きのファイル\n") and "answer: 新しい回答です。" in text


def test_key_written_twice_is_reported_not_rewritten(tmp_path: Path, kb: Path) -> None:
    """PyYAML (the loader) lets the second `title:` win; the editing parser refuses to guess."""
    path = kb / "faq" / "other.yml"
    path.write_text(OTHER_LAYOUT.replace("  title: 別の書き方\n", "  title: 別の書き方\n  title: 二つ目\n"), encoding="utf-8")
    state = snapshot(kb)
    with pytest.raises(KnowledgeError, match="other.yml.*同じ項目が2回"):
        import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, row("other-layout", answer="新しい回答です。")]), kb)
    assert snapshot(kb) == state


def test_reimporting_the_same_sheet_is_idempotent(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(), new_row(question="ポイントは譲れますか")])
    first = import_sheet(path, kb)
    assert first.added == ["faq-0004", "faq-0005"]
    state = snapshot(kb)
    second = import_sheet(path, kb)
    # Rows without ID find their entries again by 質問 (no duplicates).
    assert (second.added, second.changed, second.unchanged) == ([], [], ["faq-0004", "faq-0005"])
    assert second.written == []
    assert snapshot(kb) == state
    assert "knowledge のファイルは変わっていません" in second.summary()


def test_new_entries_are_appended_to_an_existing_imported_file(tmp_path: Path, kb: Path) -> None:
    import_sheet(write_xlsx(tmp_path / "a.xlsx", [HEADER, new_row()]), kb)
    report = import_sheet(write_xlsx(tmp_path / "b.xlsx", [HEADER, new_row(question="ポイントは譲れますか")]), kb)
    assert report.added == ["faq-0005"]
    text = (kb / "faq" / "imported.yml").read_text(encoding="utf-8")
    assert text.startswith("# FAQ: 表計算ソフト（Excel / CSV）から `bot kb import` で取り込んだエントリ。")
    assert "\n\n  - id: faq-0005\n" in text
    assert [e.id for e in load_knowledge(kb).entries if e.source.name == "imported.yml"] == ["faq-0004", "faq-0005"]


def test_new_ids_continue_after_the_highest_and_keep_given_ids(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER, new_row(faq_id="faq-0010"), new_row(question="ポイントは譲れますか"),
        new_row(faq_id="point-transfer", question="ポイントを家族に送りたい"),
    ])
    report = import_sheet(path, kb)
    assert report.added == ["faq-0010", "faq-0011", "point-transfer"]
    assert report.assigned_ids == {3: "faq-0011"}


def test_default_title_is_the_question_cut_to_20_characters(tmp_path: Path, kb: Path) -> None:
    question = "引っ越しの予定があるのですが、ポイントは新しい住所でもそのまま使えますか"
    import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(question=question)]), kb)
    assert load_knowledge(kb).get("faq-0004").title == question[:20]


def test_long_title_is_a_warning(tmp_path: Path, kb: Path) -> None:
    report = import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(title="と" * 25)]), kb)
    assert report.added == ["faq-0004"]
    assert any("25 文字" in warning for warning in report.warnings)


def test_import_creates_a_fresh_kb_directory(tmp_path: Path) -> None:
    target = tmp_path / "別のフォルダ"
    report = import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row()]), target)
    assert report.added == ["faq-0001"]
    assert report.written == [target / "faq" / "imported.yml"]
    assert load_knowledge(target).ids == ["faq-0001"]
    assert [p.name for p in (target / "faq").iterdir()] == ["imported.yml"]  # no temporary files left


@pytest.mark.parametrize("text", ["yes", "No", "on", "off", "y", "1:20", "0777", "0x1F", "~", "null", "2024-01-01",
                                  "- 箇条書き", "key: value", "#ハッシュタグ", "'引用'", "\"二重\"", "@メンション", "1,980円",
                                  "  前後の空白  ", "タブ\t区切り", "！？", "&アンド", "*星", "[角括弧]", "{波括弧}", "%25"])
def test_tricky_strings_survive_yaml(tmp_path: Path, text: str) -> None:
    """ruamel writes YAML 1.2, the loader reads YAML 1.1: values must come back as the same strings."""
    target = tmp_path / "kb"
    path = write_csv(tmp_path / "faq.csv", [HEADER, row(category=text, title=text, question=text, answer=text)])
    import_sheet(path, target)
    entry = load_knowledge(target).entries[0]
    one_line = " ".join(text.split())  # category and title are single-line fields
    assert (entry.category, entry.title) == (one_line, one_line)
    assert (entry.questions, entry.answer) == ((text.strip(),), text.strip())


def test_multi_line_answer_is_written_as_a_block(tmp_path: Path) -> None:
    target = tmp_path / "kb"
    answer = "ご登録の住所は、マイページから変更いただけます。\n1. ログインします。\n  2. インデントした行\n\n※ 空行のあと"
    import_sheet(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(answer=answer)]), target)
    assert load_knowledge(target).entries[0].answer == answer
    assert "    answer: |" in (target / "faq" / "imported.yml").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- export and round trip


@pytest.mark.parametrize(("name", "encoding"), [("faq.xlsx", None), ("faq.csv", None), ("faq.csv", "utf-8")])
def test_round_trip_of_the_real_knowledge_base(tmp_path: Path, name: str, encoding: str | None) -> None:
    source = PROJECT_ROOT / "knowledge"
    count = export_sheet(source, tmp_path / name, encoding=encoding)
    assert count == len(load_knowledge(source).entries)
    report = import_sheet(tmp_path / name, tmp_path / "fresh")
    assert len(report.added) == count
    assert entries_without_source(tmp_path / "fresh") == entries_without_source(source)


def test_round_trip_in_cp932_with_tricky_values(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    rows = [HEADER,
            row("tricky", "特殊な値", "①～③の確認", "=1+1 は？", "1行目\n2行目　全角空白\n\n※①～③ ９：００～",
                "yes\nno\n0777\n- ダッシュ\n髙橋です", "other",
                "マイページ ログイン https://members.example/login?next=/a&b=1\nFAQ http://faq.example/"),
            row("other", "その他", "", "ほかの質問", "ほかの回答", "", "tricky")]
    import_sheet(write_csv(tmp_path / "in.csv", rows), kb)  # csv: "=1+1" stays text
    for name, encoding in (("out.csv", "cp932"), ("out.xlsx", None), ("out2.csv", "shift_jis")):
        export_sheet(kb, tmp_path / name, encoding=encoding)
        import_sheet(tmp_path / name, tmp_path / name.replace(".", "_"))
        assert entries_without_source(tmp_path / name.replace(".", "_")) == entries_without_source(kb)
    raw = (tmp_path / "out.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert "①～③".encode("cp932") in raw


def test_export_then_import_into_the_same_directory_changes_nothing(tmp_path: Path, real_kb: Path) -> None:
    state = snapshot(real_kb)
    export_sheet(real_kb, tmp_path / "faq.xlsx")
    report = import_sheet(tmp_path / "faq.xlsx", real_kb)
    assert report.added == report.changed == []
    assert len(report.unchanged) == len(load_knowledge(real_kb).entries)
    assert snapshot(real_kb) == state


def test_export_formats(tmp_path: Path, kb: Path) -> None:
    assert export_sheet(kb, tmp_path / "faq.csv") == 4
    raw = (tmp_path / "faq.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8 correctly
    records = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert records[0] == HEADER
    assert records[1] == ["change-address", "登録情報の変更", "住所を変更したい", "住所を変更したいです",
                          "ご登録の住所は、マイページから変更いただけます。\n1. マイページにログインします。\n"
                          "2. 「会員情報」→「住所変更」を選びます。", "引っ越したので住所を変えたい\n住所変更", "change-phone",
                          "マイページ https://members.example/mypage"]
    export_sheet(kb, tmp_path / "faq.xlsx")
    book = openpyxl.load_workbook(tmp_path / "faq.xlsx")
    assert book.sheetnames == ["FAQ"]
    assert [c.value for c in book["FAQ"][1]] == HEADER
    assert book["FAQ"]["A2"].value == "change-address"


def test_export_keeps_leading_equals_as_text(tmp_path: Path) -> None:
    target = tmp_path / "kb"
    import_sheet(write_csv(tmp_path / "in.csv", [HEADER, new_row(question="=SUM(A1:A3) ってなに")]), target)
    export_sheet(target, tmp_path / "out.xlsx")
    cell = openpyxl.load_workbook(tmp_path / "out.xlsx")["FAQ"]["D2"]
    assert (cell.value, cell.data_type) == ("=SUM(A1:A3) ってなに", "s")
    assert read_sheet(tmp_path / "out.xlsx")[0].question == "=SUM(A1:A3) ってなに"


def test_export_errors(tmp_path: Path, kb: Path) -> None:
    with pytest.raises(SheetError, match="書き出せません"):
        export_sheet(kb, tmp_path / "faq.txt")
    with pytest.raises(SheetError, match="フォルダ .* がありません"):
        export_sheet(kb, tmp_path / "nope" / "faq.xlsx")
    with pytest.raises(SheetError, match=r"「☕」は文字コード cp932 で書けません（FAQ: feedback）"):
        export_sheet(PROJECT_ROOT / "knowledge", tmp_path / "faq.csv", encoding="cp932")
    # CP932 would turn the wave dash 〜 (U+301C) into ～ (U+FF5E): the answer would change on re-import.
    with pytest.raises(SheetError, match=r"「〜」\(U\+301C\) は文字コード cp932 では「～」\(U\+FF5E\) に変わってしまいます（FAQ: hours）"):
        export_sheet(kb, tmp_path / "faq.csv", encoding="cp932")
    assert not (tmp_path / "faq.csv").exists()
    assert list(tmp_path.glob(".*")) == []  # no temporary file left behind


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(("encoding", "detected"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8"), ("cp932", "cp932")])
def test_csv_encodings_are_detected(tmp_path: Path, kb: Path, encoding: str, detected: str) -> None:
    question = "①ポイント～髙島屋でも使える？"  # CP932-only characters (not in strict Shift_JIS)
    path = write_csv(tmp_path / "faq.csv", [HEADER, new_row(question=question)], encoding=encoding)
    assert read_sheet(path)[0].question == question
    report = import_sheet(path, kb)
    assert report.encoding == detected
    assert load_knowledge(kb).get("faq-0004").questions == (question,)


@pytest.mark.parametrize("name", ["cp932", "shift_jis", "Shift-JIS", "sjis", "windows-31j", "CP932"])
def test_encoding_option_names_for_shift_jis(tmp_path: Path, name: str) -> None:
    path = write_csv(tmp_path / "faq.csv", [HEADER, new_row(question="①の質問～")], encoding="cp932")
    assert read_sheet(path, encoding=name)[0].question == "①の質問～"


def test_encoding_option_overrides_detection(tmp_path: Path, kb: Path) -> None:
    path = write_csv(tmp_path / "faq.csv", [HEADER, new_row()], encoding="euc_jp")
    # Auto detection cannot read EUC-JP (it is neither valid UTF-8 nor valid CP932 here, or it is garbled).
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    assert "--encoding" in str(info.value)
    report = import_sheet(path, kb, encoding="euc-jp")
    assert report.added == ["faq-0004"]
    assert report.encoding == "euc_jp"


def test_wrong_encoding_option_is_a_clear_error(tmp_path: Path, kb: Path) -> None:
    state = snapshot(kb)
    path = write_csv(tmp_path / "faq.csv", [HEADER, new_row()], encoding="cp932")
    with pytest.raises(SheetError, match="指定された文字コード utf-8 では読めません"):
        import_sheet(path, kb, encoding="utf-8")
    with pytest.raises(SheetError, match="文字コード「klingon」を知りません"):
        import_sheet(path, kb, encoding="klingon")
    assert snapshot(kb) == state


def test_undecodable_csv(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes("カテゴリ,質問,回答\n".encode() + b"\x82\xa0\xff\xfe\xfd\n")
    with pytest.raises(SheetError, match="文字コードを判定できません.*2 行目付近"):
        read_sheet(path)


def test_utf16_csv_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes("カテゴリ\t質問\t回答\n".encode("utf-16"))
    with pytest.raises(SheetError, match="CSV UTF-8"):
        read_sheet(path)


# --------------------------------------------------------------------------- formulas


def _set_cached_value(path: Path, cell: str, xml: str) -> None:
    """Give a formula cell written by openpyxl the cached value Excel would have saved."""
    with zipfile.ZipFile(path) as source:
        items = {name: source.read(name) for name in source.namelist()}
    sheet = items["xl/worksheets/sheet1.xml"].decode()
    sheet, count = re.subn(rf'<c r="{cell}"><f>(.*?)</f><v\s*/>', lambda m: xml.format(formula=m.group(1)), sheet)
    assert count == 1
    items["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in items.items():
            target.writestr(name, data)


def test_formula_without_cached_value_is_an_error(tmp_path: Path, kb: Path) -> None:
    state = snapshot(kb)
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(answer='=CONCAT("ポイントは", "1年です")')])
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    message = str(info.value)
    assert "2行目・E列「回答」" in message and "計算結果がファイルに保存されていません" in message
    assert "値として貼り付け" in message
    assert snapshot(kb) == state


def test_formula_with_cached_value_gives_the_value(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(answer='=CONCAT("ポイントは", "1年です")')])
    _set_cached_value(path, "E2", '<c r="E2" t="str"><f>{formula}</f><v>ポイントは1年です</v>')
    assert read_sheet(path)[0].answer == "ポイントは1年です"


def test_formula_with_an_error_value(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(answer="=1/0")])
    _set_cached_value(path, "E2", '<c r="E2" t="e"><f>{formula}</f><v>#DIV/0!</v>')
    with pytest.raises(SheetError, match=r"2行目・E列「回答」.*エラー #DIV/0!"):
        read_sheet(path)


def test_plain_value_cells_are_fine(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row(answer="1年です（=数式ではありません）")])
    assert read_sheet(path)[0].answer == "1年です（=数式ではありません）"


# --------------------------------------------------------------------------- bad input: nothing changes


def _xlsx_with(tmp_path: Path, *rows: list[str]) -> Path:
    return write_xlsx(tmp_path / "faq.xlsx", [HEADER, *rows])


BAD_ROWS = [
    # (rows, where, problem)
    ([new_row(faq_id="Change_Address")], ("2行目", "A列「ID」"), "ID「Change_Address」は使えない形です"),
    ([new_row(faq_id="住所変更")], ("2行目", "A列「ID」"), "使えない形"),
    ([new_row(faq_id="a--b")], ("2行目", "A列「ID」"), "使えない形"),
    ([new_row(faq_id="p-1"), new_row(faq_id="p-2"), new_row(faq_id="p-1", question="別")],
     ("4行目", "A列「ID」"), "ID「p-1」が 2行目と 4行目の2回出てきます"),
    ([new_row(answer="あ" * 401)], ("2行目", "E列「回答」"), "回答が 401 文字あります（上限 400 文字）"),
    ([new_row(paraphrases="あ" * 10_001)], ("2行目", "F列「言い換え」"), "セルが 10,001 文字あります"),
    ([new_row(links="マイページ ftp://example.com/file")], ("2行目", "H列「リンク」"), "http(s) ではありません"),
    ([new_row(links="マイページ")], ("2行目", "H列「リンク」"), "URL がありません"),
    ([new_row(links="https://example.com/")], ("2行目", "H列「リンク」"), "タイトルがありません"),
    ([new_row(links="マイページ https://example.com/ です")], ("2行目", "H列「リンク」"), "URL のあとに文字"),
    ([new_row(related="change_phone")], ("2行目", "G列「関連ID」"), "ID の形ではありません"),
    ([new_row(related="no-such-entry")], ("2行目", "G列「関連ID」"), "関連ID「no-such-entry」という FAQ はありません"),
    ([new_row(answer="")], ("2行目", "E列「回答」"), "新しい FAQ（faq-0004）なのに「回答」が空です"),
    ([new_row(category="")], ("2行目", "B列「カテゴリ」"), "「カテゴリ」が空です"),
    ([new_row(faq_id="brand-new", question="")], ("2行目", "D列「質問」"), "「質問」が空です"),
    ([row(answer="回答だけ")], ("2行目", "D列「質問」"), "ID も質問も空です"),
    ([new_row(), new_row()], ("3行目", "D列「質問」"), "2行目にもあります"),
    ([row("hours", answer="x"), row(question="営業時間を教えてください", answer="y")],
     ("3行目", "A列「ID」"), "2行目と同じ FAQ（hours）"),
    # the same question (up to width/punctuation) as another entry: `bot kb validate` would reject it
    ([new_row(paraphrases="ﾃﾞﾝﾜ番号変更！")], None, None),
    ([new_row(paraphrases="電話番号変更！")], ("2行目", "F列「言い換え」"), "別の FAQ（change-phone）の質問例と同じ"),
    ([row("hours", paraphrases="料金はいくらですか？")], ("2行目", "F列「言い換え」"), "faq-0003"),
    ([new_row(question="住所変更")], ("2行目", "D列「質問」"), "change-address"),
]


@pytest.mark.parametrize(("rows", "where", "problem"), BAD_ROWS)
def test_bad_rows_name_row_and_column_and_change_nothing(tmp_path: Path, kb: Path, rows: list[list[str]],
                                                         where: tuple[str, str] | None, problem: str | None) -> None:
    state = snapshot(kb)
    path = _xlsx_with(tmp_path, *rows)
    if where is None:  # control case: a different phrasing is fine
        import_sheet(path, kb)
        return
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    message = str(info.value)
    assert f"{where[0]}・{where[1]}" in message, message
    assert problem in message, message
    assert " 対処: " in message and str(path) in message
    assert snapshot(kb) == state


def test_cell_over_10000_characters_in_csv(tmp_path: Path) -> None:
    for size in (10_001, 200_000):  # the second is also over the csv module's own field limit
        path = write_csv(tmp_path / "faq.csv", [HEADER, new_row(), new_row(question="別の質問", paraphrases="あ" * size)])
        with pytest.raises(SheetError, match="3行目") as info:
            read_sheet(path)
        assert "10,000 文字" in str(info.value)


def test_cell_of_exactly_10000_characters_is_fine(tmp_path: Path) -> None:
    [parsed] = read_sheet(_xlsx_with(tmp_path, new_row(paraphrases="あ" * 10_000)))
    assert parsed.paraphrases == ("あ" * 10_000,)


def test_missing_required_columns_are_listed(tmp_path: Path, kb: Path) -> None:
    state = snapshot(kb)
    path = write_csv(tmp_path / "faq.csv", [["ID", "質問", "備考"], ["x", "質問", ""]])
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    message = str(info.value)
    assert "必要な列 「カテゴリ」・「回答」 がありません" in message
    assert "1行目" in message and "見つかった見出し: ID, 質問, 備考" in message
    assert "今回の判定: utf-8" in message
    assert snapshot(kb) == state


def test_duplicate_column_header(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [["カテゴリ", "質問", "回答", "answer"], ["a", "b", "c", "d"]])
    with pytest.raises(SheetError, match="「回答」の列が C列「回答」とD列「answer」の2つあります"):
        read_sheet(path)


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("faq.xlsx", b"this is not a zip file", "Excel ブック（.xlsx）ではありません"),
    ("faq.xlsx", "カテゴリ,質問,回答\n".encode(), "Excel ブック（.xlsx）ではありません"),
    ("faq.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "古い Excel 形式（.xls）か、パスワード付き"),
    ("faq.xlsx", None, "Excel ブックとして読めません"),  # a zip, but not a workbook
    ("faq.xlsx", "truncated", "Excel ブックとして読めません"),
    ("faq.xls", b"\xd0\xcf\x11\xe0", "「.xls」の形式には対応していません"),
    ("faq.ods", b"PK", "「.ods」の形式には対応していません"),
    ("faq.csv", b"PK\x03\x04rest", "中身は Excel ブック"),
    ("faq.csv", b"", "見出し行がありません"),
    ("faq.csv", b"\n\n,,\n", "見出し行がありません"),
])
def test_broken_files(tmp_path: Path, kb: Path, name: str, content: bytes | str | None, problem: str) -> None:
    state = snapshot(kb)
    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("hello.txt", "not a workbook")
    elif content == "truncated":
        write_xlsx(path, [HEADER, new_row()])
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    assert problem in str(info.value)
    assert str(path) in str(info.value) and "対処:" in str(info.value)
    assert snapshot(kb) == state


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match="ファイルが見つかりません"):
        read_sheet(tmp_path / "nothing.xlsx")


def test_failed_import_into_a_new_folder_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new-kb"
    with pytest.raises(SheetError):
        import_sheet(_xlsx_with(tmp_path, new_row(related="missing-id")), target)
    assert not target.exists()


def test_broken_knowledge_directory_is_reported_and_untouched(tmp_path: Path, kb: Path) -> None:
    (kb / "faq" / "broken.yml").write_text("entries:\n  - id: Bad Id\n", encoding="utf-8")
    state = snapshot(kb)
    with pytest.raises(KnowledgeError, match="broken.yml"):
        import_sheet(_xlsx_with(tmp_path, new_row()), kb)
    assert snapshot(kb) == state


def test_loader_check_on_the_copy_names_the_sheet_row(tmp_path: Path, kb: Path, monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """Whatever the loader rejects in the would-be state becomes a SheetError naming the row."""
    real_load = spreadsheet.load_knowledge
    calls = {"n": 0}

    def strict_load(directory: Path) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the temporary copy
            raise KnowledgeError(directory / "faq" / "imported.yml", "faq-0004", "テスト用の誤り。", "直してください。")
        return real_load(directory)

    monkeypatch.setattr(spreadsheet, "load_knowledge", strict_load)
    state = snapshot(kb)
    with pytest.raises(SheetError) as info:
        import_sheet(_xlsx_with(tmp_path, new_row()), kb)
    assert info.value.row == 2
    assert str(kb / "faq" / "imported.yml") in str(info.value) and "テスト用の誤り。" in str(info.value)
    assert snapshot(kb) == state


def test_write_failure_leaves_every_file_as_it_was(tmp_path: Path, kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = snapshot(kb)
    real_fsync = spreadsheet.os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second of three files
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(spreadsheet.os, "fsync", failing_fsync)
    path = _xlsx_with(tmp_path, new_row(), row("change-address", answer="新しい回答"), row("hours", answer="新しい時間"))
    with pytest.raises(SheetError, match="書き込めません.*knowledge のファイルは変わっていません"):
        import_sheet(path, kb)
    assert snapshot(kb) == state  # also: no temporary files left in faq/


def test_punctuation_only_questions_are_not_duplicates(tmp_path: Path, kb: Path) -> None:
    path = _xlsx_with(tmp_path, new_row(paraphrases="？"), new_row(question="ポイントは譲れますか", paraphrases="？！"))
    assert import_sheet(path, kb).added == ["faq-0004", "faq-0005"]


def test_import_result_passes_the_validator(tmp_path: Path, real_kb: Path) -> None:
    from bot.knowledge.validate import validate_knowledge

    path = _xlsx_with(tmp_path, new_row(related="change-address, hours"),
                      row("change-address", paraphrases="住所を新しくしたい"))
    import_sheet(path, real_kb)
    errors = [p for p in validate_knowledge(real_kb, check_published=False) if p.severity == "error"]
    assert errors == []


@pytest.mark.parametrize("text", ["住所変更！", "ｼﾞｭｳｼｮ変更", "Ｅメール 変えたい", "パスワ-ド忘れた", "  空白　あり  "])
def test_question_key_matches_the_validator(text: str) -> None:
    from bot.knowledge.validate import _question_key

    assert spreadsheet.question_key(text) == _question_key(text)


def test_sheet_error_is_a_value_error_with_fields(tmp_path: Path) -> None:
    error = SheetError(tmp_path / "faq.xlsx", "問題。", "直し方。", row=3, column="E列「回答」")
    assert isinstance(error, ValueError)
    assert str(error) == f"{tmp_path / 'faq.xlsx'}（3行目・E列「回答」）: 問題。 対処: 直し方。"
    assert (error.row, error.column, error.problem, error.fix) == (3, "E列「回答」", "問題。", "直し方。")


def test_docs_guide_lists_every_column() -> None:
    guide = (PROJECT_ROOT / "docs" / "importing-faq.md").read_text(encoding="utf-8")
    for header in HEADER:
        assert f"| {header} |" in guide or f"| {header}" in guide, header
    for command in ("bot kb import FAQ.xlsx", "bot kb import FAQ.csv --encoding cp932", "bot kb export FAQ.xlsx",
                    "bot kb validate", "make train"):
        assert command in guide
