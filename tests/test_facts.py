"""The fact sheet (knowledge/facts.yml): placeholders resolve, and answers that contradict it fail validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.knowledge.facts import contradictions, load_facts
from bot.knowledge.loader import load_knowledge
from bot.knowledge.validate import validate_knowledge
from bot.settings import PROJECT_ROOT

FACTS = load_facts(PROJECT_ROOT / "knowledge")
TEN_QUESTIONS = "".join(f"      - 質問の言い方その{n}\n" for n in range(10))


def kb_with_answer(tmp_path: Path, answer: str, links: str = "") -> Path:
    """A knowledge folder with the project's fact sheet, style list and hours, and one entry."""
    (tmp_path / "faq").mkdir(parents=True)
    for name in ("facts.yml", "style.yml", "hours.yml"):
        shutil.copyfile(PROJECT_ROOT / "knowledge" / name, tmp_path / name)
    body = "\n".join("      " + line for line in answer.splitlines())
    (tmp_path / "faq" / "t.yml").write_text(
        "entries:\n  - id: t\n    category: テスト\n    title: テスト\n    questions:\n" + TEN_QUESTIONS
        + "    answer: |-\n" + body + "\n" + links, encoding="utf-8")
    return tmp_path


def errors(directory: Path) -> list[str]:
    return [p.problem for p in validate_knowledge(directory, check_published=False) if p.severity == "error"]


def test_placeholders_are_replaced_when_the_knowledge_loads() -> None:
    kb = load_knowledge(PROJECT_ROOT / "knowledge")
    assert "0120-000-123" in kb.get("contact").answer and "{phone}" not in kb.get("contact").answer
    assert "1,980円" in kb.get("pricing").answer
    assert "9:00〜18:00" in kb.get("hours").answer
    assert not any("{" in e.answer for e in kb.entries)


def test_spreadsheet_round_trip_keeps_the_placeholders() -> None:
    raw = load_knowledge(PROJECT_ROOT / "knowledge", resolve_facts=False)
    assert "{phone}" in raw.get("contact").answer


def test_unknown_placeholder_names_the_entry_and_the_fix(tmp_path: Path) -> None:
    directory = kb_with_answer(tmp_path, "お電話は {telephone} まで。")
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(directory)
    assert "{telephone}" in str(info.value) and "facts.yml" in str(info.value)
    assert any("{telephone}" in p for p in errors(directory))


# Issue #16 item 3: the facts that were missing or conflicting are on the sheet and in the answers.
@pytest.mark.parametrize(("faq_id", "words"), [
    ("trial", ["無料期間が終わると", "自動的に", "有料会員に切り替わり", "最終日までに"]),
    ("cancel", ["年払いの場合", "返金はございません", "月払いの場合"]),
    ("change-payment", ["クレジットカード・口座振替・コンビニ払い・PayPay"]),
    ("payment-methods", ["PayPay", "上記の4つの方法のみ"]),
    ("feedback", ["ご意見フォーム", "担当チームには届きません"]),  # item 10: no forwarding promised
])
def test_missing_facts_are_stated(faq_id: str, words: list[str]) -> None:
    answer = load_knowledge(PROJECT_ROOT / "knowledge").get(faq_id).answer
    for word in words:
        assert word in answer, (faq_id, word)
    assert "など" not in answer or faq_id != "change-payment"


def test_the_projects_answers_agree_with_the_fact_sheet() -> None:
    kb = load_knowledge(PROJECT_ROOT / "knowledge")
    for entry in kb.entries:
        assert contradictions(entry.answer, FACTS) == [], entry.id
        for link in entry.links:
            assert contradictions(link.url, FACTS) == [], (entry.id, link.url)
            assert link.url not in entry.answer, entry.id  # item 8: a URL once, under the answer


# Both ways: each literal fact passes when it is the sheet's value and fails when it is not.
@pytest.mark.parametrize(("good", "bad", "word"), [
    ("スタンダードプランは月額1,980円です。", "スタンダードプランは月額1,890円です。", "1,890円"),
    ("お電話（0120-000-123）でどうぞ。", "お電話（0120-000-321）でどうぞ。", "0120-000-321"),
    ("受付は平日 9:00〜18:00 です。", "受付は平日 9:00〜17:00 です。", "17:00"),
    ("メール: support@mirai-net.example", "メール: help@mirai-net.example", "help@mirai-net.example"),
    ("詳しくは https://members.mirai-net.example/contact をご覧ください。",
     "詳しくは https://members.mirai-net.example/otoiawase をご覧ください。", "otoiawase"),
    ("料金は {plans.standard.monthly}円 です。", "料金は 2,200円 です。", "2,200円"),
])
def test_validate_fails_on_a_contradicting_answer_and_passes_the_right_one(
        tmp_path: Path, good: str, bad: str, word: str) -> None:
    assert errors(kb_with_answer(tmp_path / "good", good)) == []
    found = errors(kb_with_answer(tmp_path / "bad", bad))
    assert len(found) == 1 and word in found[0] and "facts.yml" in found[0]


def test_a_leading_zero_time_is_named_with_the_fix(tmp_path: Path) -> None:
    problems = [p for p in validate_knowledge(kb_with_answer(tmp_path, "受付は 09:00 からです。"), check_published=False)
                if p.severity == "error"]
    assert any("「9:00」のように" in p.fix for p in problems)


def test_a_url_in_the_answer_and_again_as_a_link_is_an_error(tmp_path: Path) -> None:
    links = "    links:\n      - title: マイページ\n        url: https://members.mirai-net.example/mypage\n"
    twice = kb_with_answer(tmp_path / "twice", "1. マイページ（https://members.mirai-net.example/mypage）を開きます。", links)
    once = kb_with_answer(tmp_path / "once", "1. 下の「マイページ」を開きます。", links)
    assert any("両方にあります" in p for p in errors(twice))
    assert errors(once) == []


def test_staffed_hours_must_agree_with_hours_yml(tmp_path: Path) -> None:
    directory = kb_with_answer(tmp_path, "テストの回答です。")
    hours = directory / "hours.yml"
    hours.write_text(hours.read_text(encoding="utf-8").replace('"09:00-18:00"', '"10:00-19:00"'), encoding="utf-8")
    assert any("hours.yml" in p for p in errors(directory))


def test_a_folder_without_its_own_fact_sheet_is_not_checked_against_ours(tmp_path: Path) -> None:
    """An imported city FAQ states its own fees and numbers; only its placeholders use our sheet."""
    directory = kb_with_answer(tmp_path, "住民票の写しは1通300円です。窓口 03-1234-5678。お客様の声もお寄せください。")
    (directory / "facts.yml").unlink()
    (directory / "style.yml").unlink()
    assert errors(directory) == []


def test_the_demo_page_is_rendered_from_the_fact_sheet() -> None:
    """Issue #16 item 2: the demo page and the FAQ describe the same service."""
    from bot.knowledge.build import DEMO_PAGE, WIDGET_JS, render_demo_page, render_widget_text

    page = (PROJECT_ROOT / DEMO_PAGE).read_text(encoding="utf-8")
    assert render_demo_page(page, FACTS.values) == page  # `bot kb build` has been run
    widget = (PROJECT_ROOT / WIDGET_JS).read_text(encoding="utf-8")
    assert render_widget_text(widget, PROJECT_ROOT / "knowledge") == widget
    for fact in ("plans.standard.monthly", "plans.premium.yearly", "phone", "hours.staffed", "trial.after",
                 "refund.yearly", "payment.methods"):
        assert FACTS.get(fact) in page, fact
    for stale in ("年会費は無料", "ポイント", "会員ランク", "「登録情報」"):
        assert stale not in page
    changed = render_demo_page(page, {**FACTS.values, "plans.standard.monthly": "2,180"})
    assert "2,180円" in changed and "<td>1,980円</td>" not in changed


def test_code_texts_take_the_phone_and_hours_from_the_fact_sheet(tmp_path: Path) -> None:
    """An edited phone number reaches the error texts (bot/wording.py) without a restart."""
    import os

    from bot import wording

    directory = kb_with_answer(tmp_path, "テストの回答です。")
    assert "0120-000-123" in wording.fallback_contact(directory)
    sheet = directory / "facts.yml"
    sheet.write_text(sheet.read_text(encoding="utf-8").replace("phone: 0120-000-123", "phone: 0120-999-888"),
                     encoding="utf-8")
    stat = sheet.stat()
    os.utime(sheet, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert "0120-999-888" in wording.fallback_contact(directory)
    assert "平日 9:00〜18:00" in wording.widget_text(directory)["unavailable"]
