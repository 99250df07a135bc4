"""The LINE channel on the bot server, against the local LINE API stand-in (tests/line_standin.py).

Rasa is scripted here (unit level, like tests/test_server.py); tests/test_e2e_line.py runs
a handoff on LINE with the real Rasa and action servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot.channels.line.client import LineApi, LineApiError
from bot.channels.line.events import parse_body
from bot.channels.line.messages import MAX_TEXT, Outgoing, line_messages, split_text
from bot.channels.line.reply_tokens import ReplyTokens
from bot.channels.line.signature import sign, valid_signature
from bot.channels.line.texts import TEXT
from bot.handoff.packet import HandoffPacket, Turn
from bot.knowledge.csat import csat_texts
from bot.server.app import Services, create_app, stores_for
from bot.server.gateway import TEXT as GATEWAY_TEXT
from bot.server.rasa_client import BotMessage
from bot.server.tokens import ConversationTokens
from bot.settings import LineSettings
from bot.store.csat import Surveys
from bot.wording import CSAT_TEXT
from line_standin import ACCESS_TOKEN, CHANNEL_SECRET, LineStandIn, serve, until

SECRET = "test-secret-key-" + "y" * 32
PASSWORD = "line-agent-password"
USER = "U" + "a" * 32
CLARIFY = [{"title": "住所の変更", "payload": '/faq{"faq_id": "change-address"}'},
           {"title": "支払い方法の変更（クレジットカード・口座振替・コンビニ払いのご案内）",
            "payload": '/faq{"faq_id": "change-payment"}'},
           {"title": "担当者と話したい", "payload": "/request_human"}]


class ScriptedRasa:
    """Answers like our bot: FAQ answers, three-message turns, clarify buttons, handoffs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.paused: set[str] = set()
        self.services: Services | None = None
        self.delay = 0.0

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[BotMessage]:
        self.calls.append((conversation_id, text))
        if self.delay:
            await asyncio.sleep(self.delay)
        if conversation_id in self.paused:
            return []
        if "ふざけるな" in text or text == "/request_human":
            assert self.services is not None
            ticket, _ = self.services.stores.queue.enqueue(HandoffPacket(
                f"{conversation_id}:{len(self.calls)}", conversation_id, ["anger"], [Turn("customer", text)],
                customer=metadata.get("customer") or {}))
            self.paused.add(conversation_id)
            return [BotMessage("申し訳ございません。担当者におつなぎします。", [],
                               {"route": "handoff", "handoff_reason": "anger", "ticket_id": ticket.id})]
        if "三つ" in text:
            return [BotMessage("一つめのご案内です。", [], {"route": "answer"}),
                    BotMessage("二つめのご案内です。", [], {"route": "answer"}),
                    BotMessage("三つめのご案内です。", [], {"route": "answer"})]
        if "長い" in text:
            return [BotMessage("ご案内します。" * 1700, [], {"route": "answer"})]  # 11,900 characters
        if "七つ" in text:
            return [BotMessage(f"{n}つめのご案内です。", [], {"route": "answer"}) for n in range(1, 8)]
        if "どれ" in text:
            return [BotMessage("次のどれに近いでしょうか。", CLARIFY, {"route": "clarify"})]
        if text == "/answer_not_helpful":
            return [BotMessage("お役に立てず申し訳ございません。", [], {"route": "clarify"})]
        return [BotMessage("住所はマイページから変更できます。", [],
                           {"route": "answer", "faq_id": "change-address", "intent": "faq", "confidence": 0.9})]

    async def resume(self, conversation_id: str) -> None:
        self.paused.discard(conversation_id)

    async def paused_handoff(self, conversation_id: str) -> None:
        return None  # every handoff here filed its ticket: a silent Rasa was left paused by a lost resume

    async def close(self) -> None:
        pass


class Line:
    """A bot server with the LINE channel on, the stand-in, and the Rasa script."""

    def __init__(self, client: TestClient, standin: LineStandIn, rasa: ScriptedRasa, services: Services) -> None:
        self.client, self.standin, self.rasa, self.services = client, standin, rasa, services

    @property
    def channel(self) -> Any:
        return self.client.app.state.line  # type: ignore[attr-defined]

    def post(self, events: list[dict[str, Any]]) -> Any:
        body, headers = self.standin.webhook(events)
        return self.client.post("/line/webhook", content=body, headers=headers)

    def post_raw(self, body: bytes, headers: dict[str, str]) -> int:
        return self.client.post("/line/webhook", content=body, headers=headers).status_code

    def say(self, text: str, user: str = USER, **fields: Any) -> dict[str, Any]:
        event = self.standin.event("text", user, text=text, **fields)
        assert self.post([event]).status_code == 200
        return event

    def settle(self) -> None:
        """Wait until every event is handled and every message sent."""
        self.client.portal.call(self.channel.drain)  # type: ignore[union-attr]

    def sent(self, kind: str) -> list[Any]:
        return self.standin.of_kind(kind)


@contextlib.contextmanager
def line_server(folder: Path, **settings: Any) -> Iterator[Line]:
    """A bot server on a fresh SQLite file with the LINE channel on (``settings``: more LineSettings)."""
    standin = LineStandIn()
    standin.profiles[USER] = "山田 花子"
    rasa = ScriptedRasa()
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), rasa,  # type: ignore[arg-type]
                        ConversationTokens(SECRET))
    rasa.services = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    with serve(standin) as url:
        line = LineSettings(channel_secret=CHANNEL_SECRET, access_token=ACCESS_TOKEN, api_url=url, **settings)
        with TestClient(create_app(services, SECRET, watch_interval=0.05, line=line)) as client:
            yield Line(client, standin, rasa, services)


@pytest.fixture()
def line(tmp_path: Path) -> Iterator[Line]:
    with line_server(tmp_path) as running:
        yield running


def hand_off(line: Line) -> Any:
    """An angry message on LINE; the ticket it filed."""
    line.say("ふざけるな")
    line.settle()
    return until(lambda: line.services.stores.queue.open_ticket_for("line-" + USER))


# ---- signature and webhook ----------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = '{"events":[]}'.encode()
    # printf '{"events":[]}' | openssl dgst -sha256 -hmac secret -binary | base64
    assert sign("secret", body) == "pkK1lVPJPiJ+wPLziRD79xIxohl8AImYM8AEeM7IbzQ="
    assert valid_signature("secret", body, sign("secret", body))
    assert not valid_signature("secret", body + b" ", sign("secret", body))
    assert not valid_signature("secret", body, None)
    assert not valid_signature("secret", body, "")
    assert not valid_signature("secret", body, "ｘ" * 44)  # not ASCII: refused, no exception


@pytest.mark.parametrize("headers", [{}, {"X-Line-Signature": "bm90IHRoZSBzaWduYXR1cmU="},
                                     {"X-Line-Signature": sign("another-secret", b"x")}],
                         ids=["missing", "bad", "other-secret"])
def test_unsigned_webhook_gets_401_and_nothing_is_stored(line: Line, headers: dict[str, str]) -> None:
    body, _ = line.standin.webhook([line.standin.event("text", USER, text="住所を変えたい")])
    response = line.client.post("/line/webhook", content=body, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == 401
    assert "署名" in response.json()["error"]
    line.settle()
    assert line.rasa.calls == []
    assert line.services.stores.chat_log.history("line-" + USER) == []
    assert line.services.stores.chat_log.customer_of("line-" + USER) == {}
    assert line.standin.calls == []


def test_signed_with_the_wrong_secret_is_refused(line: Line) -> None:
    body, headers = line.standin.webhook([line.standin.event("text", USER, text="こんにちは")], secret="wrong")
    assert line.client.post("/line/webhook", content=body, headers=headers).status_code == 401


def test_verify_request_with_no_events_gets_200(line: Line) -> None:
    response = line.post([])
    assert response.status_code == 200
    line.settle()
    assert line.standin.calls == []


def test_webhook_answers_before_the_bot_has_answered(line: Line) -> None:
    line.rasa.delay = 2.0
    started = time.monotonic()
    line.say("住所を変えたい")  # asserts the 200
    assert time.monotonic() - started < line.rasa.delay
    assert line.sent("reply") == []  # the bot is still preparing its answer
    assert until(lambda: line.sent("reply"))


def test_channel_is_off_without_its_secrets(tmp_path: Path) -> None:
    services = Services(stores_for(f"sqlite:///{tmp_path / 'bot.db'}"), ScriptedRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET))
    with TestClient(create_app(services, SECRET, line=LineSettings())) as client:
        assert client.post("/line/webhook", content=b"{}").status_code == 404


# ---- turns, reply tokens, push ------------------------------------------------------------------


def test_a_turn_with_three_bot_messages_is_one_reply_call(line: Line) -> None:
    line.say("三つ教えて")
    line.settle()
    replies = line.sent("reply")
    assert len(replies) == 1
    assert line.standin.texts(replies[0]) == ["一つめのご案内です。", "二つめのご案内です。", "三つめのご案内です。"]
    assert line.sent("push") == []
    stored = line.services.stores.chat_log.history("line-" + USER)
    assert [m.sender for m in stored] == ["customer", "bot", "bot", "bot"]
    assert line.services.stores.chat_log.customer_of("line-" + USER) == {"channel": "LINE", "name": "山田 花子"}


def test_more_than_five_messages_are_merged_into_five(line: Line) -> None:
    line.say("七つ教えて")
    line.settle()
    (reply,) = line.sent("reply")
    texts = line.standin.texts(reply)
    assert len(texts) == 5
    assert "\n\n".join(texts).count("ご案内です。") == 7


def test_redelivered_event_is_handled_once(line: Line) -> None:
    event = line.say("住所を変えたい")
    line.settle()
    again = {**event, "deliveryContext": {"isRedelivery": True}}
    assert line.post([again]).status_code == 200
    line.settle()
    assert len(line.sent("reply")) == 1
    assert [m.sender for m in line.services.stores.chat_log.history("line-" + USER)] == ["customer", "bot"]
    assert len(line.rasa.calls) == 1


def test_redelivery_after_a_restart_is_still_stored_once(line: Line) -> None:
    event = line.say("住所を変えたい")
    line.settle()
    line.channel._seen.clear()  # what a restarted server knows of earlier events: nothing
    line.post([{**event, "replyToken": line.standin.issue_token()}])
    line.settle()
    assert len(line.rasa.calls) == 1
    assert [m.sender for m in line.services.stores.chat_log.history("line-" + USER)] == ["customer", "bot"]


def test_expired_reply_token_falls_back_to_one_push(line: Line) -> None:
    line.standin.token_seconds = 0.3
    line.rasa.delay = 0.6  # the bot answers after LINE's token expired
    line.say("住所を変えたい")
    line.settle()
    refused = [c for c in line.standin.of_kind("reply", accepted=False) if c.status == 400]
    assert len(refused) == 1
    (push,) = line.sent("push")
    assert push.body["to"] == USER
    assert line.standin.texts(push)[0].startswith("住所はマイページから変更できます。")
    assert line.channel.push_counter.this_month() == 1


def test_token_older_than_the_setting_is_not_tried(line: Line) -> None:
    line.channel.tokens = ReplyTokens(0.0)  # LINE_REPLY_TOKEN_SECONDS=0: never use a reply token
    line.say("住所を変えたい")
    line.settle()
    assert line.standin.of_kind("reply", accepted=False) == []
    assert len(line.sent("push")) == 1


def test_429_is_retried(line: Line) -> None:
    line.standin.fail_next["reply"] = [429, 500]
    line.say("三つ教えて")
    line.settle()
    statuses = [c.status for c in line.standin.calls if c.kind == "reply"]
    assert statuses == [429, 500, 200]
    assert line.sent("push") == []


def test_rate_limit_of_the_stand_in_is_retried_with_back_off(line: Line) -> None:
    line.standin.rate_per_second = 2
    users = [f"U{n:032x}" for n in range(5)]
    for user in users:
        line.standin.profiles[user] = user[-4:]
    line.post([line.standin.event("text", user, text="住所を変えたい") for user in users])
    line.settle()
    answered = {c.body["replyToken"] for c in line.sent("reply")} | {c.body["to"] for c in line.sent("push")}
    assert len(answered) == 5
    assert any(c.status == 429 for c in line.standin.calls)


def test_push_failing_for_good_is_shown_in_the_ticket(line: Line) -> None:
    ticket = hand_off(line)
    line.standin.fail_next["push"] = [500] * 4
    line.services.stores.queue.claim(ticket.id, "sato")
    line.client.portal.call(line.services.gateway.agent_reply, ticket.id, "sato", "確認します。")
    line.settle()
    entries = line.services.stores.queue.get(ticket.id).entries
    assert any(e.sender == "system" and "LINE への送信に失敗しました" in e.text for e in entries)
    assert line.channel.failed_pushes == 1


# ---- quick replies, feedback, follow ------------------------------------------------------------


def test_clarify_buttons_become_quick_replies_and_postbacks_choose(line: Line) -> None:
    line.say("どれですか")
    line.settle()
    (reply,) = line.sent("reply")
    items = reply.body["messages"][-1]["quickReply"]["items"]
    assert [i["action"]["displayText"] for i in items] == [b["title"] for b in CLARIFY]
    assert all(len(i["action"]["label"]) <= 20 for i in items)
    line.post([line.standin.event("postback", USER, data=items[0]["action"]["data"])])
    line.settle()
    assert line.rasa.calls[-1] == ("line-" + USER, '/faq{"faq_id": "change-address"}')
    assert len(line.sent("reply")) == 2


def test_a_postback_not_offered_is_refused_politely(line: Line) -> None:
    line.say("住所を変えたい")
    line.post([line.standin.event("postback", USER, data="b:/request_human")])
    line.settle()
    assert ("line-" + USER, "/request_human") not in line.rasa.calls
    assert line.standin.texts(line.sent("reply")[-1]) == [GATEWAY_TEXT["stale_button"]]


def test_faq_answer_asks_helpful_with_yes_no(line: Line) -> None:
    line.say("住所を変えたい")
    line.settle()
    (reply,) = line.sent("reply")
    last = reply.body["messages"][-1]
    assert last["text"].endswith("役に立ちましたか？")
    no = last["quickReply"]["items"][1]["action"]
    assert no["label"] == "いいえ"
    line.post([line.standin.event("postback", USER, data=no["data"])])
    line.settle()
    assert line.rasa.calls[-1][1] == "/answer_not_helpful"
    answer = [m for m in line.services.stores.chat_log.history("line-" + USER) if m.faq_id][0]
    assert answer.feedback is False


def test_follow_greets_with_the_main_topics(line: Line) -> None:
    line.post([line.standin.event("follow", USER)])
    line.settle()
    (reply,) = line.sent("reply")
    assert line.standin.texts(reply) == [TEXT["greeting"]]
    assert len(reply.body["messages"][0]["quickReply"]["items"]) >= 2


def test_unfollow_ends_the_conversation_and_cancels_a_waiting_handoff(line: Line) -> None:
    ticket = hand_off(line)
    line.post([line.standin.event("unfollow", USER)])
    line.settle()
    assert line.services.stores.queue.get(ticket.id).status == "resolved"
    assert line.sent("push") == []


# ---- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["image", "sticker", "audio", "location", "file"])
def test_media_gets_a_polite_text_only_reply(line: Line, kind: str) -> None:
    line.post([line.standin.event(kind, USER)])
    line.settle()
    (reply,) = line.sent("reply")
    assert line.standin.texts(reply) == [TEXT["media"]]
    assert line.rasa.calls == []


def test_media_while_a_person_owns_the_chat_is_noted_in_the_ticket(line: Line) -> None:
    ticket = hand_off(line)
    line.post([line.standin.event("sticker", USER)])
    line.settle()
    entries = line.services.stores.queue.get(ticket.id).entries
    assert any(e.sender == "system" and "スタンプ" in e.text for e in entries)


def test_ten_thousand_characters(line: Line) -> None:
    line.say("あ" * 10_000)
    line.say("い" * 10_001)
    line.settle()
    first, second = line.sent("reply")
    assert line.rasa.calls == [("line-" + USER, "あ" * 10_000)]
    assert line.standin.texts(second) == [GATEWAY_TEXT["too_long"]]


def test_emoji_only_goes_to_the_bot_and_gets_one_reply(line: Line) -> None:
    line.say("😀🙏🎉")
    line.settle()
    assert line.rasa.calls == [("line-" + USER, "😀🙏🎉")]
    assert len(line.sent("reply")) == 1


@pytest.mark.parametrize("event", [
    {"type": "beacon", "beacon": {"hwid": "d41d8cd98f", "type": "enter"}},
    {"type": "memberJoined"},
    {"type": "message", "message": {"type": "somethingNew", "id": "1"}},
    {"type": "message", "message": "not an object"},
    {"type": "message", "message": {"type": "text", "text": 42}},
    {"type": "postback"},
    "a string, not an event",
    {"type": "message", "source": {"type": "group", "groupId": "C1"}, "message": {"type": "text", "text": "hi"}},
    {"type": "message", "mode": "standby", "message": {"type": "text", "text": "hi"}},
], ids=["beacon", "memberJoined", "new-message-type", "message-not-object", "text-not-string", "postback-no-data",
        "string", "group", "standby"])
def test_unknown_and_odd_events_are_ignored_safely(line: Line, event: Any) -> None:
    if isinstance(event, dict):
        event = {"source": {"type": "user", "userId": USER}, "replyToken": line.standin.issue_token(),
                 "webhookEventId": "X" + str(hash(json.dumps(event))), **event}
    assert line.post([event, line.standin.event("text", USER, text="住所を変えたい")]).status_code == 200
    line.settle()
    assert len(line.sent("reply")) == 1  # the good event after it is still answered
    assert line.rasa.calls == [("line-" + USER, "住所を変えたい")]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"events": "no"}', b"\xff\xfe",
                                  b'{"events": [{"type": "\\ud800"}]}'],
                         ids=["not-json", "list", "events-not-list", "not-utf8", "lone-surrogate"])
def test_malformed_json_with_a_valid_signature_is_400_and_stores_nothing(line: Line, body: bytes) -> None:
    response = line.client.post("/line/webhook", content=body,
                                headers={"X-Line-Signature": sign(CHANNEL_SECRET, body)})
    assert response.status_code == 400
    line.settle()
    assert line.standin.calls == []


def test_huge_body_is_refused_before_reading_it_all(line: Line) -> None:
    body = b" " * (1024 * 1024 + 1)
    response = line.client.post("/line/webhook", content=body, headers={"X-Line-Signature": sign(CHANNEL_SECRET, body)})
    assert response.status_code == 413


# ---- handoff on LINE (scripted Rasa; real Rasa in tests/test_e2e_line.py) -----------------------


def test_handoff_agent_reply_is_one_push_and_the_bot_answers_by_reply_after_resolve(line: Line) -> None:
    ticket = hand_off(line)
    assert ticket.customer.get("name") == "山田 花子"
    assert len(line.sent("reply")) == 1
    gateway, portal = line.services.gateway, line.client.portal
    portal.call(gateway.claim, ticket.id, "sato")
    line.settle()
    pushes_before = len(line.sent("push"))  # 「担当の佐藤がチャットに参加しました。」
    portal.call(gateway.agent_reply, ticket.id, "sato", "お待たせしました。確認します。")
    line.settle()
    pushes = line.sent("push")
    assert len(pushes) == pushes_before + 1
    agent_push = pushes[-1].body["messages"]
    assert [m["text"] for m in agent_push] == ["お待たせしました。確認します。"]
    assert agent_push[0]["sender"]["name"] == "担当: 佐藤"
    portal.call(gateway.resolve, ticket.id, "sato")
    line.settle()
    # One push: back to the bot, then the survey's question with the ratings as quick replies.
    assert line.standin.texts(line.sent("push")[-1]) == [GATEWAY_TEXT["resolved"], csat_texts().question]
    replies_before = len(line.sent("reply"))
    line.say("住所を変えたい")
    line.settle()
    assert len(line.sent("reply")) == replies_before + 1
    assert line.standin.texts(line.sent("reply")[-1])[0].startswith("住所はマイページから変更できます。")


def test_the_survey_after_a_resolved_chat_is_rated_with_a_quick_reply_once(line: Line) -> None:
    ticket = hand_off(line)
    gateway, portal = line.services.gateway, line.client.portal
    portal.call(gateway.claim, ticket.id, "sato")
    portal.call(gateway.resolve, ticket.id, "sato")
    line.settle()
    question = line.sent("push")[-1].body["messages"][-1]
    labels = csat_texts().labels
    items = [item["action"] for item in question["quickReply"]["items"]]
    assert [a["label"] for a in items] == [f"{n} {labels[n - 1]}" for n in (5, 4, 3, 2, 1)]
    assert all(len(a["label"]) <= 20 for a in items)
    four = items[1]
    line.post([line.standin.event("postback", USER, data=four["data"])])
    line.settle()
    assert line.standin.texts(line.sent("reply")[-1]) == [csat_texts().thanks]
    stored = Surveys(line.services.stores.engine).for_ticket(ticket.id)
    assert (stored.rating, stored.comment, stored.channel, stored.agent) == (4, None, "line", "sato")
    line.post([line.standin.event("postback", USER, data=items[0]["data"])])  # a second tap
    line.post([line.standin.event("postback", USER, data=f"cs:{ticket.id}:9")])  # forged data
    line.settle()
    texts = [t for call in line.sent("reply")[-2:] for t in line.standin.texts(call)]
    assert texts == [CSAT_TEXT["already_rated"], CSAT_TEXT["bad_rating"]]
    assert Surveys(line.services.stores.engine).for_ticket(ticket.id).rating == 4


def test_agent_reply_within_the_token_time_is_a_free_reply(line: Line) -> None:
    ticket = hand_off(line)
    line.client.portal.call(line.services.gateway.claim, ticket.id, "sato")
    line.settle()
    line.say("まだですか")  # goes to the ticket: the bot says nothing, the token stays unused
    line.settle()
    pushes = len(line.sent("push"))
    line.client.portal.call(line.services.gateway.agent_reply, ticket.id, "sato", "ただいま確認しています。")
    line.settle()
    assert len(line.sent("push")) == pushes
    assert line.standin.texts(line.sent("reply")[-1]) == ["ただいま確認しています。"]


def test_loading_indicator_while_the_bot_prepares_an_answer(line: Line) -> None:
    line.say("住所を変えたい")
    line.settle()
    (loading,) = line.sent("loading") or [None]
    assert loading is not None and loading.body["chatId"] == USER


def test_mark_as_read_when_an_agent_claims(tmp_path: Path) -> None:
    with line_server(tmp_path, mark_as_read=True) as line:
        event = line.say("ふざけるな")
        line.settle()
        ticket = until(lambda: line.services.stores.queue.open_ticket_for("line-" + USER))
        line.client.portal.call(line.services.gateway.claim, ticket.id, "sato")
        (read,) = until(lambda: line.standin.of_kind("markAsRead"))
        assert read.body["markAsReadToken"] == event["message"]["markAsReadToken"]


def test_mark_as_read_when_an_agent_opens_the_ticket(tmp_path: Path) -> None:
    """既読 as soon as an agent opens the ticket in the console (GET /api/tickets/{id}), before any claim."""
    with line_server(tmp_path, mark_as_read=True) as line:
        event = line.say("ふざけるな")
        line.settle()
        ticket = until(lambda: line.services.stores.queue.open_ticket_for("line-" + USER))
        assert line.standin.of_kind("markAsRead") == []
        login = line.client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
        assert login.status_code == 200
        assert line.client.get(f"/api/tickets/{ticket.id}").status_code == 200
        (read,) = until(lambda: line.standin.of_kind("markAsRead"))
        assert read.body["markAsReadToken"] == event["message"]["markAsReadToken"]
        assert line.services.stores.queue.get(ticket.id).status == "waiting"  # opened, not claimed


def test_loading_indicator_when_an_agent_takes_the_chat(line: Line) -> None:
    """A person is preparing an answer: the customer sees LINE's loading animation."""
    ticket = hand_off(line)
    before = len(line.sent("loading"))
    line.client.portal.call(line.services.gateway.claim, ticket.id, "sato")
    until(lambda: len(line.sent("loading")) > before)
    assert line.sent("loading")[-1].body["chatId"] == USER


# ---- the pieces ---------------------------------------------------------------------------------


def test_long_text_is_split_at_sentence_ends_within_the_limit() -> None:
    sentence = "ご登録の住所はマイページの会員情報から変更できます。"
    text = sentence * 400
    pieces = split_text(text)
    assert all(len(p) <= MAX_TEXT for p in pieces)
    assert "".join(pieces) == text
    assert all(p.endswith("。") for p in pieces)
    assert split_text("あ" * 12_000) == ["あ" * 5000, "あ" * 5000, "あ" * 2000]
    assert split_text("  ") == []


def test_quick_replies_are_capped_at_13_with_short_labels() -> None:
    buttons = [{"title": f"とても長い選択肢のタイトルですね、番号は{n}", "payload": f"/faq{n}"} for n in range(20)]
    (bubble,) = line_messages([Outgoing("どれですか", buttons=buttons)])
    items = bubble["quickReply"]["items"]
    assert len(items) == 13
    assert all(len(i["action"]["label"]) <= 20 for i in items)
    assert items[0]["action"]["label"].endswith("…")


def test_webhook_events_are_parsed_defensively() -> None:
    with pytest.raises(ValueError):
        parse_body({"no": "events"})
    events = parse_body({"events": [
        {"type": "message", "source": {"type": "user", "userId": USER}, "webhookEventId": "E1", "replyToken": "r",
         "message": {"type": "text", "text": "こんにちは"}, "deliveryContext": {"isRedelivery": True}},
        {"type": "unfollow", "source": {"type": "user", "userId": USER}},
        {"type": "follow", "source": {"type": "user"}},  # no user id: skipped
    ]})
    assert [(e.kind, e.text, e.redelivery) for e in events] == [("text", "こんにちは", True), ("unfollow", "", False)]


def test_api_client_gives_up_after_its_attempts() -> None:
    standin = LineStandIn()
    standin.fail_next["push"] = [503] * 3

    async def push() -> None:
        api = LineApi(url, ACCESS_TOKEN, attempts=3, backoff=0.01)
        try:
            await api.push(USER, [{"type": "text", "text": "x"}])
        finally:
            await api.close()

    with serve(standin) as url:
        with pytest.raises(LineApiError) as caught:
            asyncio.run(push())
    assert caught.value.status == 503
    assert len(standin.calls) == 3


def test_settings_read_secrets_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret").write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("LINE_CHANNEL_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "token")
    monkeypatch.setenv("LINE_API_URL", "http://127.0.0.1:9/")
    settings = LineSettings.from_env()
    assert (settings.channel_secret, settings.access_token, settings.api_url, settings.enabled) == \
        ("from-file", "token", "http://127.0.0.1:9", True)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", "both")
    with pytest.raises(ValueError, match="only one"):
        LineSettings.from_env()
    monkeypatch.delenv("LINE_CHANNEL_SECRET")
    monkeypatch.delenv("LINE_CHANNEL_SECRET_FILE")
    assert not LineSettings.from_env().enabled
    assert LineSettings().api_url == "https://api.line.me"


def test_bot_run_says_in_one_line_whether_line_is_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import bot.assistant
    import bot.launcher
    from bot import cli
    from bot.settings import get_settings

    printed: list[str] = []
    monkeypatch.setattr(bot.launcher, "run_forever", lambda stack, notes: printed.extend(notes) or 0)
    monkeypatch.setattr(bot.assistant, "latest_model", lambda folder: tmp_path / "model.tar.gz")
    for name in ("LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    try:
        assert cli.main(["run"]) == 0
        assert printed[-1] == TEXT["channel_off"] and "\n" not in printed[-1]
        monkeypatch.setenv("LINE_CHANNEL_SECRET", "s")
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "t")
        get_settings.cache_clear()
        assert cli.main(["run"]) == 0
        assert printed[-1] == TEXT["channel_on"]
    finally:
        get_settings.cache_clear()


def test_push_counts_per_month_reach_the_analytics_page_with_a_warning(tmp_path: Path) -> None:
    with line_server(tmp_path, push_warning=1) as line:
        line.channel.tokens = ReplyTokens(0.0)  # every message by push
        line.say("住所を変えたい")
        line.say("三つ教えて")
        line.settle()
        assert len(line.sent("push")) == 2
        login = line.client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
        assert login.status_code == 200
        pushes = line.client.get("/api/analytics?days=7").json()["report"]["line"]
        month = line.channel.push_counter.month()
        assert pushes == {"month": month, "this_month": 2, "warning": 1, "over": True, "months": {month: 2}}


def test_token_time_runs_from_the_webhook_not_from_the_turn(line: Line) -> None:
    line.channel.tokens = ReplyTokens(0.5)  # LINE_REPLY_TOKEN_SECONDS=0.5
    line.rasa.delay = 0.7
    line.post([line.standin.event("text", USER, text="住所を変えたい"),
               line.standin.event("text", USER, text="三つ教えて")])  # waits for the first turn
    line.settle()
    assert len(line.sent("reply")) == 0  # both turns ended after 0.5 s: their tokens are never tried
    assert [len(line.standin.texts(p)) for p in line.sent("push")] == [1, 3]


def test_groups_are_answered_only_when_enabled(tmp_path: Path) -> None:
    group = "C" + "b" * 32
    with line_server(tmp_path, groups=True) as line:
        join = {**line.standin.event("follow", USER), "type": "join", "source": {"type": "group", "groupId": group}}
        said = line.standin.event("text", USER, text="住所を変えたい")
        said["source"] = {"type": "group", "groupId": group, "userId": USER}
        line.post([join, said])
        line.settle()
        greeting, answer = line.sent("reply")
        assert line.standin.texts(greeting) == [TEXT["greeting_group"]]
        assert line.rasa.calls == [("line-" + group, "住所を変えたい")]
        assert line.sent("loading") == [] and line.sent("profile") == []  # 1:1 chats only
        assert line.services.stores.chat_log.customer_of("line-" + group) == {"channel": "LINE"}


def test_a_long_answer_is_split_at_sentence_ends_in_one_reply(line: Line) -> None:
    line.say("長い説明をください")
    line.settle()
    (reply,) = line.sent("reply")
    texts = line.standin.texts(reply)
    assert len(texts) == 3 and all(len(t) <= 5000 and t.endswith("ご案内します。") for t in texts)
    assert "".join(texts) == "ご案内します。" * 1700


def test_emoji_count_twice_toward_the_text_limit() -> None:
    text = "😀" * 3000  # 6,000 UTF-16 units
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert [len(p.encode("utf-16-le")) // 2 for p in pieces] == [5000, 1000]
    (bubble,) = line_messages([Outgoing("どれ", buttons=[{"title": "😀" * 15, "payload": "/x"}])])
    label = bubble["quickReply"]["items"][0]["action"]["label"]
    assert len(label.encode("utf-16-le")) // 2 <= 20 and label.endswith("…")


def test_a_failing_profile_is_tried_once_and_never_holds_up_the_answer(line: Line) -> None:
    line.standin.fail_next["profile"] = [500]
    line.say("住所を変えたい")
    line.settle()
    assert [c.status for c in line.standin.calls if c.kind == "profile"] == [500]
    assert len(line.sent("reply")) == 1
    assert line.services.stores.chat_log.customer_of("line-" + USER) == {"channel": "LINE"}


def test_webhook_is_in_the_openapi_description(line: Line) -> None:
    webhook = line.client.get("/openapi.json").json()["paths"]["/line/webhook"]["post"]
    assert {str(status) for status in webhook["responses"]} == {"200", "400", "401", "404", "413"}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_push_counter_adds_per_month_on_both_databases(tmp_path: Path, kind: str) -> None:
    import datetime as dt

    from sqlalchemy import create_engine

    from bot.channels.line.push_count import PushCounter
    from conftest import temporary_database

    with temporary_database(kind, tmp_path) as url:
        engine = create_engine(url)
        now = [dt.datetime(2026, 11, 30, 23, 59)]
        counter = PushCounter(engine, warning=2, clock=lambda: now[0])
        for _ in range(3):
            counter.add()
        now[0] = dt.datetime(2026, 12, 1, 0, 0)
        PushCounter(engine, warning=2, clock=lambda: now[0]).add()  # a second server: same table
        assert counter.counts() == {"2026-11": 3, "2026-12": 1}
        assert counter.summary() == {"month": "2026-12", "this_month": 1, "warning": 2, "over": False,
                                     "months": {"2026-11": 3, "2026-12": 1}}
        engine.dispose()


ODD_VALUES: list[Any] = [None, 0, -1, 2**70, 1.5, True, "", "x" * 20_000, [], {}, [1, "a"], {"a": {"b": []}},
                         "😀" * 10, "\u202e逆", "/request_human", "fb:1:1", "b:/faq{}", "line-U1"]


def test_seeded_fuzz_of_signed_webhook_bodies_never_breaks_the_channel(line: Line) -> None:
    import random

    rng = random.Random(13)
    for _ in range(60):
        kind = rng.choice(["text", "postback", "follow", "image"])
        extra = {"text": "こんにちは"} if kind == "text" else {"data": "b:/x"} if kind == "postback" else {}
        event = line.standin.event(kind, USER, **extra)
        path = rng.choice([("type",), ("source",), ("source", "userId"), ("source", "type"), ("message",),
                           ("message", "type"), ("message", "text"), ("replyToken",), ("webhookEventId",),
                           ("deliveryContext",), ("timestamp",), ("mode",), ("postback",)])
        target = event
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target.get(key), dict) else target
        target[path[-1]] = rng.choice(ODD_VALUES)
        body, headers = line.standin.webhook([event, rng.choice(ODD_VALUES)])
        assert line.post_raw(body, headers) in (200, 400)
    line.settle()
    assert line.channel.failed_pushes == 0
    line.say("住所を変えたい", user="U" + "9" * 32)
    line.settle()
    assert any(c.body.get("replyToken") for c in line.sent("reply"))  # still answering
