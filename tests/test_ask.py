"""`bot ask` on a model trained from the working tree (slow: trains once per session)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow

KEYS = {"text", "normalized", "intent", "confidence", "route", "faq_id", "answer", "handoff_reason"}


@pytest.mark.parametrize(
    ("text", "route", "faq_id"),
    [
        ("住所を変えたい", "answer", "change-address"),
        ("じゅうしょへんこう", "answer", "change-address"),
        ("ﾊﾟｽﾜｰﾄﾞ忘れちゃった", "answer", "reset-password"),
        ("メアド変えたいんだけど", "answer", "change-email"),
        ("営業時間を教えてください", "answer", "hours"),
        ("プランの料金はいくらですか", "answer", "pricing"),
        ("退会したいです", "answer", "cancel"),
        ("請求書をダウンロードしたい", "answer", "invoice"),
        ("無料お試しはありますか", "answer", "trial"),
        ("問い合わせの返事がまだ来ません", "answer", "inquiry-status"),
        ("こんにちは", "smalltalk", None),
        ("ありがとうございました", "smalltalk", None),
        ("あなたはロボットですか", "smalltalk", None),
        ("オペレーターと話したいです", "handoff", None),
        ("今日の天気は？", "out_of_scope", None),
    ],
)
def test_typical_questions(assistant, text: str, route: str, faq_id: str | None) -> None:  # type: ignore[no-untyped-def]
    decision = assistant.decide(text).as_dict()
    assert KEYS <= set(decision)
    assert (decision["route"], decision["faq_id"]) == (route, faq_id), decision


def test_anger_beats_topic(assistant) -> None:  # type: ignore[no-untyped-def]
    decision = assistant.decide("二回も住所変更したのに反映されてない、ふざけるな")
    assert decision.route == "handoff"
    assert decision.handoff_reason == "anger"
    assert decision.faq_id is None


@pytest.mark.parametrize(
    ("text", "route", "faq_id"),
    [
        ("", "clarify", None),  # empty: asked to type a question, main topics offered
        ("   \n\t ", "clarify", None),  # only spaces
        ("😀😀😀", "clarify", None),  # only emoji
        ("(´・ω・｀)", "clarify", None),  # only a kaomoji
        ("〜〜〜", "clarify", None),
        ("\x00\x07\x1b", "clarify", None),  # control characters
        ("<script>alert('x')</script>", "clarify", None),  # code is dropped: nothing left
        ("def f(x): return x * 2", "out_of_scope", None),  # code as text
        ("<b>住所を変更したい</b>", "answer", "change-address"),  # markup around a question
        ("住\u200b所\u200bを変えたい", "answer", "change-address"),  # zero-width characters
        ("ｊｕｕｓｈｏ ｈｅｎｋｏｕ ｓｈｉｔａｉ", "answer", "change-address"),  # full-width romaji
        ("住所をchangeしたい", "answer", "change-address"),  # mixed scripts
        ("https://members.mirai-net.example/mypage", "clarify", None),  # a URL alone
        ("I want to change my address", "offer_human", None),  # English: said in English, person offered
        ("/restart", "smalltalk", None),
        ("/back", "smalltalk", None),
    ],
    ids=lambda value: repr(value)[:30] if isinstance(value, str) else None,
)
def test_bad_input_gets_its_route_and_a_reply(assistant, text: str, route: str, faq_id: str | None) -> None:  # type: ignore[no-untyped-def]
    decision = assistant.decide(text)
    assert (decision.route, decision.faq_id) == (route, faq_id), decision
    assert decision.answer.strip()


def test_ten_thousand_characters_are_read_from_the_start(assistant) -> None:  # type: ignore[no-untyped-def]
    """The question at the start is found; the rest of the message (「あ」 × 10,000) reads as
    chatter to the classifier, so the bot asks back with the entry first and says it read only the
    start (an everyday-looking message is at most asked back: config.yml ``everyday_answer``)."""
    decision = assistant.decide("住所を変えたい" + "あ" * 10_000)
    assert decision.route == "clarify" and decision.suggestions[0] == "change-address", decision
    assert "最初の" in decision.answer and "文字までを読んで" in decision.answer, decision.answer


@pytest.mark.parametrize(
    ("text", "route", "intent"),
    [
        # Issue #9's examples of messages that are not (yet) a question.
        ("このサービスって何ができるの？", "clarify", "preamble"),
        ("ちょっと聞きたいことがあるんですが", "clarify", "preamble"),
        ("質問です", "clarify", "preamble"),
        ("もういいです", "offer_human", "give_up"),
        ("わからないならいいです", "offer_human", "give_up"),
        ("それじゃなくて", "clarify", "not_that"),
        ("How do I change my address?", "offer_human", "non_japanese"),
        ("我想修改地址", "offer_human", "non_japanese"),
        ("주소를 바꾸고 싶어요", "offer_human", "non_japanese"),
        ("今日は天気がいいので散歩してきました", "out_of_scope", "out_of_scope"),
        ("電車が遅れて最悪", "out_of_scope", "out_of_scope"),  # anger, but not about us
    ],
)
def test_conversation_moves_and_other_languages(assistant, text: str, route: str, intent: str) -> None:  # type: ignore[no-untyped-def]
    decision = assistant.decide(text)
    assert (decision.route, decision.intent) == (route, intent), decision
    assert decision.answer.strip()


def test_other_languages_are_answered_in_that_language_and_japanese(assistant) -> None:  # type: ignore[no-untyped-def]
    english = assistant.decide("How do I change my address?").answer
    assert "Japanese" in english and "日本語" in english and "https://" in english
    assert "日本語" in assistant.decide("我想修改地址").answer and "仅支持日语" in assistant.decide("我想修改地址").answer


def test_over_long_input_is_cut_with_a_note(assistant) -> None:  # type: ignore[no-untyped-def]
    decision = assistant.decide("住所を変えたいです。" + "詳細" * 6000)
    assert len(decision.normalized) <= 1000
    assert "最初の1000文字" in decision.answer


def test_clarify_suggests_three_faqs(assistant) -> None:  # type: ignore[no-untyped-def]
    decision = assistant.decide("")
    assert decision.route == "clarify"
    assert len(decision.suggestions) == 3


def test_cli_jsonl_keeps_order_and_ignores_other_keys(trained_model: Path, tmp_path: Path) -> None:
    lines = [{"text": "住所を変えたい", "label": "x"}, {"text": "こんにちは"}, {"text": ""}]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "--model", str(trained_model), "--jsonl", str(src)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["text"] for o in out] == [x["text"] for x in lines]
    assert [o["route"] for o in out] == ["answer", "smalltalk", "clarify"]


def test_cli_single_question_prints_one_json_object(trained_model: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "--model", str(trained_model), "解約したい"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (line,) = result.stdout.strip().splitlines()
    assert json.loads(line)["faq_id"] == "cancel"


def test_cli_malformed_jsonl_names_the_line(trained_model: Path, tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "ask", "--model", str(trained_model), "--jsonl", str(src)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "bad.jsonl:2" in result.stderr and "Traceback" not in result.stderr
