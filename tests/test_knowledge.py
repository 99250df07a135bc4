"""Knowledge loading: the real knowledge base, and errors that name file, entry and fix."""

from pathlib import Path
from textwrap import dedent

import pytest

from bot.errors import KnowledgeError
from bot.knowledge.build import build
from bot.knowledge.loader import MAX_ANSWER_CHARS, load_knowledge
from bot.settings import PROJECT_ROOT

REQUIRED_IDS = {
    "change-address", "change-phone", "change-email", "change-name", "change-payment",
    "reset-password", "change-plan", "cancel", "hours", "pricing", "contact", "invoice",
    "payment-methods", "trial", "inquiry-status", "feedback",
}

QUESTIONS = "\n".join(f"      - 質問その{i}" for i in range(10))


def write_kb(tmp_path: Path, body: str, name: str = "test.yml") -> Path:
    faq = tmp_path / "faq"
    faq.mkdir(exist_ok=True)
    (faq / name).write_text(dedent(body), encoding="utf-8")
    return tmp_path


def entry(entry_id: str = "a-b", answer: str = "回答です。", extra: str = "") -> str:
    return f"""\
  - id: {entry_id}
    category: テスト
    title: テスト
    questions:
{QUESTIONS}
    answer: {answer}
{extra}"""


def test_real_knowledge_base_has_required_entries() -> None:
    kb = load_knowledge(PROJECT_ROOT / "knowledge")
    assert REQUIRED_IDS <= set(kb.ids)
    for e in kb.entries:
        assert len(e.questions) >= 10, e.id
        assert len(e.answer) <= MAX_ANSWER_CHARS, e.id  # over LONG_ANSWER_CHARS is only a warning of validate
        assert len(set(e.questions)) == len(e.questions), f"{e.id}: duplicated question"


def test_generated_files_are_fresh() -> None:
    """data/nlu/faq.yml, FAQ rules and domain intents match knowledge/ (run `bot kb build`)."""
    kb = load_knowledge(PROJECT_ROOT / "knowledge")
    assert build(kb, PROJECT_ROOT, check=True).stale == []


def test_valid_minimal_file(tmp_path: Path) -> None:
    kb = load_knowledge(write_kb(tmp_path, "entries:\n" + entry()))
    assert kb.ids == ["a-b"]
    assert kb.by_intent("faq_a_b").id == "a-b"


@pytest.mark.parametrize(
    ("body", "entry_named", "words"),
    [
        ("entries:\n" + entry(entry_id="Bad_ID"), "Bad_ID", "半角英小文字"),
        ("entries:\n" + entry().replace("    answer: 回答です。\n", ""), "a-b", "`answer` がありません"),
        ("entries:\n" + entry().replace(QUESTIONS, "      - '   '"), "a-b", "質問例がありません"),
        ("entries:\n" + entry(answer="あ" * 10_001), "a-b", "回答が 10,001 文字あります（上限 10,000 文字）"),
        ("entries:\n" + entry(answer="'   '"), "a-b", "`answer` がありません"),
        ("entries:\n" + entry(extra="    related: [no-such-id]\n"), "a-b", "no-such-id"),
        ("entries:\n" + entry(extra="    links:\n      - title: x\n        url: javascript:alert(1)\n"),
         "a-b", "http(s)"),
        ("entries:\n" + entry() + entry(), "a-b", "でも使われています"),
        ("entries: [1, 2]\n", "1番目", "id"),
        ("just: text\n", None, "「entries:」"),
        ("entries:\n  - id: x\n   bad: indent\n", None, "書き方が正しくない"),
    ],
)
def test_errors_name_file_entry_and_fix(tmp_path: Path, body: str, entry_named: str | None, words: str) -> None:
    directory = write_kb(tmp_path, body)
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(directory)
    message = str(info.value)
    assert "test.yml" in message
    if entry_named:
        assert entry_named in message
    assert words in message
    assert "対処:" in message


def test_missing_directory_is_explained(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="見つかりません"):
        load_knowledge(tmp_path)


def test_not_utf8_is_explained(tmp_path: Path) -> None:
    faq = tmp_path / "faq"
    faq.mkdir()
    (faq / "sjis.yml").write_bytes(("entries:\n" + entry()).encode("cp932"))
    with pytest.raises(KnowledgeError, match="UTF-8"):
        load_knowledge(tmp_path)


def test_long_answer_loads(tmp_path: Path) -> None:
    """Real FAQ tables have answers of over 1,000 characters: a warning of `bot kb validate`, not a load error."""
    answer = "窓口で申請書をご記入のうえ、本人確認書類をご提示ください。" * 60
    kb = load_knowledge(write_kb(tmp_path, "entries:\n" + entry(answer=answer[:1472])))
    assert len(kb.get("a-b").answer) == 1472
    (tmp_path / "faq" / "test.yml").write_text("entries:\n" + entry(answer="あ" * 10_000), encoding="utf-8")
    assert len(load_knowledge(tmp_path).get("a-b").answer) == 10_000  # the hard cap itself is fine


def test_editors_are_told_where_the_widget_folds() -> None:
    """LONG_ANSWER_REASON says 「約 300 文字で折りたたまれ」: the widget's FOLD_CHARS must agree."""
    import re

    from bot.knowledge.loader import LONG_ANSWER_REASON, WIDGET_FOLD_CHARS

    widget = (PROJECT_ROOT / "bot" / "server" / "static" / "widget" / "widget.js").read_text(encoding="utf-8")
    found = re.search(r"const FOLD_CHARS = (\d+);", widget)
    assert found and int(found.group(1)) == WIDGET_FOLD_CHARS
    assert f"{WIDGET_FOLD_CHARS} 文字で折りたたまれ" in LONG_ANSWER_REASON and "「続きを読む」" in widget


def test_faq_examples_are_capped_round_robin_over_entries() -> None:
    from bot.knowledge.build import faq_examples
    from bot.knowledge.model import FaqEntry, KnowledgeBase

    kb = KnowledgeBase(entries=(
        FaqEntry(id="a", category="c", title="a", questions=("a1", "a2", "a3"), answer="x"),
        FaqEntry(id="b", category="c", title="b", questions=("b1", "a1", "b\n2"), answer="x"),
    ))
    assert faq_examples(kb, 10) == ["a1", "b1", "a2", "a3", "b 2"]  # distinct, one line each
    assert faq_examples(kb, 3) == ["a1", "b1", "a2"]  # every entry's first question comes first
