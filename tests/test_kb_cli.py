"""`bot kb import` / `bot kb export` as editors run them: the installed command in a subprocess.

The library itself is tested in test_kb_spreadsheet.py; here the command paths are: argument
parsing, the default folder (BOT_KNOWLEDGE_DIR), what is printed on stdout / stderr and the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.knowledge.loader import load_knowledge
from bot.knowledge.spreadsheet import import_sheet, read_sheet
from bot.settings import PROJECT_ROOT
from test_kb_spreadsheet import HEADER, REGISTRATION, SERVICE, new_row, snapshot, write_csv, write_xlsx

BOT = PROJECT_ROOT / ".venv" / "bin" / "bot"

if not BOT.exists():
    pytest.skip(f"{BOT} is missing: run `make setup`", allow_module_level=True)


def bot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BOT), *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture()
def kb(tmp_path: Path) -> Path:
    """A copy of the project's FAQ files (the real ones, with their comments)."""
    directory = tmp_path / "kb"
    shutil.copytree(PROJECT_ROOT / "knowledge" / "faq", directory / "faq")
    return directory


@pytest.fixture()
def small_kb(tmp_path: Path) -> Path:
    """Two small FAQ files whose characters CP932 can hold."""
    directory = tmp_path / "small"
    (directory / "faq").mkdir(parents=True)
    (directory / "faq" / "registration.yml").write_text(REGISTRATION, encoding="utf-8")
    # 〜 (U+301C) would become ～ in CP932: the export refuses it, so this copy uses ～.
    (directory / "faq" / "service.yml").write_text(SERVICE.replace("〜", "～"), encoding="utf-8")
    return directory


def test_export_then_import_of_the_same_sheet_changes_nothing(kb: Path, tmp_path: Path) -> None:
    entries = load_knowledge(kb).entries
    sheet = tmp_path / "faq.xlsx"
    exported = bot("kb", "export", str(sheet), "--kb", str(kb))
    assert exported.returncode == 0 and exported.stderr == "", exported.stderr
    assert f"{len(entries)} " in exported.stdout and str(sheet) in exported.stdout
    assert [row.id for row in read_sheet(sheet)] == [e.id for e in entries]

    state = snapshot(kb)
    imported = bot("kb", "import", str(sheet), "--kb", str(kb))
    assert imported.returncode == 0, imported.stderr
    assert snapshot(kb) == state  # every file byte for byte
    # The summary is the library's report: every entry unchanged.
    copy = shutil.copytree(kb, tmp_path / "copy")
    report = import_sheet(sheet, copy)
    assert report.unchanged == [e.id for e in entries] and report.added == report.changed == []
    assert imported.stdout.strip() == report.summary().replace(str(copy), str(kb)).strip()


def test_export_in_cp932_reads_back_the_same_rows(small_kb: Path, tmp_path: Path) -> None:
    xlsx, csv_file = tmp_path / "faq.xlsx", tmp_path / "faq.csv"
    assert bot("kb", "export", str(xlsx), "--kb", str(small_kb)).returncode == 0
    result = bot("kb", "export", str(csv_file), "--encoding", "cp932", "--kb", str(small_kb))
    assert result.returncode == 0, result.stderr
    csv_file.read_bytes().decode("cp932")  # really Shift_JIS (CP932)
    assert read_sheet(csv_file) == read_sheet(xlsx) and len(read_sheet(xlsx)) == 4


def test_export_of_a_character_cp932_cannot_hold_names_the_entry(small_kb: Path, tmp_path: Path) -> None:
    path = small_kb / "faq" / "registration.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("住所変更\n", "住所変更🏠\n", 1), encoding="utf-8")
    result = bot("kb", "export", str(tmp_path / "faq.csv"), "--encoding", "cp932", "--kb", str(small_kb))
    assert result.returncode == 1 and result.stdout == "" and not (tmp_path / "faq.csv").exists()
    assert result.stderr.startswith(f"エラー: {tmp_path / 'faq.csv'}: 「🏠」") and "change-address" in result.stderr
    assert "対処" in result.stderr


def test_imported_entry_is_valid_and_found_by_the_search(kb: Path, tmp_path: Path) -> None:
    sheet = write_csv(tmp_path / "new.csv", [HEADER, new_row(faq_id="point-expiry", paraphrases="ポイントの期限")],
                      encoding="cp932")
    result = bot("kb", "import", str(sheet), "--kb", str(kb))
    assert result.returncode == 0, result.stderr
    entry = load_knowledge(kb).get("point-expiry")
    assert (entry.category, entry.questions, entry.answer, entry.source.name) == (
        "ポイント", ("ポイントの有効期限は？", "ポイントの期限"), "ポイントの有効期限は獲得から1年です。", "imported.yml")
    assert "1" in result.stdout  # 追加 1 件
    validated = bot("kb", "validate", "--kb", str(kb))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    searched = bot("kb", "search", "ポイントの有効期限を知りたい", "--kb", str(kb), "--json")
    assert searched.returncode == 0, searched.stderr
    found = json.loads(searched.stdout)
    assert found["hits"][0]["faq_id"] == "point-expiry" and found["faq_id"] == "point-expiry"  # answered at once


def test_bad_row_exits_1_names_the_row_and_column_and_writes_nothing(kb: Path, tmp_path: Path) -> None:
    state = snapshot(kb)
    sheet = write_xlsx(tmp_path / "bad.xlsx", [HEADER, new_row(), new_row(question="別の質問", related="no-such-entry")])
    result = bot("kb", "import", str(sheet), "--kb", str(kb))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"エラー: {sheet}") and "Traceback" not in result.stderr
    assert "3行目・G列「関連ID」" in result.stderr and "no-such-entry" in result.stderr
    assert snapshot(kb) == state


@pytest.mark.parametrize("args", [("kb", "import", "{tmp}/missing.xlsx"),
                                  ("kb", "import", "{tmp}/faq.csv", "--encoding", "no-such-codec"),
                                  ("kb", "import", "{tmp}/broken.xlsx"),
                                  ("kb", "export", "{tmp}/faq.pdf")],
                         ids=["missing file", "unknown encoding", "not really xlsx", "unknown format"])
def test_command_errors_are_one_japanese_line_and_exit_1(kb: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    """The editor sees our message with its fix, never the library error under it."""
    write_csv(tmp_path / "faq.csv", [HEADER, new_row()])
    (tmp_path / "broken.xlsx").write_bytes(b"ID,question\n")  # a CSV saved under an .xlsx name
    state = snapshot(kb)
    result = bot(*(a.format(tmp=tmp_path) for a in args), "--kb", str(kb))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("エラー: ") and "対処" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(kb) == state and not (tmp_path / "faq.pdf").exists()


def test_without_kb_the_folder_is_bot_knowledge_dir(small_kb: Path, tmp_path: Path) -> None:
    """The default folder comes from the settings (read only here: the project's knowledge/ is never written)."""
    sheet = tmp_path / "faq.xlsx"
    result = bot("kb", "export", str(sheet), env={"BOT_KNOWLEDGE_DIR": str(small_kb)})
    assert result.returncode == 0, result.stderr
    assert [row.id for row in read_sheet(sheet)] == ["change-address", "change-phone", "hours", "faq-0003"]
