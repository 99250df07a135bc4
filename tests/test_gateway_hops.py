"""Issue #12: how often a customer's turn leaves the event loop for a worker thread.

Under load each hop to a worker thread waited tens of milliseconds for a thread and then for
the event loop (the profile in the README, benchmarks/gateway_profile.py), so the everyday
paths take as few as the guarantees allow: the customer message is committed before it is
routed, and the bot's replies and the routed mark are committed together.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from bot.server.gateway_base import GatewayBase
from test_server import frames_until, is_bot_message, open_chat, server  # noqa: F401 - the fixture


@pytest.fixture()
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every step the gateway runs in a worker thread, in order."""
    seen: list[str] = []
    run = GatewayBase._db

    async def counted(func: Callable[..., Any], *args: Any) -> Any:
        seen.append(getattr(func, "__name__", repr(func)))
        return await run(func, *args)

    monkeypatch.setattr(GatewayBase, "_db", staticmethod(counted))
    return seen


def test_an_everyday_turn_takes_two_hops_and_the_state_one(server: Any, hops: list[str]) -> None:  # noqa: F811
    client, rasa, services = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "住所を変更したい", "client_id": "1"})
        answer = frames_until(ws, is_bot_message)[-1]["message"]
        assert answer["sender"] == "bot" and answer["faq_id"] == "change-address"
        turn = hops.index("_admit")
        assert hops[:turn] == ["history", "_who_answers", "history"]  # connecting: history and state, unanswered?
        assert hops[turn:] == ["_admit", "add_replies"], hops
        conversation_id = str(services.tokens.conversation_of(token))
        message = services.stores.chat_log.history(conversation_id)[-2]
        assert message.sender == "customer" and message.routed_at is not None  # marked with the reply
        hops.clear()
        assert asyncio.run(services.gateway.state(conversation_id))["mode"] == "bot"
        assert hops == ["_who_answers"]
