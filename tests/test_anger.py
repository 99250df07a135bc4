"""Anger scoring rules (knowledge/triage.yml) without a model."""

from pathlib import Path

import pytest

from bot.errors import KnowledgeError
from bot.settings import PROJECT_ROOT
from bot.triage.anger import AngerRules, load_anger_rules, score_anger

RULES = load_anger_rules(PROJECT_ROOT / "knowledge" / "triage.yml")


@pytest.mark.parametrize(
    "text",
    [
        "二回も住所変更したのに反映されてない、ふざけるな",
        "ﾌｻﾞｹﾙﾅ",
        "責任者を出せ",
        "いい加減にしろよ！？",
        "こんなクソサービス二度と使わない",
        "対応が遅すぎて本当に腹が立ちます",
        "何度も問い合わせてるのに放置ってどういうこと？？？",
        "ぼったくりだろ",
        "😡😡😡",
    ],
)
def test_angry_messages_reach_threshold_by_rules_alone(text: str) -> None:
    assert score_anger(text, 0.0, RULES).score >= RULES.threshold, text


@pytest.mark.parametrize(
    "text",
    [
        "住所を変更したいです",
        "パスワードを忘れてしまって困っています",
        "ﾊﾟｽﾜｰﾄﾞ忘れた",
        "カードの有効期限が切れたので変えたい",
        "毎月のボックスを楽しみにしています！",
        "料金はいくらですか？",
        "解約したいです",
        "引っ越したばかりなので住所を変えたい",
        "最低利用期間はありますか",
        "契約責任者を変更したい",
        "前のメールアドレスが使えない状態でも変更できますか",
        "ごみの分別が楽になりました",
        "",
    ],
)
def test_ordinary_messages_stay_below_threshold(text: str) -> None:
    assert score_anger(text, 0.0, RULES).score < RULES.threshold, text


def test_model_probability_combines_with_rules() -> None:
    rules = AngerRules(threshold=0.6, model_weight=1.0, phrases={"ひどい": 0.5})
    assert score_anger("ひどい", 0.0, rules).score == pytest.approx(0.5)
    assert score_anger("ひどい", 0.5, rules).score == pytest.approx(0.75)
    assert score_anger("普通の質問", 0.5, rules).score == pytest.approx(0.5)


def test_signals_explain_the_score() -> None:
    result = score_anger("ふざけるな！？", 0.0, RULES)
    assert "ふざけるな" in result.signals
    assert any(s.startswith("/") for s in result.signals)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("anger:\n  threshold: 2\n", "0〜1"),
        ("anger:\n  phrases:\n    ひどい: many\n", "0〜1"),
        ("anger:\n  patterns:\n    '(': 0.5\n", "正規表現"),
        ("other: 1\n", "`anger:`"),
    ],
)
def test_bad_triage_file_is_explained(tmp_path: Path, body: str, words: str) -> None:
    path = tmp_path / "triage.yml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(KnowledgeError) as info:
        load_anger_rules(path)
    assert "triage.yml" in str(info.value) and words in str(info.value)


def test_no_faq_training_question_looks_angry_to_the_rules() -> None:
    """Editors' phrases must not send the FAQ's own example questions to a person."""
    from bot.knowledge.loader import load_knowledge

    kb = load_knowledge(PROJECT_ROOT / "knowledge")
    angry = [(e.id, q) for e in kb.entries for q in e.questions
             if score_anger(q, 0.0, RULES).score >= RULES.threshold]
    assert angry == []


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        ("クソ", True),
        ("ポンコツ！！", True),
        ("ｻｲﾃｰ", True),
        ("最低！", True),  # a pattern counts like a phrase
        ("電車遅れて最悪", False),  # names what it is about
        ("このサービス最悪", False),  # names it too: the classifier decides whose
        ("住所変更したい", False),  # no angry words at all
    ],
)
def test_bare_insult_is_little_more_than_its_angry_words(text: str, bare: bool) -> None:
    assert score_anger(text, 0.0, RULES).bare is bare


@pytest.mark.parametrize(
    ("text", "angry"),
    [
        ("ｶﾈｶｴｾ", True),  # 金返せ typed in kana
        ("かねかえせ！", True),
        ("うさぎかわいい", False),  # 詐欺's reading さぎ is too short to match inside other words
        ("いかんなあ、寝坊した", False),  # nor 遺憾's いかん
        ("こうぎに出る", False),  # nor 抗議's こうぎ
    ],
)
def test_kanji_phrases_also_match_long_kana_readings(text: str, angry: bool) -> None:
    assert (score_anger(text, 0.0, RULES).score >= RULES.threshold) is angry
