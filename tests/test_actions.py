"""Custom actions with a fake tracker (no servers, no model)."""

from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions.faq import ActionAnswerFaq, ActionClarify
from actions.handoff import ActionHandoff
from bot.knowledge.live import LiveKnowledge
from bot.handoff.outbox import Outbox
from bot.store.database import make_engine
from bot.store.queue import Queue
from bot.settings import PROJECT_ROOT
from conftest import OFFLINE_NOW, STAFFED_NOW

KNOWLEDGE = LiveKnowledge(PROJECT_ROOT / "knowledge")


def run(action, tracker):  # type: ignore[no-untyped-def]
    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, {})
    return dispatcher.messages, events


def test_faq_answer_comes_from_knowledge_with_id_in_custom(make_tracker) -> None:
    tracker = make_tracker("住所を変えたい", "faq", 0.83, faq_id="change-address")
    messages, events = run(ActionAnswerFaq(KNOWLEDGE), tracker)
    assert events == []
    (message,) = messages
    assert "住所変更" in message["text"]
    # The transcript/analytics label names the entry; the confidence is the parse's.
    assert message["custom"] == {"route": "answer", "faq_id": "change-address", "category": "登録情報の変更",
                                 "intent": "faq_change_address", "confidence": 0.83}


@pytest.mark.parametrize("text, extra, apologises", [
    # An angry question the FAQ answers outright: the apology first, then the answer.
    ("住所変更ってどこからやるんだよ、わかりにくすぎ", {"anger": {"score": 0.72, "threshold": 0.6}}, True),
    # A calm problem report the router answered (reason problem_report).
    ("住所変更の画面が開けません", {"routing": "problem_report", "anger": {"score": 0.1, "threshold": 0.6}}, True),
    # A calm question just below the threshold: the answer alone.
    ("住所を変えたい", {"anger": {"score": 0.59, "threshold": 0.6}}, False),
    ("住所を変えたい", {}, False),
])
def test_answer_to_an_upset_customer_opens_with_an_apology(make_tracker, text: str, extra: dict,
                                                            apologises: bool) -> None:
    from bot.wording import UPSET_ANSWER_OPENING

    tracker = make_tracker(text, "faq", 0.83, faq_id="change-address", **extra)
    (message,), _ = run(ActionAnswerFaq(KNOWLEDGE), tracker)
    entry = KNOWLEDGE.get().get("change-address")
    assert message["text"].startswith(UPSET_ANSWER_OPENING) is apologises
    assert entry.answer in message["text"] and message["custom"]["faq_id"] == "change-address"


def test_faq_button_payload_entity_answers_that_entry(make_tracker) -> None:
    """A clarify button sends /faq{"faq_id": ...}: Rasa puts the id in the entities."""
    tracker = make_tracker('/faq{"faq_id": "cancel"}', "faq", 1.0,
                           entities=[{"entity": "faq_id", "value": "cancel"}])
    (message,), _ = run(ActionAnswerFaq(KNOWLEDGE), tracker)
    assert message["custom"]["faq_id"] == "cancel" and "解約" in message["text"]


def test_clarify_offers_the_three_best_ranked_faqs_and_a_person(make_tracker) -> None:
    ranking = [{"faq_id": i, "title": "", "category": "", "score": s, "matched": ""}
               for i, s in [("cancel", 0.5), ("no-such-entry", 0.45), ("change-plan", 0.4), ("pricing", 0.3),
                            ("trial", 0.2)]]
    tracker = make_tracker("やめたい", "nlu_fallback", 0.5, faq_ranking=ranking)
    (message,), _ = run(ActionClarify(KNOWLEDGE), tracker)
    assert message["custom"]["suggestions"] == ["cancel", "change-plan", "pricing"]
    payloads = [b["payload"] for b in message["buttons"]]
    assert payloads == ['/faq{"faq_id": "cancel"}', '/faq{"faq_id": "change-plan"}', '/faq{"faq_id": "pricing"}',
                        "/request_human"]


def test_clarify_without_a_ranking_searches_the_text(make_tracker) -> None:
    tracker = make_tracker("パスワードわすれたかも", "nlu_fallback", 0.3)
    (message,), _ = run(ActionClarify(KNOWLEDGE), tracker)
    suggestions = message["custom"]["suggestions"]
    assert suggestions[0] == KNOWLEDGE.find("パスワードわすれたかも")[0] == "reset-password"
    assert len(suggestions) == 3 and message["buttons"][-1]["payload"] == "/request_human"


def test_clarify_without_ranking_is_never_a_dead_end(make_tracker) -> None:
    tracker = make_tracker("", "nlu_fallback", 1.0, [], input_issue="no_words")
    (message,), _ = run(ActionClarify(KNOWLEDGE), tracker)
    assert len(message["buttons"]) == 4
    assert "入力してください" in message["text"]


def test_long_input_gets_polite_truncation_note(make_tracker) -> None:
    tracker = make_tracker("住所" * 5000, "faq", faq_id="change-address", input_truncated_at=1000)
    (message,), _ = run(ActionAnswerFaq(KNOWLEDGE), tracker)
    assert message["text"].startswith("（メッセージが長かったため、最初の1000文字")


@pytest.mark.parametrize(
    ("intent", "extra", "reason"),
    [
        ("request_human", {}, "human_request"),
        ("complaint", {}, "complaint"),
        ("complaint", {"handoff_reason": "anger"}, "anger"),
    ],
)
def test_handoff_message_fits_the_reason(make_tracker, intent, extra, reason, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.dialogue.replies import HANDOFF_TEXT

    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    (message,), _ = run(ActionHandoff(queue, Outbox(tmp_path / "outbox.jsonl")), make_tracker("…", intent, **extra))
    assert message["custom"]["route"] == "handoff"
    assert message["custom"]["handoff_reason"] == reason
    assert message["text"] == HANDOFF_TEXT[reason]  # the staffed reply for that reason (the suite's clock: staffed)
    assert len(set(HANDOFF_TEXT.values())) == len(HANDOFF_TEXT)  # each reason has its own wording


@pytest.mark.parametrize(("moment", "staffed"), [(STAFFED_NOW, True), (OFFLINE_NOW, False)],
                         ids=["staffed", "offline"])
def test_handoff_action_takes_the_branch_the_clock_says(make_tracker, clock, tmp_path: Path, moment: str,
                                                        staffed: bool) -> None:
    """The action as Rasa runs it (no time passed in): the injected clock decides, not when CI runs."""
    import datetime as dt

    from bot.dialogue.replies import HANDOFF_TEXT, out_of_hours_text
    from bot.triage.hours import JST

    clock(moment)
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    (message,), events = run(ActionHandoff(queue, Outbox(tmp_path / "outbox.jsonl")),
                             make_tracker("人と話したい", "request_human"))
    (ticket,) = queue.open_tickets()
    next_opening = dt.datetime(2026, 11, 24, 9, 0, tzinfo=JST)  # the day after the holiday
    if staffed:  # a person takes over now: the bot pauses
        assert message["text"] == HANDOFF_TEXT["human_request"]
        assert events == [{"event": "pause", "timestamp": None}] and "staffed" not in message["custom"]
    else:  # nobody on duty: an offline ticket, the bot keeps answering, the widget asks for contact details
        assert message["text"] == out_of_hours_text("human_request", next_opening)
        assert events == [] and message["custom"]["staffed"] is False
        assert message["custom"]["next_opening"] == next_opening.isoformat()
    assert ticket.offline is not staffed and message["custom"]["ticket_id"] == ticket.id


def test_handoff_files_one_ticket_with_the_transcript(make_tracker, tmp_path: Path) -> None:
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    tracker = make_tracker("ふざけるな", "complaint", handoff_reason="anger")
    (first,), _ = run(ActionHandoff(queue, Outbox(tmp_path / "outbox.jsonl")), tracker)
    (retry,), _ = run(ActionHandoff(queue, Outbox(tmp_path / "outbox.jsonl")), tracker)  # the same action run again (e.g. a retry)
    assert first["custom"]["ticket_id"] == retry["custom"]["ticket_id"]
    (ticket,) = queue.open_tickets()
    assert ticket.reasons == ["anger"] and ticket.priority == 1
    assert [e.text for e in queue.get(ticket.id).entries] == ["ふざけるな"]
    assert first["custom"]["queue_position"] == 1


def test_an_outboxed_handoffs_reply_names_its_packet(make_tracker, tmp_path: Path) -> None:
    """The database is away: the reply has no ticket yet, but the packet's key, which the bot
    server's pending mark keeps to know which arriving ticket is this handoff's."""
    from actions.handoff import hand_off

    outbox = Outbox(tmp_path / "outbox.jsonl")
    dispatcher = CollectingDispatcher()
    hand_off(dispatcher, make_tracker("人と話したい", "request_human"), "human_request", None, outbox,
             reconnect=lambda: None)
    (packet,) = outbox.pending()
    (message,) = dispatcher.messages
    assert message["custom"]["ticket_id"] is None
    assert message["custom"]["handoff_key"] == packet.idempotency_key


def test_faq_intent_missing_from_knowledge_falls_back_to_clarify(make_tracker) -> None:
    (message,), _ = run(ActionAnswerFaq(KNOWLEDGE), make_tracker("?", "faq", faq_id="removed-entry"))
    assert message["custom"]["route"] == "clarify"


def test_edited_answer_is_served_without_restart(tmp_path: Path, make_tracker) -> None:
    import os
    import shutil

    shutil.copytree(PROJECT_ROOT / "knowledge", tmp_path / "knowledge")
    live = LiveKnowledge(tmp_path / "knowledge", check_interval=0.0)
    action = ActionAnswerFaq(live)
    (before,), _ = run(action, make_tracker("営業時間", "faq", faq_id="hours"))
    path = tmp_path / "knowledge" / "faq" / "service.yml"
    text = path.read_text(encoding="utf-8")
    # The answer's first line as written (it begins with the {service.chat_name} placeholder).
    first_answer_line = "（このチャット）は24時間ご利用いただけます。"
    assert first_answer_line in before["text"].splitlines()[0] and first_answer_line in text
    stamp = path.stat().st_mtime_ns

    def save(content: str, seconds_later: int) -> None:
        path.write_text(content, encoding="utf-8")
        os.utime(path, ns=(stamp + seconds_later * 10**9, stamp + seconds_later * 10**9))

    save(text.replace(first_answer_line, "【更新】" + first_answer_line, 1), 1)
    (after,), _ = run(action, make_tracker("営業時間", "faq", faq_id="hours"))
    assert "【更新】" + first_answer_line in after["text"].splitlines()[0]
    # A broken edit is really loaded (and rejected): the last good answers stay.
    save("entries: [oops", 2)
    (kept,), _ = run(action, make_tracker("営業時間", "faq", faq_id="hours"))
    assert "【更新】" in kept["text"].splitlines()[0]
    sizes = {name: size for name, _, size in live._stamp}
    assert sizes[str(path)] == len("entries: [oops")  # the broken version was looked at


def test_second_unsure_turn_in_a_row_goes_to_a_person(make_tracker, tmp_path: Path) -> None:
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    action = ActionClarify(KNOWLEDGE, queue, Outbox(tmp_path / "outbox.jsonl"))
    tracker = make_tracker("???", "nlu_fallback", 0.2, [])
    (first,), _ = run(action, tracker)
    assert first["custom"]["route"] == "clarify"
    tracker.events.append({"event": "bot", "text": first["text"]})
    tracker.events.append({"event": "user", "text": "!!!", "parse_data": tracker.latest_message})
    (second,), _ = run(action, tracker)
    assert second["custom"]["route"] == "handoff" and second["custom"]["handoff_reason"] == "unresolved"
    (ticket,) = queue.open_tickets()
    assert ticket.reasons == ["unresolved"]
    assert [e.sender for e in queue.get(ticket.id).entries] == ["customer", "bot", "customer"]


def test_handoff_outside_staffed_hours_says_when_a_person_will_answer(make_tracker, tmp_path: Path) -> None:
    import datetime as dt

    from actions.handoff import hand_off
    from bot.triage.hours import JST

    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    holiday = dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST)  # 勤労感謝の日
    dispatcher = CollectingDispatcher()
    hand_off(dispatcher, make_tracker("人と話したい", "request_human"), "human_request", queue,
             Outbox(tmp_path / "outbox.jsonl"), now=holiday)
    (message,) = dispatcher.messages
    assert "受付時間外" in message["text"] and "11月24日（火）9:00以降" in message["text"]
    assert message["custom"]["staffed"] is False
    assert len(queue.open_tickets()) == 1  # the ticket is still filed for the next shift

    dispatcher = CollectingDispatcher()
    hand_off(dispatcher, make_tracker("人と話したい", "request_human"), "human_request", queue,
             Outbox(tmp_path / "outbox.jsonl"), now=dt.datetime(2026, 11, 24, 10, 0, tzinfo=JST))
    assert "受付時間外" not in dispatcher.messages[0]["text"]


def test_staffed_handoff_pauses_the_bot_and_offline_does_not(make_tracker, tmp_path: Path) -> None:
    import datetime as dt

    from actions.handoff import hand_off
    from bot.triage.hours import JST

    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    outbox = Outbox(tmp_path / "outbox.jsonl")
    staffed = hand_off(CollectingDispatcher(), make_tracker("人と話したい", "request_human"), "human_request",
                       queue, outbox, now=dt.datetime(2026, 11, 24, 10, 0, tzinfo=JST))
    assert staffed == [{"event": "pause", "timestamp": None}]
    later = make_tracker("人と話したい", "request_human")
    later.events.insert(0, {"event": "user", "text": "こんにちは", "parse_data": {}})  # a later handoff: new key
    offline = hand_off(CollectingDispatcher(), later, "human_request", queue, outbox,
                       now=dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST))
    assert offline == []
    assert sorted(t.offline for t in queue.open_tickets()) == [False, True]


def test_second_not_helpful_goes_to_a_person(make_tracker, tmp_path: Path) -> None:
    from actions.faq import ActionNotHelpful

    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    action = ActionNotHelpful(KNOWLEDGE, queue, Outbox(tmp_path / "outbox.jsonl"))
    tracker = make_tracker("/answer_not_helpful", "answer_not_helpful")
    tracker.events.insert(0, {"event": "user", "text": "住所", "parse_data": {"intent": {"name": "faq"}, "faq_id": "change-address"}})
    (first,), _ = run(action, tracker)
    assert "お役に立てず" in first["text"] and first["custom"]["route"] == "clarify"
    assert "change-address" not in first["custom"]["suggestions"]  # not the answer that did not help
    assert first["buttons"][-1]["payload"] == "/request_human"
    # The same 「いいえ」 sent again (the bot server never stored the reply): apologised for again.
    tracker.events.append({"event": "user", "text": "/answer_not_helpful", "parse_data": tracker.latest_message})
    (again,), _ = run(action, tracker)
    assert again["custom"]["route"] == "clarify" and queue.open_tickets() == []
    # Another answer (a suggestion clicked), rated いいえ too: a person takes over.
    tracker.events.append({"event": "bot", "text": "ご登録の電話番号は…", "data": {"custom": {"route": "answer"}}})
    tracker.events.append({"event": "user", "text": "/answer_not_helpful", "parse_data": tracker.latest_message})
    (second,), events = run(action, tracker)
    assert second["custom"]["handoff_reason"] == "unresolved"
    assert [t.reasons for t in queue.open_tickets()] == [["unresolved"]]


def test_unsure_turns_before_a_handoff_do_not_count_after_it() -> None:
    from actions.faq import not_helpful_since_handoff, unsure_turns_in_a_row

    fallback = {"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    no = {"event": "user", "parse_data": {"intent": {"name": "answer_not_helpful"}}}
    handoff_reply = {"event": "bot", "text": "…", "data": {"custom": {"route": "handoff"}}}
    asked_back = [{"event": "action", "name": "action_clarify"},
                  {"event": "bot", "text": "どちらについてのご質問でしょうか？", "data": {"custom": {"route": "clarify"}}}]
    assert unsure_turns_in_a_row([fallback, *asked_back, fallback]) == 2
    assert unsure_turns_in_a_row([fallback, *asked_back, fallback, *asked_back, fallback]) == 3
    assert unsure_turns_in_a_row([fallback, *asked_back, {"event": "pause"}, {"event": "resume"}, fallback]) == 1
    assert unsure_turns_in_a_row([fallback, *asked_back, handoff_reply, fallback]) == 1  # offline: no pause
    answer = {"event": "bot", "text": "…", "data": {"custom": {"route": "answer"}}}
    assert not_helpful_since_handoff([answer, no, answer, no, handoff_reply, answer, no]) == 1
    assert not_helpful_since_handoff([answer, no, answer, no]) == 2
    assert not_helpful_since_handoff([answer, no, no]) == 1  # one rating sent twice


def test_an_unsure_turn_the_bot_never_answered_does_not_count() -> None:
    """Action server down: Rasa logs action_clarify without its message; the customer tries again."""
    from actions.faq import unsure_turns_in_a_row

    fallback = {"event": "user", "parse_data": {"intent": {"name": "nlu_fallback"}}}
    lost_clarify = {"event": "action", "name": "action_clarify"}
    asked_back = {"event": "bot", "text": "どちらについてのご質問でしょうか？"}
    assert unsure_turns_in_a_row([fallback, lost_clarify, fallback]) == 1
    assert unsure_turns_in_a_row([fallback, lost_clarify, asked_back, fallback]) == 2
    assert unsure_turns_in_a_row([fallback, asked_back, fallback, lost_clarify, fallback]) == 1


def test_preamble_invites_the_question_with_the_main_topics(make_tracker) -> None:
    from actions.faq import ActionPreamble

    (message,), _ = run(ActionPreamble(KNOWLEDGE), make_tracker("質問です", "preamble"))
    assert message["text"].startswith("はい、どうぞ。")
    kb = KNOWLEDGE.get()
    # One topic per category first (the demo has four categories).
    assert [kb.get(i).category for i in message["custom"]["suggestions"]] == list(dict.fromkeys(
        e.category for e in kb.entries))
    assert all(b["payload"].startswith('/faq{"faq_id": ') for b in message["buttons"])


def test_greeting_and_iamabot_name_the_service_of_the_loaded_knowledge(make_tracker, tmp_path: Path) -> None:
    """The demo's folder names its service; an imported sheet's folder (no facts.yml) does not
    borrow it, and its own topics are the buttons; a folder's own facts.yml names its service."""
    import shutil

    from actions.faq import ActionGreet, ActionIamABot

    (greeting,), _ = run(ActionGreet(KNOWLEDGE), make_tracker("こんにちは", "greet"))
    assert greeting["text"].startswith("こんにちは。みらいメンバーズのAIチャットです。")
    assert greeting["custom"]["route"] == "smalltalk" and len(greeting["buttons"]) == 4
    (bot,), _ = run(ActionIamABot(KNOWLEDGE), make_tracker("AIですか", "bot_challenge"))
    assert bot["text"].startswith("私はみらいメンバーズのAIチャットです。") and not bot.get("buttons")

    city = tmp_path / "city"
    (city / "faq").mkdir(parents=True)
    (city / "faq" / "imported.yml").write_text(
        "entries:\n  - id: juminhyo\n    category: 届出・証明\n    title: 住民票の写し\n"
        "    questions: [住民票はどこで取れますか]\n    answer: 市民課の窓口かコンビニ交付で取得できます。\n",
        encoding="utf-8")
    (greeting,), _ = run(ActionGreet(LiveKnowledge(city)), make_tracker("こんにちは", "greet"))
    assert greeting["text"].startswith("こんにちは。AIチャットです。") and "みらい" not in greeting["text"]
    assert greeting["custom"]["suggestions"] == ["juminhyo"]
    (bot,), _ = run(ActionIamABot(LiveKnowledge(city)), make_tracker("ボットなの？", "bot_challenge"))
    assert bot["text"].startswith("私はAIチャットです。")

    shutil.copy(PROJECT_ROOT / "knowledge" / "facts.yml", city / "facts.yml")
    text = (city / "facts.yml").read_text(encoding="utf-8").replace("name: みらいメンバーズ", "name: さくら市")
    (city / "facts.yml").write_text(text, encoding="utf-8")
    (greeting,), _ = run(ActionGreet(LiveKnowledge(city)), make_tracker("こんにちは", "greet"))
    assert greeting["text"].startswith("こんにちは。さくら市のAIチャットです。")


def test_offer_of_a_person_in_and_out_of_hours() -> None:
    import datetime as dt

    from bot.dialogue.replies import offer_human_reply
    from bot.triage.hours import JST, load_hours

    hours = load_hours(PROJECT_ROOT / "knowledge" / "hours.yml")
    staffed = offer_human_reply(hours, dt.datetime(2026, 11, 24, 10, 0, tzinfo=JST))
    offline = offer_human_reply(hours, dt.datetime(2026, 11, 23, 12, 0, tzinfo=JST))  # a holiday
    for reply in (staffed, offline):
        assert reply.custom["route"] == "offer_human" and "お役に立てず" in reply.text
        # The button files the handoff with reason `unresolved` (outside hours: the contact form).
        assert reply.buttons == [{"title": "担当者と話す", "payload": "/request_human_unresolved"}]
    assert staffed.custom["staffed"] is True and "受付時間外" not in staffed.text
    assert offline.custom["staffed"] is False and "受付時間外" in offline.text


@pytest.mark.parametrize(("language", "words"), [("en", "only answer questions in Japanese"),
                                                 ("zh", "仅支持日语"), ("ko", "일본어로만")])
def test_language_notice_in_the_customers_language_and_japanese(make_tracker, language: str, words: str) -> None:
    from actions.faq import ActionLanguageNotice

    (message,), _ = run(ActionLanguageNotice(KNOWLEDGE), make_tracker("?", "non_japanese", 1.0, language=language))
    assert words in message["text"] and "日本語でのご質問にのみお答えできます" in message["text"]
    assert "https://members.mirai-net.example/contact" in message["text"]  # the contact page
    assert message["buttons"] == [{"title": "担当者と話したい", "payload": "/request_human"}]
    assert message["custom"]["route"] == "offer_human"


def test_not_that_offers_the_other_candidates_of_the_last_question(make_tracker) -> None:
    from actions.faq import ActionNotHelpful

    ranking = [{"faq_id": i, "title": "", "category": "", "score": 0.5, "matched": ""}
               for i in ("change-address", "change-phone", "change-name")]
    tracker = make_tracker("それじゃなくて", "not_that")
    tracker.events.insert(0, {"event": "user", "text": "変更したい",
                              "parse_data": {"intent": {"name": "faq"}, "faq_id": "change-address",
                                             "faq_ranking": ranking}})
    (message,), _ = run(ActionNotHelpful(KNOWLEDGE), tracker)
    assert message["custom"]["suggestions"][:2] == ["change-phone", "change-name"]


def test_out_of_scope_shows_the_topics_of_the_knowledge_it_runs_on(make_tracker, tmp_path: Path) -> None:
    """The demo's topics on the demo; a city's own topics once its sheet is imported (never the demo's)."""
    from actions.faq import ActionOutOfScope
    from benchmarks.kb_city import import_city

    (demo,), _ = run(ActionOutOfScope(KNOWLEDGE), make_tracker("今日の天気は？", "out_of_scope"))
    assert demo["text"].startswith("申し訳ございません。") and demo["custom"]["route"] == "out_of_scope"
    kb = KNOWLEDGE.get()
    assert [kb.get(i).category for i in demo["custom"]["suggestions"]] == list(dict.fromkeys(
        e.category for e in kb.entries))
    assert demo["buttons"][-1]["payload"] == "/request_human"  # a person, one click away

    import_city(tmp_path / "city")
    (city,), _ = run(ActionOutOfScope(LiveKnowledge(tmp_path / "city")), make_tracker("今日の天気は？", "out_of_scope"))
    assert city["custom"]["suggestions"] and all(i.startswith("city-") for i in city["custom"]["suggestions"])
    assert "会員" not in city["text"] and "みらい" not in city["text"]
