"""End to end: the real Rasa server and action server, over the REST channel."""

from __future__ import annotations

import json
import random
import urllib.request
import uuid
from pathlib import Path

import pytest

from bot.assistant import CUSTOM_ACTIONS
from bot.dialogue.routes import ROUTE_OF_ACTION
from bot.launcher import BotStack, free_port
from bot.settings import PROJECT_ROOT
from conftest import OFFLINE_NOW, STAFFED_NOW

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('queue') / 'handoff.db'}"


@pytest.fixture(scope="module")
def stack(trained_model: Path, database_url: str):  # type: ignore[no-untyped-def]
    """Rasa and the action server at a staffed moment (the clock is injected, never the wall clock)."""
    with BotStack(model=trained_model, rasa_port=free_port(), action_port=free_port(),
                  env={"DATABASE_URL": database_url, "BOT_NOW": STAFFED_NOW}) as running:
        yield running


@pytest.fixture(scope="module")
def offline_stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The same servers on a national holiday: nobody on duty."""
    url = f"sqlite:///{tmp_path_factory.mktemp('offline') / 'handoff.db'}"
    with BotStack(model=trained_model, rasa_port=free_port(), action_port=free_port(),
                  env={"DATABASE_URL": url, "BOT_NOW": OFFLINE_NOW}) as running:
        running.database_url = url
        yield running


def post(url: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def say(stack: BotStack, text: str, sender: str | None = None) -> list[dict]:
    body = json.dumps({"sender": sender or uuid.uuid4().hex, "message": text}).encode()
    status, raw = post(f"{stack.rasa_url}/webhooks/rest/webhook", body)
    assert status == 200, raw[:500]
    return json.loads(raw)


def address_answer() -> str:
    """What the bot answers for change-address, from knowledge/ as the servers read it."""
    from bot.dialogue.replies import answer_reply
    from bot.knowledge.loader import load_knowledge

    return answer_reply(load_knowledge(PROJECT_ROOT / "knowledge").get("change-address")).text


def first_bot_action(stack: BotStack, sender: str) -> str:
    url = f"{stack.rasa_url}/conversations/{sender}/tracker?token={stack.rasa_token}"  # the API needs the token
    with urllib.request.urlopen(url, timeout=30) as response:
        events = json.loads(response.read())["events"]
    after_user = events[[e["event"] for e in events].index("user") + 1:]
    return next(e["name"] for e in after_user if e["event"] == "action" and e["name"] != "action_listen")


def test_faq_answer_comes_from_knowledge_with_id(stack: BotStack, assistant) -> None:  # type: ignore[no-untyped-def]
    messages = say(stack, "住所を変更したいです")
    texts = [m["text"] for m in messages if "text" in m]
    customs = [m["custom"] for m in messages if "custom" in m]
    confidence = customs[0].pop("confidence")
    assert customs == [{"route": "answer", "faq_id": "change-address", "category": "登録情報の変更",
                        "intent": "faq_change_address"}]
    # The confidence is the FAQ search's score for the chosen entry, as `bot ask` reports it.
    assert confidence == pytest.approx(assistant.decide("住所を変更したいです").confidence, abs=1e-4)
    assert 0.4 <= confidence <= 1.0
    assert texts[0] == address_answer()  # the knowledge base's answer with its link lines


def test_angry_message_is_handed_off_with_one_ticket(stack: BotStack, database_url: str) -> None:
    from bot.store.database import make_engine
    from bot.store.queue import Queue

    sender = uuid.uuid4().hex
    say(stack, "住所を変えたい", sender)
    messages = say(stack, "二回も住所変更したのに反映されてない、ふざけるな", sender)
    (custom,) = [m["custom"] for m in messages if "custom" in m]
    assert custom["route"] == "handoff"
    assert custom["handoff_reason"] == "anger"
    queue = Queue(make_engine(database_url))
    tickets = [t for t in queue.open_tickets() if t.conversation_id == sender]
    assert len(tickets) == 1 and tickets[0].id == custom["ticket_id"]
    entries = queue.get(tickets[0].id).entries
    assert [(e.sender, e.text) for e in entries][:3] == [
        ("customer", "住所を変えたい"),
        ("bot", entries[1].text),
        ("customer", "二回も住所変更したのに反映されてない、ふざけるな"),
    ]
    assert entries[1].text == address_answer()
    assert tickets[0].category == "登録情報の変更"
    # Staffed (the injected clock): a person takes over, so the bot is paused and says nothing more.
    assert tickets[0].offline is False and "staffed" not in custom
    assert say(stack, "住所を変えたい", sender) == []


def test_handoff_outside_staffed_hours_files_an_offline_ticket_and_the_bot_keeps_answering(
        offline_stack: BotStack) -> None:
    from bot.store.database import make_engine
    from bot.store.queue import Queue

    sender = uuid.uuid4().hex
    messages = say(offline_stack, "担当者と話したいです", sender)
    (custom,) = [m["custom"] for m in messages if "custom" in m]
    assert (custom["route"], custom["handoff_reason"], custom["staffed"]) == ("handoff", "human_request", False)
    assert custom["next_opening"] == "2026-11-24T09:00:00+09:00"  # the morning after the holiday
    (ticket,) = [t for t in Queue(make_engine(offline_stack.database_url)).open_tickets()
                 if t.conversation_id == sender]
    assert ticket.offline is True and ticket.id == custom["ticket_id"]
    # Not paused: the bot still answers while the ticket waits for the next shift.
    after = [m["custom"] for m in say(offline_stack, "住所を変えたい", sender) if "custom" in m]
    assert [(c["route"], c["faq_id"]) for c in after] == [("answer", "change-address")]


def test_two_unsure_turns_in_a_row_go_to_a_person(stack: BotStack) -> None:
    sender = uuid.uuid4().hex
    first = say(stack, "", sender)
    assert [m["custom"]["route"] for m in first if "custom" in m] == ["clarify"]
    second = say(stack, "😀", sender)
    (custom,) = [m["custom"] for m in second if "custom" in m]
    assert (custom["route"], custom["handoff_reason"]) == ("handoff", "unresolved")


def test_clarify_button_payload_answers_the_faq(stack: BotStack) -> None:
    sender = uuid.uuid4().hex
    clarify = say(stack, "", sender)
    buttons = next(m["buttons"] for m in clarify if "buttons" in m)
    assert len(buttons) == 4 and buttons[-1]["payload"] == "/request_human"
    for button in buttons[:3]:
        faq_id = json.loads(button["payload"].removeprefix("/faq"))["faq_id"]
        answer = say(stack, button["payload"], sender)
        (custom,) = [m["custom"] for m in answer if "custom" in m]
        assert (custom["route"], custom["faq_id"]) == ("answer", faq_id)  # the FAQ on the button


@pytest.mark.parametrize(("text", "route"),
                         [("", "clarify"), ("   ", "clarify"), ("😀" * 50, "clarify"),
                          ("<img src=x onerror=alert(1)>", "clarify"), ("あ" * 10_000, "out_of_scope"),
                          ("\x00\x1b[31m", "out_of_scope")],
                         ids=["empty", "spaces", "emoji", "html", "10k", "control"])
def test_bad_input_gets_its_route_and_a_reply(stack: BotStack, text: str, route: str) -> None:
    sender = uuid.uuid4().hex
    messages = say(stack, text, sender)
    assert any(m.get("text", "").strip() for m in messages), messages
    action = first_bot_action(stack, sender)
    assert ROUTE_OF_ACTION[action].value == route, action


def test_live_bot_decides_like_bot_ask(stack: BotStack, assistant) -> None:  # type: ignore[no-untyped-def]
    """`bot ask` must make the decision the live bot makes on a conversation's first turn."""
    rows = [json.loads(line) for line in (PROJECT_ROOT / "tests" / "data" / "heldout.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    sample = random.Random(7).sample(rows, 40) + [{"text": ""}, {"text": "ﾌｻﾞｹﾙﾅ!!"}]
    for row in sample:
        sender = uuid.uuid4().hex
        messages = say(stack, row["text"], sender)
        decision = assistant.decide(row["text"])
        action = first_bot_action(stack, sender)
        assert action == decision.action, row["text"]
        assert ROUTE_OF_ACTION[action].value == decision.route or action == "action_answer_faq"
        texts = [m["text"] for m in messages if "text" in m]
        assert texts and texts[0] == decision.answer, row["text"]
        customs = [m["custom"] for m in messages if "custom" in m]
        # Our actions send a machine-readable payload; domain responses (small talk) do not.
        assert bool(customs) == (decision.action in CUSTOM_ACTIONS), row["text"]
        for custom in customs[:1]:
            assert custom["route"] == decision.route
            assert custom.get("faq_id") == decision.faq_id
            assert custom.get("handoff_reason") == decision.handoff_reason


def test_malformed_json_body_is_rejected_cleanly(stack: BotStack) -> None:
    status, _ = post(f"{stack.rasa_url}/webhooks/rest/webhook", b"{not json")
    assert 400 <= status < 500
    assert say(stack, "こんにちは")  # the server is still fine


def last_bot_action(stack: BotStack, sender: str) -> str:
    url = f"{stack.rasa_url}/conversations/{sender}/tracker?token={stack.rasa_token}"
    with urllib.request.urlopen(url, timeout=30) as response:
        events = json.loads(response.read())["events"]
    return [e["name"] for e in events if e["event"] == "action" and e["name"] != "action_listen"][-1]


@pytest.mark.parametrize("miss", ["/out_of_scope", ""], ids=["out_of_scope", "asked_back"])
@pytest.mark.parametrize("reply", ["/deny", "/goodbye", "/thanks", "/affirm", "/out_of_scope"])
def test_no_or_goodbye_right_after_a_miss_offers_a_person(stack: BotStack, miss: str, reply: str) -> None:
    """「いいえ」/「じゃあいいです」/「了解、ありがとう」 after the bot missed, or a second miss in a row,
    is giving up: a person is offered."""
    sender = uuid.uuid4().hex
    say(stack, miss, sender)
    assert last_bot_action(stack, sender) in ("action_out_of_scope", "action_clarify")
    messages = say(stack, reply, sender)
    assert last_bot_action(stack, sender) == "action_offer_human"
    (custom,) = [m["custom"] for m in messages if "custom" in m]
    assert custom["route"] == "offer_human"


def test_no_after_an_answer_is_just_no(stack: BotStack) -> None:
    sender = uuid.uuid4().hex
    say(stack, '/faq{"faq_id": "hours"}', sender)
    assert last_bot_action(stack, sender) == "action_answer_faq"
    say(stack, "/deny", sender)
    assert last_bot_action(stack, sender) == "utter_deny"


def test_thanks_after_an_answer_is_just_thanks(stack: BotStack) -> None:
    """Only after a miss does a thank-you mean the customer leaves without an answer."""
    sender = uuid.uuid4().hex
    say(stack, '/faq{"faq_id": "hours"}', sender)
    say(stack, "/thanks", sender)
    assert last_bot_action(stack, sender) == "utter_thanks"
