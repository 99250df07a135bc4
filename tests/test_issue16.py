"""Issue #16 ("One voice and one set of facts"): one table row per finding, each asserting its fix.

Findings 4 and 7 partly live in files of the handoff restructuring (bot/server/gateway_base.py,
bot/store/): their wording is in bot/wording.py and checked here, and those files use it.
Finding 15 is checked statically here and in a browser by tests/test_accessibility.py.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Callable

import pytest
import yaml

from bot import wording
from bot.dialogue.replies import answer_reply, staffed_handoff_reply
from bot.knowledge.facts import load_facts
from bot.knowledge.loader import LONG_ANSWER_CHARS, load_knowledge
from bot.settings import PROJECT_ROOT
from bot.triage.hours import JST, load_hours

KB = load_knowledge(PROJECT_ROOT / "knowledge")
FACTS = load_facts(PROJECT_ROOT / "knowledge")
HOURS = load_hours(PROJECT_ROOT / "knowledge" / "hours.yml")
HOLIDAY = dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST)  # 勤労感謝の日: nobody on duty
DOMAIN = {name: v[0]["text"] for name, v in
          yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"].items()}
PHONE, STAFFED = FACTS.get("phone"), FACTS.get("hours.staffed")
WIDGET = wording.widget_text(PROJECT_ROOT / "knowledge")


def case_1_out_of_hours_handoff_keeps_its_promise() -> None:
    for reason in ("human_request", "complaint", "anger", "unresolved"):
        text = staffed_handoff_reply(reason, HOURS, HOLIDAY).text
        assert "受付時間外" in text and "フォーム" in text and "ご連絡先" in text
        assert "おつなぎします" not in text and "少々お待ちください" not in text
        # The call-back is promised only once contact details are given.
        assert text.index("ご連絡先") < text.index("ご連絡いたします")
        assert "11月24日（火）9:00以降" in text and "09:00" not in text
    assert "受付時間外" in WIDGET["contactIntro"] and STAFFED in WIDGET["contactIntro"]


def case_2_demo_page_describes_the_faqs_service() -> None:
    page = (PROJECT_ROOT / "bot/server/static/demo/index.html").read_text(encoding="utf-8")
    assert "年会費は無料" not in page and "ポイント" not in page and "「登録情報」" not in page
    for name in ("plans.light.monthly", "plans.standard.yearly", "phone", "trial.after"):
        assert FACTS.get(name) in page


def case_3_missing_and_conflicting_facts() -> None:
    assert "有料会員に切り替わり" in KB.get("trial").answer
    assert "年払いの場合" in KB.get("cancel").answer
    assert "PayPayなど" not in KB.get("change-payment").answer
    assert FACTS.get("payment.short") in KB.get("change-payment").answer


def case_4_failures_apologise_and_give_a_way_forward() -> None:
    failures = [wording.gateway_text(10_000)["bot_down"], wording.gateway_text(10_000)["bot_slow"],
                wording.gateway_text(10_000)["too_many_tickets"],
                WIDGET["genericError"], WIDGET["unavailable"]]
    for text in failures:
        assert text.startswith("申し訳ございません。")
        assert PHONE in text and STAFFED in text
    # The gateway fills only these itself (gateway_base.TEXT = wording.gateway_text(MAX_MESSAGE_CHARS)).
    for text in wording.gateway_text(10_000).values():
        assert set(re.findall(r"\{(\w+)", text)) <= {"name", "seconds", "new", "old"}, text
    for text in list(wording.CHAT_ERRORS.values()) + [WIDGET["notConnected"]]:
        assert text.startswith("申し訳ございません。") and "ください" in text  # what to do next
    from bot.server.gateway import MAX_MESSAGE_CHARS, TEXT

    assert dict(TEXT) == dict(wording.gateway_text(MAX_MESSAGE_CHARS))  # the gateway shows these texts
    late = TEXT["contact_after_resolved"]  # contact form sent after the agent closed the ticket
    assert late.startswith("申し訳ございません。") and "ご連絡先はお預かり" in late and late.endswith("お書きください。")


def case_5_out_of_scope_and_fallback_lead_somewhere() -> None:
    texts = [wording.OUT_OF_SCOPE_TEXT, DOMAIN["utter_default"], wording.CLARIFY_TEXT]
    for text in texts:
        for dead_end in ("そのご質問にはお答えできません。", "確かめさせてください", "言い換えていただく"):
            assert dead_end not in text
    assert "「担当者と話したい」" in wording.OUT_OF_SCOPE_TEXT and "「担当者と話したい」" in DOMAIN["utter_default"]


def case_6_register_does_not_slip() -> None:
    texts = list(DOMAIN.values()) + [wording.OFFER_HUMAN_TEXT, wording.NOT_HELPFUL_TEXT, *wording.HANDOFF_TEXT.values()]
    for text in texts:
        assert "どういたしまして" not in text and "承知しました" not in text and "申し訳ありません" not in text


def case_7_no_internal_words_in_customer_errors() -> None:
    customer = [*wording.CHAT_ERRORS.values(), *wording.STORE_CUSTOMER_TEXT.values(),
                *(v for k, v in wording.GATEWAY_TEXT.items() if k not in ("not_your_ticket", "took_over"))]
    for text in customer:
        assert "チケット" not in text and "引き継ぎはありません" not in text
        assert not re.search(r"メッセージ \{?\w*\}? への|claimed|resolved|open\b", text)
    agent = wording.STORE_AGENT_TEXT["not_waiting"].format(ticket_id=12, status_ja=wording.TICKET_STATUS_JA["claimed"])
    assert agent == "お問い合わせ 12 は対応待ちではありません（いまの状態: 対応中）。画面を更新してください。"


def case_8_a_url_once_per_bubble() -> None:
    for entry in KB.entries:
        text = answer_reply(entry).text
        for url in set(re.findall(r"https?://\S+", text)):
            assert text.count(url) == 1, entry.id
        assert all(f"▶ {link.title}はこちら: {link.url}" in text for link in entry.links)


def case_9_one_name_for_one_thing() -> None:
    from bot.knowledge.style import AGENT, CUSTOMER, load_style, style_problems

    terms = load_style(PROJECT_ROOT / "knowledge")
    for variant, reader in (("営業時間外", CUSTOMER), ("自動応答", CUSTOMER), ("ボット", CUSTOMER),
                            ("オペレーター", AGENT), ("エージェント", AGENT), ("お客様", AGENT), ("チケット 12", AGENT)):
        assert style_problems(variant, terms, reader), variant


def case_10_feedback_promises_no_forwarding() -> None:
    answer = KB.get("feedback").answer
    assert "チャットにそのままご入力いただいても" not in answer and "担当チームには届きません" in answer


def case_11_agents_see_a_decision_in_japanese() -> None:
    from bot.server.serialize import entry_json
    from bot.store.models import TranscriptEntry

    assert wording.decision_label("faq_change_address", 0.53, KB) == "ボットの判定: 住所を変更したい（確からしさ 53%）"
    assert wording.decision_label("nlu_fallback", 0.31, KB) == "ボットの判定: 判定できず"
    entry = TranscriptEntry(id=1, position=0, sender="customer", text="住所", intent="faq_change_address",
                            confidence=0.53, at=HOLIDAY)
    assert entry_json(entry)["decision"] == "ボットの判定: 住所を変更したい（確からしさ 53%）"
    # The transcript's entries are rendered by dom.js (shared by the console and the supervisor view).
    console = "".join((PROJECT_ROOT / "bot/server/static/console" / name).read_text(encoding="utf-8")
                      for name in ("console.js", "dom.js"))
    assert "entry.decision" in console and "確信度" not in console and "意図:" not in console


def case_12_eval_prints_japanese_labels_with_targets() -> None:
    from bot.evaluation.report import EvalResult, format_table

    table = format_table(EvalResult(10, 0.9, 0.8, 0.9, 0.9, 0.01, 0.86, 0.1))
    assert "怒り・苦情を担当者に引き継いだ割合: 0.86（目標 0.98 以上）" in table
    assert "通常の質問を担当者に引き継いだ割合: 0.01（目標 0.02 以下）" in table
    triage = (PROJECT_ROOT / "knowledge/triage.yml").read_text(encoding="utf-8")
    assert "怒り・苦情を担当者に引き継いだ割合" in triage and "再現率" not in triage


def case_13_fact_sheet_style_list_and_one_length_rule() -> None:
    for name in ("facts.yml", "style.yml"):
        assert (PROJECT_ROOT / "knowledge" / name).exists()
    for path in (PROJECT_ROOT / "knowledge" / "faq").glob("*.yml"):
        header = path.read_text(encoding="utf-8").split("entries:")[0]
        assert "fact sheet" not in header and "ファクトシート" in header
        assert "350" not in header and f"{LONG_ANSWER_CHARS} 文字以内" in header


def case_14_editor_messages_are_plain_japanese(tmp_path: Path) -> None:
    from bot.knowledge.spreadsheet.common import ImportReport
    from bot.knowledge.validate import validate_knowledge

    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "a.yml").write_text("entries:\n  - id: x\n   bad: indent\n", encoding="utf-8")
    (problem,) = validate_knowledge(tmp_path, check_published=False)
    assert "書き方が正しくない" in problem.problem and not re.search(r"[A-Za-z]{4,}", problem.problem + problem.fix
                                                                   .replace("answer", ""))
    source = (PROJECT_ROOT / "bot/knowledge/validate.py").read_text(encoding="utf-8")
    for jargon in ("分類器", "類似度", "トップレベル"):
        assert jargon not in source
    report = ImportReport(sheet=Path("FAQ.xlsx"), kb_dir=Path("knowledge"), changed=["pricing"],
                          written=[Path("knowledge/faq/service.yml")])
    assert "make train" not in report.summary() and "再学習は不要" in report.summary()
    analytics = (PROJECT_ROOT / "docs/analytics.md").read_text(encoding="utf-8")
    assert "ポイント" not in analytics and "「領収書ほしい」" not in analytics


def case_15_console_accessibility_and_readme_screenshots() -> None:
    """Static half; the browser half (axe-core, 0 WCAG 2.1 AA violations) is tests/test_accessibility.py."""
    import json

    console = (PROJECT_ROOT / "bot/server/static/console/index.html").read_text(encoding="utf-8")
    transcript = re.search(r"<ol id=\"transcript\"[^>]*>", console).group(0)
    assert 'tabindex="0"' in transcript and "role=" not in transcript  # keyboard-scrollable, still a list
    lock = json.loads((PROJECT_ROOT / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/axe-core"]["version"] == json.loads(
        (PROJECT_ROOT / "package.json").read_text(encoding="utf-8"))["devDependencies"]["axe-core"]
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/images/widget.png" not in readme and "docs/images/conversation-3-handoff.png" in readme


CASES: list[Callable[..., None]] = [
    case_1_out_of_hours_handoff_keeps_its_promise, case_2_demo_page_describes_the_faqs_service,
    case_3_missing_and_conflicting_facts, case_4_failures_apologise_and_give_a_way_forward,
    case_5_out_of_scope_and_fallback_lead_somewhere, case_6_register_does_not_slip,
    case_7_no_internal_words_in_customer_errors, case_8_a_url_once_per_bubble, case_9_one_name_for_one_thing,
    case_10_feedback_promises_no_forwarding, case_11_agents_see_a_decision_in_japanese,
    case_12_eval_prints_japanese_labels_with_targets, case_13_fact_sheet_style_list_and_one_length_rule,
    case_14_editor_messages_are_plain_japanese, case_15_console_accessibility_and_readme_screenshots,
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_issue_16(case: Callable[..., None], tmp_path: Path) -> None:
    if "tmp_path" in case.__code__.co_varnames[:case.__code__.co_argcount]:
        case(tmp_path)
    else:
        case()
