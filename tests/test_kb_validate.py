"""`bot kb validate`: all problems at once, each with file, line, entry and fix."""

from __future__ import annotations

import subprocess
from pathlib import Path
from textwrap import dedent

from bot.cli import main
from bot.knowledge.validate import validate_knowledge
from bot.settings import PROJECT_ROOT


def entry(entry_id: str, questions: list[str], related: str = "", title: str = "タイトル") -> str:
    lines = "\n".join(f"      - {q}" for q in questions)
    return (f"  - id: {entry_id}\n    category: テスト\n    title: {title}\n    questions:\n{lines}\n"
            f"    answer: 回答です。\n{related}")


def write(tmp_path: Path, name: str, body: str) -> Path:
    faq = tmp_path / "faq"
    faq.mkdir(exist_ok=True)
    (faq / name).write_text(dedent(body), encoding="utf-8")
    return tmp_path


TEN = [f"質問その{i}について" for i in range(10)]


def test_the_projects_knowledge_has_no_errors() -> None:
    problems = validate_knowledge(PROJECT_ROOT / "knowledge")
    assert [p.format() for p in problems if p.severity == "error"] == []


def test_every_problem_is_reported_with_line_and_entry(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "entries:\n" + entry("first", TEN + ["住所を変えたい"])
          + entry("second", ["じゅうしょをかえたい！", "住所を、変えたい"], related="    related: [nope]\n",
                  title="とても長いタイトルなのでボタンに収まりませんよ本当に") + "  - id: Bad_Id\n")
    write(tmp_path, "b.yml", "entries:\n" + entry("first", TEN))
    problems = validate_knowledge(tmp_path, check_published=False)
    text = "\n".join(p.format(tmp_path) for p in problems)
    errors = [p for p in problems if p.severity == "error"]
    assert {p.entry for p in errors} >= {"Bad_Id", "first", "second"}
    assert "faq/a.yml:" in text and "（エントリ: second）" in text
    assert "related の「nope」" in text
    assert "複数のエントリ（first, second）" in text  # 住所、を変えたい == 住所を変えたい after normalisation
    assert "b.yml" in text and "でも使われています" in text
    warnings = [p.problem for p in problems if p.severity == "warning"]
    assert any("質問例が 2 件" in w for w in warnings) and any("タイトルが" in w for w in warnings)
    line_of_second = next(p.line for p in problems if p.entry == "second")
    source = (tmp_path / "faq" / "a.yml").read_text(encoding="utf-8").splitlines()
    assert source[line_of_second - 1].strip() == "- id: second"


def test_near_duplicates_are_warnings(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "entries:\n" + entry("one", TEN + ["パスワードを忘れてしまいました"])
          + entry("two", TEN[:0] + [f"別の質問{i}です" for i in range(10)] + ["パスワードを忘れてしまいましたー"]))
    problems = validate_knowledge(tmp_path, check_published=False)
    assert [p.severity for p in problems if "ほぼ同じ" in p.problem] == ["warning"]


def test_a_published_id_that_disappears_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "entries:\n" + entry("kept", TEN) + entry("renamed", [f"別{i}" for i in range(10)]))
    run = lambda *args: subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("add", ".")
    run("-c", "user.email=t@example.jp", "-c", "user.name=t", "commit", "-qm", "published")
    write(tmp_path, "a.yml", "entries:\n" + entry("kept", TEN) + entry("new-name", [f"別{i}" for i in range(10)]))
    problems = validate_knowledge(tmp_path)
    assert [(p.severity, p.entry) for p in problems if "公開済み" in p.problem] == [("error", "renamed")]


def test_cli_exit_code_and_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, "a.yml", "entries:\n  - id: x\n   bad: indent\n")
    assert main(["kb", "validate", "--kb", str(tmp_path)]) == 1
    assert "書き方が正しくない" in capsys.readouterr().err
    write(tmp_path, "a.yml", "entries:\n" + entry("ok", TEN))
    assert main(["kb", "validate", "--kb", str(tmp_path), "--json"]) == 0
    assert '"errors": 0' in capsys.readouterr().out


LONG_PROBLEM = ("回答が 1,472 文字あります（目安は 400 文字以内）。ウィジェットでは長い回答は約 300 文字で折りたたまれ、"
                "お客さまが「続きを読む」を押すまで残りは表示されません。")
LONG_FIX = "大事なことを最初の数行に書き、要点に絞って短くするか、詳しい説明はリンク先に移してください。"


def test_long_answer_is_a_warning_not_an_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write(tmp_path, "a.yml", "entries:\n" + entry("long", TEN).replace("回答です。", "あ" * 1472)
          + entry("limit", [f"別の質問{i}です" for i in range(10)]).replace("回答です。", "い" * 400))
    problems = validate_knowledge(tmp_path, check_published=False)
    assert [(p.severity, p.line, p.entry, p.problem, p.fix) for p in problems] == [
        ("warning", 2, "long", LONG_PROBLEM, LONG_FIX)]  # 400 characters exactly: no warning
    assert main(["kb", "validate", "--kb", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"[注意] {tmp_path / 'faq' / 'a.yml'}:2（エントリ: long）: {LONG_PROBLEM} 対処: {LONG_FIX}" in out
    assert "エラー 0 件、注意 1 件。公開できます。" in out


def test_absurdly_long_answer_is_still_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "entries:\n" + entry("huge", TEN).replace("回答です。", "あ" * 10_001))
    problems = validate_knowledge(tmp_path, check_published=False)
    assert [(p.severity, p.entry, p.problem) for p in problems] == [
        ("error", "huge", "回答が 10,001 文字あります（上限 10,000 文字）。")]
    assert main(["kb", "validate", "--kb", str(tmp_path)]) == 1


def test_same_question_in_two_entries_names_every_place(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "entries:\n" + entry("one", TEN + ["住所を変えたい"]))
    write(tmp_path, "b.yml", "entries:\n" + entry("two", [f"別の質問{i}です" for i in range(10)] + ["住所を、変えたい"]))
    problems = validate_knowledge(tmp_path, check_published=False)
    assert [(p.severity, p.path.name, p.line, p.entry, p.problem, p.fix) for p in problems] == [
        ("error", "b.yml", 2, "two", "質問例「住所を、変えたい」が複数のエントリ（one, two）にあります（one: a.yml:2, two: b.yml:2）。",
         "どのエントリの質問か決めて、ほかのエントリからは消してください（同じ内容の FAQ なら1つにまとめてください）。")]
