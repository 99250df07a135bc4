"""A LINE customer end to end: real Rasa server, action server and bot server; LINE is the local stand-in.

The customer asks an FAQ on LINE (answered by one reply), writes an angry message (a
ticket appears in the agents' console with the LINE display name), the agent claims and
replies (one push), resolves (the back-to-the-bot notice), and the bot answers the next
FAQ by reply again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from bot import wording
from bot.knowledge.csat import csat_texts
from bot.server.gateway import TEXT as GATEWAY_TEXT
from conftest import AGENT_PASSWORD, full_stack, temporary_database
from line_standin import ACCESS_TOKEN, CHANNEL_SECRET, LineStandIn, serve, until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER = "U" + "e2e0" * 8
ANGRY = "二回も住所変更したのに反映されてない、ふざけるな"


@pytest.fixture(scope="module")
def line_stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, LineStandIn]]:
    folder = tmp_path_factory.mktemp("line-e2e")
    standin = LineStandIn()
    standin.profiles[USER] = "LINE 花子"
    with serve(standin) as api_url, temporary_database("sqlite", folder) as url:
        env = {"LINE_CHANNEL_SECRET": CHANNEL_SECRET, "LINE_CHANNEL_ACCESS_TOKEN": ACCESS_TOKEN,
               "LINE_API_URL": api_url}
        with full_stack(trained_model, folder, url, env=env) as stack:
            yield stack, standin


def test_handoff_on_line_ticket_agent_push_and_back_to_the_bot_by_reply(line_stack: tuple[Any, LineStandIn]) -> None:
    stack, standin = line_stack
    public = httpx.Client(base_url=stack.server_url, timeout=60)
    agent = httpx.Client(base_url=stack.server_url, timeout=60)

    def say(text: str) -> None:
        body, headers = standin.webhook([standin.event("text", USER, text=text)])
        assert public.post("/line/webhook", content=body, headers=headers).status_code == 200

    def replies() -> list[Any]:
        return standin.of_kind("reply")

    def pushes() -> list[Any]:
        return standin.of_kind("push")

    # Emoji only: the bot asks for words (MessageGuard), in one reply.
    say("😀🙏🎉")
    (no_words,) = until(replies, 60)
    assert wording.NO_WORDS_TEXT in standin.texts(no_words)[0]

    # An FAQ: one reply call, with はい / いいえ under the answer.
    say("住所を変更したいです")
    faq = until(lambda: replies()[1:], 60)[0]
    assert faq.body["messages"][-1]["text"].endswith("役に立ちましたか？")
    assert [i["action"]["label"] for i in faq.body["messages"][-1]["quickReply"]["items"]] == ["はい", "いいえ"]

    # An angry message: the handoff reply is the turn's one reply, the ticket reaches the console.
    say(ANGRY)
    handoff = until(lambda: replies()[2:], 60)[0]
    assert "申し訳ございません" in standin.texts(handoff)[0]
    csrf = agent.post("/api/agent/login", json={"username": "sato", "password": AGENT_PASSWORD}).json()["csrf_token"]
    headers = {"X-CSRF-Token": csrf}
    ticket = until(lambda: [t for t in agent.get("/api/tickets").json()["tickets"]
                            if t["conversation_id"] == "line-" + USER], 30)[0]
    assert ticket["customer"]["name"] == "LINE 花子"
    assert ticket["customer"]["channel"] == "LINE"

    # The agent claims (「担当の佐藤が参加しました」 goes out by push) and replies: exactly one more push.
    assert agent.post(f"/api/tickets/{ticket['id']}/claim", headers=headers).status_code == 200
    joined = until(pushes, 30)
    assert standin.texts(joined[-1]) == [GATEWAY_TEXT["agent_joined"].format(name="佐藤")]
    before = len(pushes())
    reply = agent.post(f"/api/tickets/{ticket['id']}/reply", headers=headers, json={"text": "お待たせしました。確認します。"})
    assert reply.status_code == 200
    after_reply = until(lambda: pushes()[before:], 30)
    time.sleep(1.5)  # nothing else follows
    assert len(pushes()) == before + 1
    assert standin.texts(after_reply[0]) == ["お待たせしました。確認します。"]
    assert after_reply[0].body["to"] == USER

    # Resolve: the back-to-the-bot notice and the survey are pushed; the next FAQ is answered by reply.
    assert agent.post(f"/api/tickets/{ticket['id']}/resolve", headers=headers).status_code == 200
    until(lambda: len(pushes()) == before + 2, 30)
    assert standin.texts(pushes()[-1]) == [GATEWAY_TEXT["resolved"], csat_texts().question]
    replies_before, pushes_before = len(replies()), len(pushes())
    say("営業時間を教えて")
    answer = until(lambda: replies()[replies_before:], 60)[0]
    assert answer.body["messages"][-1]["quickReply"]["items"][0]["action"]["label"] == "はい"
    assert len(pushes()) == pushes_before
    # The whole conversation is the ticket's transcript, as for the widget.
    entries = [(e["sender"], e["text"]) for e in agent.get(f"/api/tickets/{ticket['id']}").json()["ticket"]["entries"]]
    assert ("customer", ANGRY) in entries and ("agent", "お待たせしました。確認します。") in entries
    # Every call the server made was accepted (no refused reply token, no 5-message overflow).
    assert all(c.status < 300 for c in standin.calls)
