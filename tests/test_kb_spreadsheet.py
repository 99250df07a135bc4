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
from bot.knowledge.spreadsheet import planning, writing
from bot.knowledge.loader import load_knowledge
from bot.knowledge.model import Link
from bot.knowledge.spreadsheet import (
    Conflict,
    SheetConflictError,
    SheetError,
    SheetRow,
    export_sheet,
    import_sheet,
    read_sheet,
)
from bot.knowledge.validate import validate_knowledge
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
    assert after["registration.yml"].startswith("# FAQ「登録情報の変更」（編集者用）")


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
    assert (cell.value, cell.data_type) == ("'=SUM(A1:A3) ってなに", "s")  # defused, never a formula
    assert read_sheet(tmp_path / "out.xlsx")[0].question == "=SUM(A1:A3) ってなに"


def test_export_errors(tmp_path: Path, kb: Path) -> None:
    with pytest.raises(SheetError, match="書き出せません"):
        export_sheet(kb, tmp_path / "faq.txt")
    with pytest.raises(SheetError, match="フォルダ .* がありません"):
        export_sheet(kb, tmp_path / "nope" / "faq.xlsx")
    # A character CP932 has no code for (the fixture's own, not whatever the real answers hold today).
    registration = kb / "faq" / "registration.yml"
    original = registration.read_text(encoding="utf-8")
    registration.write_text(original.replace("電話番号を変更いただけます。", "電話番号を変更いただけます☕"),
                            encoding="utf-8")
    with pytest.raises(SheetError, match=r"「☕」は文字コード cp932 で書けません（FAQ: change-phone）"):
        export_sheet(kb, tmp_path / "faq.csv", encoding="cp932")
    registration.write_text(original, encoding="utf-8")
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
    ([new_row(paraphrases="あ" * 10_001)], ("2行目", "F列「言い換え」"), "セルが 10,001 文字あります"),
    ([new_row(answer="あ" * 10_001)], ("2行目", "E列「回答」"), "セルが 10,001 文字あります（1つのセルは 10,000 文字まで）"),
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
    ([row("hours", answer="x"), row(question="営業時間を教えてください", answer="y")],
     ("3行目", "A列「ID」"), "2行目と同じ FAQ（hours）"),
]


@pytest.mark.parametrize(("rows", "where", "problem"), BAD_ROWS)
def test_bad_rows_name_row_and_column_and_change_nothing(tmp_path: Path, kb: Path, rows: list[list[str]],
                                                         where: tuple[str, str], problem: str) -> None:
    state = snapshot(kb)
    path = _xlsx_with(tmp_path, *rows)
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    message = str(info.value)
    assert f"{where[0]}・{where[1]}" in message, message
    assert problem in message, message
    assert " 対処: " in message and str(path) in message
    assert snapshot(kb) == state


def test_a_different_phrasing_near_another_entrys_question_is_imported(tmp_path: Path, kb: Path) -> None:
    """The control case of the table above: 「ﾃﾞﾝﾜ番号変更！」 is not change-phone's 「電話番号変更」.

    Questions that are the same up to notation are conflicts: see the conflict tests.
    """
    report = import_sheet(_xlsx_with(tmp_path, new_row(paraphrases="ﾃﾞﾝﾜ番号変更！")), kb)
    assert (report.added, report.changed, report.warnings) == (["faq-0004"], [], [])
    loaded = load_knowledge(kb)
    assert loaded.get("faq-0004").questions == ("ポイントの有効期限は？", "ﾃﾞﾝﾜ番号変更！")
    assert loaded.get("change-phone").questions == ("電話番号を変更したいです", "電話番号変更")


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
    def strict_load(directory: Path) -> Any:  # only the temporary copy is loaded by the writing layer
        raise KnowledgeError(directory / "faq" / "imported.yml", "faq-0004", "テスト用の誤り。", "直してください。")

    monkeypatch.setattr(writing, "load_knowledge", strict_load)
    state = snapshot(kb)
    with pytest.raises(SheetError) as info:
        import_sheet(_xlsx_with(tmp_path, new_row()), kb)
    assert info.value.row == 2
    assert str(kb / "faq" / "imported.yml") in str(info.value) and "テスト用の誤り。" in str(info.value)
    assert snapshot(kb) == state


def test_write_failure_leaves_every_file_as_it_was(tmp_path: Path, kb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = snapshot(kb)
    real_fsync = writing.os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second of three files
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(writing.os, "fsync", failing_fsync)
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


def test_one_question_key_for_loader_validator_and_import() -> None:
    from bot.knowledge import loader, validate

    assert spreadsheet.question_key is loader.question_key
    assert validate.question_key is loader.question_key
    assert planning.question_key is loader.question_key
    assert not hasattr(validate, "_question_key")


@pytest.mark.parametrize(("text", "key"), [("住所変更！", "住所変更"), ("ｼﾞｭｳｼｮ変更", "ジュウショ変更"),
                                           ("Ｅメール 変えたい", "eメール変えたい"), ("パスワ-ド忘れた", "パスワード忘れた"),
                                           ("  空白　あり  ", "空白あり"), ("？！", "")])
def test_question_key_folds_notation(text: str, key: str) -> None:
    assert spreadsheet.question_key(text) == key


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
                    "bot kb validate", "BOT_KNOWLEDGE_DIR=", "bot kb import FAQ.xlsx --skip-conflicts"):
        assert command in guide
    assert "再学習は不要" in guide  # imported entries are answered at once (FAQ search at run time)
    # Every other header name the reader accepts is documented.
    from bot.knowledge.spreadsheet.reading import HEADER_NAMES

    for tiers in HEADER_NAMES.values():
        for name in (n for tier in tiers[1:] for n in tier):
            assert name in guide.lower(), name
    assert "--skip-conflicts" in guide and "faq-0012" in guide and "続きを読む" in guide


# --------------------------------------------------------------------------- long answers

LONG_WARNING_TAIL = ("ウィジェットでは長い回答は約 300 文字で折りたたまれ、お客さまが「続きを読む」を押すまで残りは表示されません。"
                     " 対処: 大事なことを最初の数行に書き、要点に絞って短くするか、詳しい説明はリンク先に移してください。"
                     "（取り込みはしました）")


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_long_answers_are_imported_with_one_warning(tmp_path: Path, kb: Path, suffix: str) -> None:
    long_answer = ("住民票の写しは、市役所の窓口のほか、郵送やコンビニでも取得できます。\n" * 60)[:1471] + "。"
    assert len(long_answer) == 1472
    rows = [HEADER, new_row(answer=long_answer), new_row(question="ポイントは譲れますか", answer="い" * 401),
            row("hours", answer="う" * 400)]  # exactly 400 characters: no warning
    path = write_xlsx(tmp_path / "faq.xlsx", rows) if suffix == ".xlsx" else write_csv(tmp_path / "faq.csv", rows)
    report = import_sheet(path, kb)
    assert (report.added, report.changed) == (["faq-0004", "faq-0005"], ["hours"])
    assert report.warnings == ["回答が 400 文字を超える FAQ が 2 件あります: 2行目（faq-0004、1,472 文字）, "
                               "3行目（faq-0005、401 文字）。" + LONG_WARNING_TAIL]
    assert "  注意: 回答が 400 文字を超える FAQ が 2 件あります" in report.summary()
    loaded = load_knowledge(kb)
    assert loaded.get("faq-0004").answer == long_answer
    assert loaded.get("hours").answer == "う" * 400
    again = import_sheet(path, kb)  # unchanged long answers are not reported again
    assert again.warnings == [] and again.written == []


# --------------------------------------------------------------------------- conflicts (the same question in two FAQs)


def _conflict_sheet(tmp_path: Path) -> Path:
    return _xlsx_with(
        tmp_path,
        new_row(),  # 2: kept (first occurrence)
        new_row(answer="別の回答です。"),  # 3: the same 質問 as row 2
        new_row(question="ポイントは譲れますか", paraphrases="電話番号変更！"),  # 4: a question of change-phone
        row("hours", paraphrases="料金はいくらですか？"),  # 5: a question of faq-0003
        new_row(faq_id="city-0001", question="住所変更"),  # 6: a question of change-address
        new_row(faq_id="point-a", question="ポイントの確認"),  # 7: kept
        new_row(faq_id="point-b", question="ポイントの確認！"),  # 8: the same as row 7 up to notation
        new_row(question="ポイントを家族に送りたい"),  # 9: fine
    )


CONFLICT_LINES = [
    "3行目（ID なし）・D列「質問」: 質問「ポイントの有効期限は？」が 2行目（faq-0004）と同じです",
    "4行目（ID なし）・F列「言い換え」: 質問「電話番号変更！」が 既存の FAQ change-phone（registration.yml）の「電話番号変更」と同じです",
    "5行目（hours）・F列「言い換え」: 質問「料金はいくらですか？」が 既存の FAQ faq-0003（service.yml）の「料金はいくらですか」と同じです",
    "6行目（city-0001）・D列「質問」: 質問「住所変更」が 既存の FAQ change-address（registration.yml）と同じです",
    "8行目（point-b）・D列「質問」: 質問「ポイントの確認！」が 7行目（point-a）の「ポイントの確認」と同じです",
]


def test_conflicts_stop_the_import_and_are_all_listed(tmp_path: Path, kb: Path) -> None:
    state = snapshot(kb)
    path = _conflict_sheet(tmp_path)
    with pytest.raises(SheetConflictError) as info:
        import_sheet(path, kb)
    faq = kb / "faq"
    assert info.value.conflicts == [
        Conflict(3, None, "ポイントの有効期限は？", "D列「質問」", "ポイントの有効期限は？", "faq-0004", other_row=2),
        Conflict(4, None, "電話番号変更！", "F列「言い換え」", "電話番号変更", "change-phone", other_file=faq / "registration.yml"),
        Conflict(5, "hours", "料金はいくらですか？", "F列「言い換え」", "料金はいくらですか", "faq-0003",
                 other_file=faq / "service.yml"),
        Conflict(6, "city-0001", "住所変更", "D列「質問」", "住所変更", "change-address", other_file=faq / "registration.yml"),
        Conflict(8, "point-b", "ポイントの確認！", "D列「質問」", "ポイントの確認", "point-a", other_row=7),
    ]
    message = str(info.value)
    assert message.startswith(f"{path}: ほかの FAQ と同じ質問（表記の違いを除いて同じもの）がある行が 5 行あります。")
    assert message.splitlines()[1:6] == [f"  - {line}" for line in CONFLICT_LINES]
    assert " 対処: " in message and "--skip-conflicts" in message and "knowledge のファイルは変わっていません" in message
    assert snapshot(kb) == state


def test_skip_conflicts_imports_the_rest_and_lists_the_skipped_rows(tmp_path: Path, kb: Path) -> None:
    before = {name: (kb / "faq" / name).read_bytes() for name in ("registration.yml", "service.yml")}
    path = _conflict_sheet(tmp_path)
    report = import_sheet(path, kb, skip_conflicts=True)
    # Skipped rows take no automatic id: row 9 gets faq-0005, not faq-0006.
    assert (report.added, report.changed, report.unchanged) == (["faq-0004", "point-a", "faq-0005"], [], [])
    assert report.skipped_rows == [3, 4, 5, 6, 8]
    assert [c.describe() for c in report.skipped_conflicts] == CONFLICT_LINES
    summary = report.summary()
    assert "追加 3 件、変更 0 件、変更なし 0 件、質問の重複でスキップ 5 行。" in summary
    assert "\n".join(f"    - {line}" for line in CONFLICT_LINES) in summary
    loaded = load_knowledge(kb)
    assert loaded.get("faq-0004").answer == "ポイントの有効期限は獲得から1年です。"  # the first occurrence is kept
    assert loaded.get("faq-0005").questions == ("ポイントを家族に送りたい",)
    assert loaded.get("city-0001") is None and loaded.get("point-b") is None
    assert loaded.get("hours").questions == ("営業時間を教えてください", "何時まで開いていますか")
    assert {name: (kb / "faq" / name).read_bytes() for name in before} == before
    assert [p.problem for p in validate_knowledge(kb, check_published=False) if p.severity == "error"] == []
    again = import_sheet(path, kb, skip_conflicts=True)  # the same table again: stable
    assert (again.added, again.changed, again.written) == ([], [], [])
    assert again.unchanged == ["faq-0004", "point-a", "faq-0005"] and again.skipped_rows == [3, 4, 5, 6, 8]


def test_same_question_twice_without_id_matching_an_existing_entry(tmp_path: Path, kb: Path) -> None:
    """Two rows with the existing first question: a conflict (the second is skipped), not 'two rows for one FAQ'."""
    path = _xlsx_with(tmp_path, row(question="営業時間を教えてください", answer="平日 9:00〜17:00 です。"),
                      row(question="営業時間を教えてください！", answer="土日も営業しています。"))
    report = import_sheet(path, kb, skip_conflicts=True)
    assert report.changed == ["hours"] and report.assigned_ids == {2: "hours"}
    assert [c.describe() for c in report.skipped_conflicts] == [
        "3行目（ID なし）・D列「質問」: 質問「営業時間を教えてください！」が 2行目（hours）の「営業時間を教えてください」と同じです"]
    assert load_knowledge(kb).get("hours").answer == "平日 9:00〜17:00 です。"


def test_related_id_of_a_skipped_row_is_explained(tmp_path: Path, kb: Path) -> None:
    state = snapshot(kb)
    path = _xlsx_with(tmp_path, new_row(faq_id="city-0001", question="住所変更"),
                      new_row(question="ポイントは譲れますか", related="city-0001"))
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb, skip_conflicts=True)
    assert (info.value.row, info.value.column) == (3, "G列「関連ID」")
    assert info.value.problem == "関連ID「city-0001」の行（2行目）は、質問の重複で取り込まなかったので、関連づけられません。"
    assert snapshot(kb) == state


def test_cli_import_lists_conflicts_and_skips_them_with_the_flag(tmp_path: Path, kb: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    state = snapshot(kb)
    path = _conflict_sheet(tmp_path)
    assert main(["kb", "import", str(path), "--kb", str(kb)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"エラー: {path}: ほかの FAQ と同じ質問")
    for line in CONFLICT_LINES:
        assert f"  - {line}\n" in err
    assert "--skip-conflicts" in err
    assert snapshot(kb) == state
    assert main(["kb", "import", str(path), "--kb", str(kb), "--skip-conflicts"]) == 0
    out = capsys.readouterr().out
    assert "追加 3 件、変更 0 件、変更なし 0 件、質問の重複でスキップ 5 行。" in out
    for line in CONFLICT_LINES:
        assert f"    - {line}\n" in out
    assert (kb / "faq" / "imported.yml").exists()
    assert load_knowledge(kb).get("point-a") is not None


# --------------------------------------------------------------------------- header variants


@pytest.mark.parametrize(("field_name", "header"), [
    ("question", "問い合わせ内容"), ("question", "お問い合わせ内容"), ("question", "Q"), ("question", "Ｑ"),
    ("question", "質問文"), ("question", "よくある質問"),
    ("answer", "A"), ("answer", "答え"), ("answer", "回答文"),
    ("category", "カテゴリー"), ("category", "分類"), ("category", "大分類"),
    ("title", "件名"),
    ("id", "番号"), ("id", "No"), ("id", "No."), ("id", "ｎｏ．"), ("id", "管理番号"),
])
def test_header_variants(tmp_path: Path, field_name: str, header: str) -> None:
    headers = {"id": "ID", "category": "カテゴリ", "title": "タイトル", "question": "質問", "answer": "回答"}
    headers[field_name] = header
    path = write_xlsx(tmp_path / "faq.xlsx", [list(headers.values()),
                                              ["city-0001", "くらし", "住民票", "住民票を取りたい", "窓口で取得できます。"]])
    [parsed] = read_sheet(path)
    assert parsed == SheetRow(row=2, id="city-0001", category="くらし", title="住民票", question="住民票を取りたい",
                              answer="窓口で取得できます。")


def test_preferred_header_wins_and_the_other_is_reported(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        ["No.", "分類", "大分類", "問い合わせ内容", "回答", "ID", "備考"],
        [1, "住民票", "くらし", "住民票を取りたい", "窓口で取得できます。", "city-0001", "メモ"],
    ])
    [parsed] = read_sheet(path)
    assert (parsed.id, parsed.category) == ("city-0001", "くらし")
    report = import_sheet(path, tmp_path / "kb")
    assert report.ignored_columns == ["No.", "分類", "備考"]
    assert report.warnings == [
        "F列「ID」とA列「No.」の両方があるので、IDにはF列「ID」を使い、A列「No.」は取り込みませんでした（「ID」が優先です）。",
        "C列「大分類」とB列「分類」の両方があるので、カテゴリにはC列「大分類」を使い、B列「分類」は取り込みませんでした（「大分類」が優先です）。",
    ]
    assert load_knowledge(tmp_path / "kb").get("city-0001").category == "くらし"


def test_two_headers_of_the_same_rank_are_an_error(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [["番号", "No", "カテゴリ", "質問", "回答"], [1, 2, "a", "b", "c"]])
    with pytest.raises(SheetError, match="「ID」の列が A列「番号」とB列「No」の2つあります"):
        read_sheet(path)


def test_missing_columns_message_names_the_variants(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [["No.", "内容", "回答"], [1, "b", "c"]])
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    assert "必要な列 「カテゴリ」・「質問」 がありません" in str(info.value)
    assert "「分類」「問い合わせ内容」「回答文」" in info.value.fix and "docs/importing-faq.md" in info.value.fix


# --------------------------------------------------------------------------- several questions in the 質問 cell


def test_question_cell_with_one_question_per_line(tmp_path: Path) -> None:
    """Real tables put several phrasings into the question cell; the first is the main question."""
    target = tmp_path / "kb"
    path = write_csv(tmp_path / "faq.csv", [
        ["分類", "問い合わせ内容", "回答"],
        ["くらし", "住民票を取りたい\r\n住民票の写しはどこでもらえますか\r\n\r\n 住民票が欲しい ", "窓口で取得できます。"],
    ])
    [parsed] = read_sheet(path)
    assert (parsed.question, parsed.paraphrases) == ("住民票を取りたい", ("住民票の写しはどこでもらえますか", "住民票が欲しい"))
    import_sheet(path, target)
    entry = load_knowledge(target).get("faq-0001")
    assert entry.questions == ("住民票を取りたい", "住民票の写しはどこでもらえますか", "住民票が欲しい")
    assert entry.title == "住民票を取りたい"


# --------------------------------------------------------------------------- ids: city-0001 and plain numbers


def test_text_ids_and_plain_numbers(tmp_path: Path, kb: Path) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx", [
        HEADER,
        new_row(faq_id=12),  # a number cell  # type: ignore[arg-type]
        new_row(faq_id="0013", question="ポイントは譲れますか"),  # text, leading zeros
        new_row(faq_id=14.0, question="ポイントを家族に送りたい"),  # type: ignore[arg-type]
        new_row(faq_id="１５", question="ポイントの残高は？"),  # full-width digits
        new_row(faq_id="city-0001", question="ポイントの貯め方は？"),
        new_row(question="ポイントは現金にできますか"),  # empty: next after the highest faq- number
    ])
    assert [r.id for r in read_sheet(path)] == ["faq-0012", "faq-0013", "faq-0014", "faq-0015", "city-0001", None]
    assert [r.id_number for r in read_sheet(path)] == [12, 13, 14, 15, None, None]
    report = import_sheet(path, kb)
    assert report.added == ["faq-0012", "faq-0013", "faq-0014", "faq-0015", "city-0001", "faq-0016"]
    assert report.numbered_ids == {2: "faq-0012", 3: "faq-0013", 4: "faq-0014", 5: "faq-0015"}
    assert report.assigned_ids == {7: "faq-0016"}
    assert "  ID 列の番号は「faq-」で始まる ID にしました（4 件。例: 2行目 → faq-0012）。" in report.summary()
    assert set(load_knowledge(kb).ids) >= {"faq-0012", "faq-0013", "faq-0014", "faq-0015", "city-0001", "faq-0016"}
    # Excel drops leading zeros when it opens a CSV: 13 and 0013 are the same FAQ.
    again = import_sheet(write_csv(tmp_path / "again.csv", [HEADER, new_row(faq_id="13", question="ポイントは譲れますか")]), kb)
    assert (again.added, again.unchanged) == ([], ["faq-0013"])


def test_the_same_number_twice_is_a_duplicate_id(tmp_path: Path) -> None:
    twelve = new_row(faq_id=12)  # type: ignore[arg-type]
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, twelve, new_row(faq_id="0012", question="別")])
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    assert (info.value.row, info.value.column) == (3, "A列「ID」")
    assert info.value.problem == "ID「faq-0012」が 2行目と 3行目の2回出てきます（番号 12 は faq-0012 として扱います）。"


def test_number_naming_an_unrelated_existing_faq_is_a_warning(tmp_path: Path, kb: Path) -> None:
    report = import_sheet(_xlsx_with(tmp_path, new_row(faq_id=3)), kb)  # type: ignore[arg-type]
    assert report.changed == ["faq-0003"]
    assert report.warnings == [
        "2行目: ID 列の番号 3 は既存の FAQ faq-0003（service.yml「料金」）を指しますが、質問が1つも一致しません。"
        "番号を振り直した場合は別の FAQ を上書きしています。違う FAQ なら ID 列を直すか空にして取り込み直してください。"]


# --------------------------------------------------------------------------- a real-sized municipal table


def test_municipal_table_of_2000_rows_is_fast(tmp_path: Path) -> None:
    """No., 大分類, 問い合わせ内容 and long answers as in real municipal tables, with a few duplicate questions."""
    import time

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("FAQ")
    sheet.append(["No.", "大分類", "問い合わせ内容", "回答", "備考"])
    step = "窓口または郵送でお手続きください。本人確認書類が必要です。\n"
    duplicates = {500: 10, 1200: 20, 1999: 30}  # row No. -> the No. whose question it repeats
    for number in range(1, 2001):
        asked = duplicates.get(number, number)
        answer = f"{number}番のご案内です。\n" + step * (1 + number % 60)
        sheet.append([number, f"分類{number % 12}", f"手続き{asked}について教えてください", answer[:1472], ""])
    book.save(tmp_path / "faq.xlsx")
    start = time.perf_counter()
    report = import_sheet(tmp_path / "faq.xlsx", tmp_path / "kb", skip_conflicts=True)
    seconds = time.perf_counter() - start
    assert len(report.added) == 1997 and report.skipped_rows == [501, 1201, 2000]
    assert report.added[:2] == ["faq-0001", "faq-0002"] and "faq-0500" not in report.added
    assert any(w.startswith("回答が 400 文字を超える FAQ が ") for w in report.warnings)
    assert max(len(e.answer) for e in load_knowledge(tmp_path / "kb").entries) == 1472
    assert seconds < 20, f"{seconds:.1f} s"  # about 2 s on a laptop; generous against slow CI machines


# --------------------------------------------------------------------------- security review (issue #11)

# Cells that a spreadsheet would run as a formula get a leading ' on export; the import removes
# exactly that quote, so export → import changes nothing (even for texts that already start with ').
FORMULA_KB = """\
entries:
  - id: no-sum
    category: "＝計算"
    title: "+αの特典"
    questions:
      - "-50%割引はありますか"
      - "@メンションで聞けますか"
      - "割引の質問"
    answer: "=SUM は使えません"
    related: [quoted]
  - id: quoted
    category: "その他"
    title: "引用"
    questions:
      - "'=A1 と書くとどうなりますか"
      - "＠マークの使い方"
    answer: "''=1 のように書いた場合"
  - id: plain
    category: "'普通'"
    title: "普通の FAQ"
    questions:
      - "普通の質問です"
      - "－５０％ の割引"
    answer: "'引用' で始まる回答"
"""


@pytest.fixture()
def formula_kb(tmp_path: Path) -> Path:
    directory = tmp_path / "formula-kb"
    (directory / "faq").mkdir(parents=True)
    (directory / "faq" / "formula.yml").write_text(FORMULA_KB, encoding="utf-8")
    load_knowledge(directory)
    return directory


def exported_cells(path: Path, encoding: str | None = None) -> list[list[str]]:
    """The cells of an exported table as text ('' for empty cells)."""
    if path.suffix == ".csv":
        return list(csv.reader(io.StringIO(path.read_bytes().decode(encoding or "utf-8-sig"), newline="")))
    sheet = openpyxl.load_workbook(path)["FAQ"]
    for line in sheet.iter_rows():
        for cell in line:
            assert cell.data_type != "f", cell.coordinate  # never a formula
    with zipfile.ZipFile(path) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")
    return [["" if value is None else str(value) for value in line] for line in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize(("name", "encoding"), [("faq.csv", None), ("faq.csv", "cp932"), ("faq.xlsx", None)])
def test_export_defuses_formula_cells_and_round_trips(tmp_path: Path, formula_kb: Path, name: str,
                                                      encoding: str | None) -> None:
    state = snapshot(formula_kb)
    export_sheet(formula_kb, tmp_path / name, encoding=encoding)
    by_id = {line[0]: line for line in exported_cells(tmp_path / name, encoding)[1:]}
    assert by_id["no-sum"][1:6] == ["'＝計算", "'+αの特典", "'-50%割引はありますか", "'=SUM は使えません",
                                    "'@メンションで聞けますか\n割引の質問"]
    assert by_id["quoted"][3:6] == ["''=A1 と書くとどうなりますか", "'''=1 のように書いた場合", "'＠マークの使い方"]
    assert by_id["plain"][1:6] == ["'普通'", "普通の FAQ", "普通の質問です", "'引用' で始まる回答", "'－５０％ の割引"]
    # The same knowledge comes back, into a new folder and into the exported one (nothing written).
    import_sheet(tmp_path / name, tmp_path / "fresh")
    assert entries_without_source(tmp_path / "fresh") == entries_without_source(formula_kb)
    report = import_sheet(tmp_path / name, formula_kb)
    assert report.added == report.changed == [] and len(report.unchanged) == 3
    assert snapshot(formula_kb) == state


@pytest.mark.parametrize(("cell", "expected"), [
    ("'=SUM は使えません", "=SUM は使えません"),
    ("'-50%割引はありますか", "-50%割引はありますか"),
    ("'+α", "+α"),
    ("'@メンション", "@メンション"),
    ("'＝計算", "＝計算"),
    ("'＋α", "＋α"),
    ("'－５０％", "－５０％"),
    ("'＠マーク", "＠マーク"),
    ("''=1", "'=1"),  # the export doubled a quote that was already there
    ("'''－1", "''－1"),
    # Only the quote the export adds is removed: other leading quotes are text.
    ("'引用'", "'引用'"),
    ("' =1", "' =1"),
    ("x'=1", "x'=1"),
    ("-50%割引はありますか", "-50%割引はありますか"),
    ("@メンション", "@メンション"),
])
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_import_removes_only_the_quote_the_export_adds(tmp_path: Path, cell: str, expected: str, suffix: str) -> None:
    rows = [HEADER, new_row(title=cell, question=cell, answer=cell)]
    path = write_csv(tmp_path / "faq.csv", rows) if suffix == ".csv" else write_xlsx(tmp_path / "faq.xlsx", rows)
    sheet_row = read_sheet(path)[0]
    assert (sheet_row.title, sheet_row.question, sheet_row.answer) == (expected, expected, expected)


def test_longest_answer_starting_with_a_formula_character_round_trips(tmp_path: Path) -> None:
    """The added quote does not count against the 10,000 characters of a cell."""
    kb = tmp_path / "kb"
    answer = "=" + "あ" * 9_999
    import_sheet(write_xlsx(tmp_path / "in.xlsx", [HEADER, new_row(answer="'" + answer)]), kb)
    assert load_knowledge(kb).entries[0].answer == answer
    for name in ("out.csv", "out.xlsx"):
        export_sheet(kb, tmp_path / name)
        assert import_sheet(tmp_path / name, kb).unchanged == ["faq-0001"]


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path, kb: Path) -> None:
    from bot.knowledge.spreadsheet import reading

    assert reading.MAX_SHEET_BYTES == 20 * 1024 * 1024
    state = snapshot(kb)
    for name in ("faq.csv", "faq.xlsx"):
        path = tmp_path / name
        with path.open("wb") as handle:
            handle.truncate(reading.MAX_SHEET_BYTES + 1)  # a sparse file: nothing is written
        with pytest.raises(SheetError) as info:
            import_sheet(path, kb)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "20.0 MB" in message and "上限 20 MB" in message
        assert "対処:" in message and "分けて" in message
    assert snapshot(kb) == state


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_rows_over_the_limit_are_refused(tmp_path: Path, kb: Path, monkeypatch: pytest.MonkeyPatch,
                                         suffix: str) -> None:
    from bot.knowledge.spreadsheet import reading

    monkeypatch.setattr(reading, "MAX_SHEET_ROWS", 3)
    write = write_csv if suffix == ".csv" else write_xlsx
    rows = [HEADER, new_row(question="質問1"), row(), new_row(question="質問2"), new_row(question="質問3")]
    assert len(read_sheet(write(tmp_path / f"ok{suffix}", rows))) == 3  # empty rows do not count
    state = snapshot(kb)
    path = write(tmp_path / f"faq{suffix}", rows + [new_row(question="質問4")])
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    error = info.value
    assert error.row == 6 and "FAQ の行が 3 行を超えています" in error.problem and "分けて" in error.fix
    assert str(error).startswith(f"{path}（6行目）: ")
    assert snapshot(kb) == state


def test_the_row_limit_is_20000_rows(tmp_path: Path) -> None:
    rows = [["カテゴリ", "質問", "回答"]] + [["分類", f"質問{n}", "回答"] for n in range(20_001)]
    path = write_csv(tmp_path / "faq.csv", rows)
    with pytest.raises(SheetError, match=r"（20002行目）: FAQ の行が 20,000 行を超えています"):
        read_sheet(path)
    path = write_csv(tmp_path / "faq.csv", rows[:-1])
    assert len(read_sheet(path)) == 20_000


def _add_member(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path


def _replace_member(path: Path, member: str, change: Any) -> Path:
    with zipfile.ZipFile(path) as source:
        items = {name: source.read(name) for name in source.namelist()}
    items[member] = change(items[member])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in items.items():
            target.writestr(name, data)
    return path


@pytest.mark.parametrize(("size", "problem"), [
    (101 * 1024 * 1024, "展開すると 101.0 MB になります（上限 100 MB）"),  # a zip bomb
    (5 * 1024 * 1024, "圧縮率が異常に高い部分があります（xl/media/padding.bin"),
])
def test_xlsx_that_unpacks_too_much_is_refused_before_openpyxl(tmp_path: Path, kb: Path,
                                                               monkeypatch: pytest.MonkeyPatch, size: int,
                                                               problem: str) -> None:
    path = _add_member(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row()]), "xl/media/padding.bin",
                       b"\0" * size)
    assert path.stat().st_size < 1024 * 1024

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("openpyxl opened the workbook")

    monkeypatch.setattr(openpyxl, "load_workbook", never)
    state = snapshot(kb)
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert "対処:" in message and "CSV" in message
    assert snapshot(kb) == state


def test_ordinary_images_and_compressed_sheets_are_fine(tmp_path: Path) -> None:
    import os

    path = _add_member(write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row()]), "xl/media/photo.bin",
                       os.urandom(2 * 1024 * 1024))
    assert read_sheet(path)[0].question == "ポイントの有効期限は？"


def test_xlsx_is_read_with_defusedxml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import defusedxml.ElementTree
    from openpyxl.xml import functions

    assert openpyxl.DEFUSEDXML is True  # openpyxl uses defusedxml when it is installed
    assert functions.iterparse is defusedxml.ElementTree.iterparse
    path = write_xlsx(tmp_path / "faq.xlsx", [HEADER, new_row()])
    monkeypatch.setattr(openpyxl, "DEFUSEDXML", False)
    with pytest.raises(SheetError) as info:
        read_sheet(path)
    assert "defusedxml" in str(info.value) and "make setup" in str(info.value)


# Ten levels of ten references: about 2 GB of text if a parser expanded it.
LAUGHS = "".join(f'<!ENTITY l{level} "{f"&l{level - 1};" * 10}">' for level in range(1, 10))
BILLION_LAUGHS = f'<!DOCTYPE sst [<!ENTITY l0 "ha">{LAUGHS}]>'
EXTERNAL_ENTITY = '<!DOCTYPE sst [<!ENTITY secret SYSTEM "file:///etc/hostname">]>'
SHARED_STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"


def _xlsx_with_shared_strings(path: Path, doctype: str = "", text: str = "ポイントの有効期限は？",
                              sheet_doctype: str = "") -> Path:
    """A workbook whose 質問 cell D2 is in xl/sharedStrings.xml (as Excel writes it; openpyxl writes inline strings)."""
    write_xlsx(path, [HEADER, new_row()])
    with zipfile.ZipFile(path) as source:
        items = {name: source.read(name) for name in source.namelist()}
    sheet, count = re.subn(r'<c r="D2" t="inlineStr"><is><t>[^<]*</t></is></c>', '<c r="D2" t="s"><v>0</v></c>',
                           items["xl/worksheets/sheet1.xml"].decode())
    assert count == 1
    items["xl/worksheets/sheet1.xml"] = (sheet_doctype + sheet).encode()
    items["xl/sharedStrings.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n{doctype}'
        f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
        f'<si><t>{text}</t></si></sst>').encode()
    override = f'<Override PartName="/xl/sharedStrings.xml" ContentType="{SHARED_STRINGS_TYPE}"/>'
    items["[Content_Types].xml"] = items["[Content_Types].xml"].replace(b"</Types>", f"{override}</Types>".encode())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in items.items():
            target.writestr(name, data)
    return path


def test_shared_strings_are_read(tmp_path: Path) -> None:
    assert read_sheet(_xlsx_with_shared_strings(tmp_path / "faq.xlsx", text="共有文字列の質問"))[0].question == "共有文字列の質問"


@pytest.mark.parametrize(("doctype", "text", "sheet_doctype"), [
    (BILLION_LAUGHS, "&l9;", ""),  # billion laughs in sharedStrings
    (EXTERNAL_ENTITY, "&secret;", ""),  # an external entity (a local file) in sharedStrings
    ("", "ポイントの有効期限は？", BILLION_LAUGHS.replace("sst", "worksheet")),  # in the sheet itself
])
def test_xml_entities_in_an_xlsx_are_refused_not_expanded(tmp_path: Path, kb: Path, doctype: str, text: str,
                                                          sheet_doctype: str) -> None:
    path = _xlsx_with_shared_strings(tmp_path / "faq.xlsx", doctype, text, sheet_doctype)
    state = snapshot(kb)
    with pytest.raises(SheetError) as info:
        import_sheet(path, kb)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "XML の実体（エンティティ）宣言" in message and "読み込みません" in message
    assert "対処:" in message and "保存し直して" in message
    assert snapshot(kb) == state


def test_docs_explain_the_quote_and_the_limits() -> None:
    guide = (PROJECT_ROOT / "docs" / "importing-faq.md").read_text(encoding="utf-8")
    for text in ("先頭に `'`", "＝", "＠", "20 MB", "20,000 行", "100 MB", "エンティティ"):
        assert text in guide, text
