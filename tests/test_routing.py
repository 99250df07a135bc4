"""The final routing decision (bot.triage.routing) and the language check, without a model."""

from dataclasses import dataclass

import pytest

from bot.text.language import detect_language
from bot.triage.routing import Anger, RoutingThresholds, route

TH = RoutingThresholds(answer=0.6, answer_margin=0.05, clarify=0.3, everyday_override=0.75, low_confidence=0.3,
                       everyday_gate=0.5, complaint_sure=0.9, problem_report=0.45)


@dataclass
class Hit:
    faq_id: str
    score: float


def hits(*scores: float) -> list[Hit]:
    return [Hit(f"e{i}", s) for i, s in enumerate(scores)]


@pytest.mark.parametrize(
    ("ranking", "scores", "want"),
    [
        # An FAQ question: the search's top score decides.
        ([("faq", 0.9)], (0.8, 0.4), ("faq", "e0", "answer")),
        ([("faq", 0.9)], (0.62, 0.6), ("nlu_fallback", None, "clarify")),  # no clear lead: ask back
        ([("faq", 0.9)], (0.45, 0.2), ("nlu_fallback", None, "clarify")),
        ([("faq", 0.9)], (0.1,), ("out_of_scope", None, "no_entry")),  # a question we have no entry for
        ([("faq", 0.9)], (), ("out_of_scope", None, "no_entry")),
        # Everyday text stays everyday unless an entry is very close.
        ([("out_of_scope", 0.8)], (0.7, 0.1), ("out_of_scope", None, "everyday")),
        ([("out_of_scope", 0.8)], (0.9, 0.1), ("faq", "e0", "answer")),
        # Other intents are acted on when the classifier is sure enough.
        ([("greet", 0.95)], (0.9, 0.1), ("greet", None, "classifier")),
        ([("give_up", 0.6)], (0.5,), ("give_up", None, "classifier")),
        ([("greet", 0.2)], (0.5, 0.1), ("nlu_fallback", None, "clarify")),
        ([("greet", 0.2)], (0.1,), ("out_of_scope", None, "no_entry")),
        # A person is never withheld for low confidence (the anger step already vetted it).
        ([("request_human", 0.2)], (0.9,), ("request_human", None, "classifier")),
        ([], (0.1,), ("nlu_fallback", None, "no_entry")),
    ],
)
def test_route(ranking, scores, want) -> None:  # type: ignore[no-untyped-def]
    routed = route(ranking, hits(*scores), TH)
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("ranking", "scores", "want"),
    [
        # Unsure it is a request for a person, and the search answers outright: a question
        # that mentions people (「窓口で手話通訳をお願いできますか」).
        ([("request_human", 0.5), ("faq", 0.3)], (0.8, 0.3), ("faq", "e0", "names_topic")),
        # Unsure, but the search would only ask back: the person stands.
        ([("request_human", 0.5), ("faq", 0.3)], (0.5, 0.45), ("request_human", None, "classifier")),
        # Sure: a person, whatever the search finds (「解約の件で担当者と話したい」).
        ([("request_human", 0.9)], (0.8, 0.3), ("request_human", None, "classifier")),
    ],
)
def test_hesitant_person_request_naming_a_topic(ranking, scores, want) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    routed = route(ranking, hits(*scores), replace(TH, human_sure=0.6))
    assert (routed.name, routed.faq_id, routed.reason) == want


@dataclass
class EvidenceHit:
    faq_id: str
    score: float
    evidence: float


@pytest.mark.parametrize(
    ("ranking", "evidence", "want"),
    [
        # Enough of the message's own words in the entry: answer.
        ([("faq", 0.9)], 0.6, ("faq", "e0", "answer")),
        # A high score from readings and vectors alone: ask back, never answer.
        ([("faq", 0.9)], 0.2, ("nlu_fallback", None, "clarify")),
        # Everyday text counts as a question only with shared words.
        ([("out_of_scope", 0.8)], 0.6, ("faq", "e0", "answer")),
        ([("out_of_scope", 0.8)], 0.2, ("out_of_scope", None, "everyday")),
    ],
)
def test_answers_need_word_evidence(ranking, evidence, want) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    th = replace(TH, answer_evidence=0.4, override_evidence=0.4)
    routed = route(ranking, [EvidenceHit("e0", 0.9, evidence), EvidenceHit("e1", 0.1, 0.0)], th)
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("ranking", "scores", "want"),
    [
        # Everyday text that matches an entry well is asked back, not answered
        # (「ゲームのパスワードまた忘れた」 and the password entry) ...
        ([("out_of_scope", 0.9)], (0.8, 0.1), ("nlu_fallback", None, "clarify")),
        # ... unless the search is sure: a city FAQ's 「粗大ごみの出し方」 the classifier never saw.
        ([("out_of_scope", 0.9)], (0.9, 0.1), ("faq", "e0", "answer")),
        # A question the classifier recognises is answered as before.
        ([("faq", 0.9)], (0.8, 0.1), ("faq", "e0", "answer")),
    ],
)
def test_everyday_text_is_answered_only_when_the_search_is_sure(ranking, scores, want) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    routed = route(ranking, hits(*scores), replace(TH, everyday_override=0.5, everyday_answer=0.85))
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("confidence", "scores", "want"),
    [
        # A complaint the classifier is fairly sure of, and the search only unsure: a person.
        (0.75, (0.5, 0.45), ("complaint", None, "classifier")),
        # ... but answered when the search is sure (a calm problem report naming its topic).
        (0.75, (0.8, 0.2), ("faq", "e0", "problem_report")),
        # A hesitant complaint with an unsure search is asked back, as before.
        (0.5, (0.5, 0.45), ("nlu_fallback", None, "problem_report")),
    ],
)
def test_a_likely_complaint_is_not_asked_back(confidence, scores, want) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    routed = route([("complaint", confidence)], hits(*scores), replace(TH, report_clarify=0.7))
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("confidence", "unfinished", "anger", "want"),
    [
        # 「請求のことなんですけど」: the subject first, the problem not yet said; the search asks back.
        (0.55, True, Anger(), ("nlu_fallback", None, "unfinished")),
        # A finished message with the same probability is still a complaint.
        (0.55, False, Anger(), ("complaint", None, "classifier")),
        # A complaint the classifier is sure of goes to a person however it ends.
        (0.7, True, Anger(), ("complaint", None, "classifier")),
        # The editors' angry words always reach a person (「ふざけんなって話なんですけど…」).
        (0.55, True, Anger(score=1.0, rule_score=1.0), ("complaint", None, "classifier")),
    ],
)
def test_an_unfinished_message_is_asked_back(confidence, unfinished, anger, want) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    routed = route([("complaint", confidence)], hits(0.3, 0.25), replace(TH, unfinished_clarify=0.6), anger,
                   unfinished=unfinished)
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("text", "unfinished"),
    [
        ("請求のことなんですけど", True),
        ("マイページが…", True),
        ("メールが来ないんですけど…", True),
        ("箱のことなんやけど…🤔", True),
        ("請求のことで😅", True),
        ("登録内容ちがってるかも", True),
        ("住所を変えたい", False),
        ("請求が二重になってます。", False),
        ("届かないんですけど!?", False),  # said what it means
        ("なんで届かないの？", False),
        ("迷惑メールばっかり送ってきやがって", False),
        ("", False),
        ("😅", False),
    ],
)
def test_unfinished_messages(text: str, unfinished: bool) -> None:
    from bot.text.unfinished import is_unfinished

    assert is_unfinished(text) is unfinished


def test_angry_words_keep_a_hesitant_person_request() -> None:
    """「いい加減にしてほしい」: the search's feedback entry must not answer strong anger."""
    from dataclasses import replace

    angry = Anger(score=1.0, rule_score=1.0, threshold=0.6)
    routed = route([("request_human", 0.35), ("complaint", 0.3)], hits(0.8, 0.2), replace(TH, human_sure=0.6), angry)
    assert (routed.name, routed.faq_id) == ("request_human", None)


ANGRY = Anger(score=1.0, rule_score=1.0, threshold=0.6)
MODEL_ANGER = Anger(score=0.7, rule_score=0.0, threshold=0.6)


@pytest.mark.parametrize(
    ("ranking", "scores", "anger", "want"),
    [
        # Anger beats topic: 「住所変更したのに反映されない、ふざけるな」.
        ([("faq", 0.9), ("complaint", 0.05)], (0.8, 0.2), ANGRY, ("complaint", "anger", "anger")),
        # Weak anger (no strong words) in an FAQ question that matches an entry: the FAQ.
        ([("faq", 0.6), ("complaint", 0.38)], (0.65, 0.3), Anger(0.7, 0.4, 0.6), ("faq", "answer", None)),
        ([("faq", 0.6), ("complaint", 0.38)], (0.2,), Anger(0.7, 0.4, 0.6), ("complaint", "anger", "anger")),
        # ... but not anger about something else: 「電車が遅れて最悪」.
        ([("out_of_scope", 0.8), ("complaint", 0.1)], (0.1,), ANGRY, ("out_of_scope", "everyday", None)),
        # A bare insult names nothing else, so it is about us: 「ポンコツ」「クソ」.
        ([("out_of_scope", 0.8), ("complaint", 0.1)], (0.1,), Anger(1.0, 1.0, 0.6, bare=True),
         ("complaint", "anger", "anger")),
        # A sure complaint stands without angry words.
        ([("complaint", 0.95), ("faq", 0.03)], (0.6, 0.1), MODEL_ANGER, ("complaint", "classifier", None)),
        # An unsure complaint that matches an entry well is a calm problem report.
        ([("complaint", 0.7), ("faq", 0.25)], (0.7, 0.2), MODEL_ANGER, ("faq", "problem_report", None)),
        ([("complaint", 0.7), ("faq", 0.25)], (0.5, 0.45), MODEL_ANGER, ("nlu_fallback", "problem_report", None)),
        # ... unless it has angry words (then the reason is anger, as when the FAQ came first).
        ([("complaint", 0.7), ("faq", 0.25)], (0.7, 0.2), ANGRY, ("complaint", "classifier", "anger")),
        # An unsure complaint that matches nothing stays a complaint.
        ([("complaint", 0.7), ("out_of_scope", 0.2)], (0.2,), MODEL_ANGER, ("complaint", "classifier", None)),
        # A request for a person is never relabelled.
        ([("request_human", 0.7), ("complaint", 0.2)], (0.9,), ANGRY, ("request_human", "classifier", None)),
    ],
)
def test_route_with_anger(ranking, scores, anger, want) -> None:  # type: ignore[no-untyped-def]
    routed = route(ranking, hits(*scores), TH, anger)
    assert (routed.name, routed.reason, routed.handoff_reason) == want


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I change my address?", "en"),
        ("Hello, can you help me?", "en"),
        ("help", "en"),
        ("hello", "ja"),  # a greeting Japanese customers type too: the classifier's greet
        ("yes", "ja"),
        ("mail address henkou", "ja"),
        ("toiawase no henji mada desu ka", "ja"),
        ("saiaku na service da na", "ja"),
        ("Ｈｅｌｐ ｍｅ ｐｌｅａｓｅ", "en"),  # full-width letters
        ("我想修改我的地址", "zh"),
        ("請問怎麼取消會員？", "zh"),
        ("忘记密码了，登录不了。", "zh"),  # simplified characters Japanese text cannot hold
        ("如何变更地址", "zh"),
        ("髙橋", "ja"),  # kanji only with a name's variant character: in cp932, Japanese
        ("𠮷野家", "ja"),  # a character beyond the BMP is not a Chinese mark
        ("주소를 변경하고 싶어요", "ko"),
        ("住所を変えたい", "ja"),
        ("住所変更", "ja"),  # kanji only, still Japanese
        ("解約手続", "ja"),
        ("電話番号変更", "ja"),  # kanji only, with characters Chinese uses too
        ("営業時間", "ja"),
        ("請求書PDF", "ja"),
        ("予約取消", "ja"),
        ("juusho henkou shitai", "ja"),  # romaji Japanese
        ("ｼﾞｭｳｼｮ ﾍﾝｺｳ", "ja"),
        ("PayPayは使えますか", "ja"),
        ("OK", "ja"),
        ("", "ja"),
        ("😀🙏", "ja"),
        ("https://example.com", "ja"),
        ("<script>alert(1)</script>", "ja"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("asking", "want"),
    [
        (False, ("out_of_scope", None, "everyday")),  # chatter: the bot says what it can help with
        (True, ("nlu_fallback", None, "clarify")),  # 「壊れたスマホ、どこに捨てればいいですか」: asked back
    ],
)
def test_a_message_that_asks_is_asked_back_from_a_lower_score(asking: bool, want: tuple) -> None:
    th = RoutingThresholds(answer=0.6, clarify=0.2, everyday_override=0.3, question_override=0.25,
                           everyday_answer=0.7)
    routed = route([("out_of_scope", 0.8)], hits(0.27, 0.25), th, asking=asking)
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("asking", "want"),
    [
        (False, ("request_human", None, "classifier")),  # 「誰か人に手伝ってほしい」: the person stands
        (True, ("nlu_fallback", None, "names_topic")),  # 「通訳の人に手伝ってもらえますか」: asked back, with a person button
    ],
)
def test_an_unsure_request_for_a_person_that_asks_is_asked_back(asking: bool, want: tuple) -> None:
    th = RoutingThresholds(answer=0.6, answer_margin=0.05, clarify=0.3, human_sure=0.8)
    routed = route([("request_human", 0.55), ("faq", 0.3)], hits(0.45, 0.4), th, asking=asking)
    assert (routed.name, routed.faq_id, routed.reason) == want


@pytest.mark.parametrize(
    ("asking", "top", "want"),
    [
        (True, 0.8, ("faq", "e0", "answer")),  # 「イライラする…パスワードの再設定ってどうやるんですか」
        (False, 0.8, ("complaint", None, "anger")),  # 「パスワード再設定できない、イライラする」: a person
        (True, 0.5, ("complaint", None, "anger")),  # the search is not sure enough: a person
    ],
)
def test_an_angry_faq_question_the_search_answers_is_answered(asking: bool, top: float, want: tuple) -> None:
    th = RoutingThresholds(answer=0.45, answer_margin=0.05, clarify=0.3, complaint_sure=0.9, problem_report=0.45,
                           angry_question=0.6)
    anger = Anger(score=0.8, rule_score=0.7, threshold=0.6)
    routed = route([("faq", 0.6), ("complaint", 0.3)], hits(top, 0.2), th, anger, asking=asking)
    assert (routed.name, routed.faq_id, routed.reason) == want
