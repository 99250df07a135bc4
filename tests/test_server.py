"""Bot server (gateway, agent API, auth) on a real database with a scripted Rasa stand-in.

The stand-in replaces only the Rasa HTTP server (unit level); tests/test_e2e_handoff.py
runs the same flows against the real Rasa server and action server.
"""

from __future__ import annotations

import contextlib

from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot.server.app import Services, create_app, stores_for
from bot.server.gateway import TEXT
from bot.server.rasa_client import BotMessage, PausedHandoff, RasaUnavailable
from bot.server.tokens import ConversationTokens
from bot.handoff.packet import HandoffPacket, Turn
from test_agent_sessions import Clock

SECRET = "test-secret-key-" + "x" * 32
PASSWORD = "correct-horse-battery"


class ScriptedRasa:
    """Answers like our Rasa bot: FAQ answer, or a handoff that files a ticket (as action_handoff)."""

    def __init__(self, services_ref: dict[str, Any]) -> None:
        self.calls: list[tuple[str, str]] = []
        self.resumed: list[str] = []
        self.down = False
        self.paused: set[str] = set()  # conversations Rasa keeps silent for (ConversationPaused)
        self.handoffs: dict[str, PausedHandoff] = {}  # the handoff a paused conversation's tracker ends with
        self._services = services_ref

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[BotMessage]:
        if self.down:
            raise RasaUnavailable("down")
        self.calls.append((conversation_id, text))
        if conversation_id in self.paused:
            return []
        if "保留" in text:  # the action server could not reach the database: packet in its outbox
            return [BotMessage("申し訳ございません。担当者におつなぎします。", [],
                               {"route": "handoff", "handoff_reason": "anger", "ticket_id": None})]
        if "ふざけるな" in text or text == "/request_human":
            queue = self._services["services"].stores.queue
            ticket, _ = queue.enqueue(HandoffPacket(f"{conversation_id}:{len(self.calls)}", conversation_id,
                                                    ["anger"], [Turn("customer", text)]))
            return [BotMessage("申し訳ございません。担当者におつなぎします。", [],
                               {"route": "handoff", "handoff_reason": "anger", "ticket_id": ticket.id})]
        if "時間外" in text:
            queue = self._services["services"].stores.queue
            ticket, _ = queue.enqueue(HandoffPacket(f"{conversation_id}:off", conversation_id, ["human_request"],
                                                    [Turn("customer", text)], offline=True))
            return [BotMessage("ただいま受付時間外です。", [],
                               {"route": "handoff", "staffed": False, "ticket_id": ticket.id})]
        if text == "/answer_not_helpful":
            return [BotMessage("お役に立てず申し訳ありません。", [], {"route": "clarify"})]
        if "?" in text:
            return [BotMessage("確かめさせてください。", [{"title": "担当者と話したい", "payload": "/request_human"}],
                               {"route": "clarify"})]
        return [BotMessage("住所はマイページから変更できます。", [],
                           {"route": "answer", "faq_id": "change-address", "intent": "faq_change_address",
                            "confidence": 0.97})]

    async def resume(self, conversation_id: str) -> None:
        self.resumed.append(conversation_id)
        self.paused.discard(conversation_id)

    async def paused_handoff(self, conversation_id: str) -> PausedHandoff | None:
        return self.handoffs.get(conversation_id) if conversation_id in self.paused else None

    async def close(self) -> None:
        pass


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[TestClient, ScriptedRasa, Services]]:
    ref: dict[str, Any] = {}
    rasa = ScriptedRasa(ref)
    services = Services(stores_for(f"sqlite:///{tmp_path / 'bot.db'}"), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
        yield client, rasa, services


def new_conversation(client: TestClient) -> str:
    response = client.post("/api/chat/sessions", json={"customer": {"name": "山田"}})
    assert response.status_code == 201
    return str(response.json()["token"])


@contextlib.contextmanager
def open_chat(client: TestClient) -> Iterator[tuple[str, Any]]:
    """A new conversation's token and its WebSocket, past the ``history`` frame."""
    token = new_conversation(client)
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        assert ws.receive_json()["type"] == "history"
        yield token, ws


def login(client: TestClient) -> str:
    response = client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def frames_until(ws: Any, predicate: Any, limit: int = 20) -> list[dict[str, Any]]:
    seen = []
    for _ in range(limit):
        frame = ws.receive_json()
        seen.append(frame)
        if predicate(frame):
            return seen
    raise AssertionError(f"frame not seen: {seen}")


def is_bot_message(frame: dict[str, Any]) -> bool:
    return frame["type"] == "message" and frame["message"]["sender"] in ("bot", "system")


def test_faq_round_trip_and_history_survives_a_reconnect(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    token = new_conversation(client)
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        assert ws.receive_json()["type"] == "history"
        ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "m1"})
        frames = frames_until(ws, is_bot_message)
    assert frames[0]["message"]["sender"] == "customer"
    assert {"type": "typing", "on": True} in frames
    assert frames[-1]["message"]["faq_id"] == "change-address"
    history = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()
    assert [m["sender"] for m in history["messages"]] == ["customer", "bot"]
    assert history["state"]["mode"] == "bot"


def test_double_send_with_one_client_id_is_handled_once(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "住所", "client_id": "same"})
        ws.send_json({"type": "message", "text": "住所", "client_id": "same"})
        frames_until(ws, is_bot_message)
        ws.send_json({"type": "message", "text": "次", "client_id": "other"})
        frames_until(ws, is_bot_message)
    assert [text for _, text in rasa.calls] == ["住所", "次"]


def test_tokens_keep_conversations_apart(server) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = server
    token = new_conversation(client)
    conversation_id = token.split(".")[0]
    forged = conversation_id + ".AAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert client.get("/api/chat/history", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.get("/api/chat/history").status_code == 401
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(f"/ws/chat?token={forged}") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401


def test_customer_text_cannot_inject_intents_and_stale_buttons_are_refused(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "/restart", "client_id": "a"})
        frames_until(ws, is_bot_message)
        assert rasa.calls[-1][1] == "／restart"  # a message, not an intent command (Rasa strips spaces)
        ws.send_json({"type": "button", "payload": "/request_human", "title": "x", "client_id": "b"})
        assert ws.receive_json() == {"type": "error", "message": TEXT["stale_button"],
                                     "client_id": "b"}  # the widget marks that message as not sent
        ws.send_json({"type": "message", "text": "どれ?", "client_id": "c"})
        frames_until(ws, is_bot_message)
        ws.send_json({"type": "button", "payload": "/request_human", "title": "偽のタイトル", "client_id": "d"})
        frames = frames_until(ws, lambda f: f["type"] == "state")
    customer = [f["message"]["text"] for f in frames if f["type"] == "message" and f["message"]["sender"] == "customer"]
    assert customer == ["担当者と話したい"]  # the title the bot offered, not the one sent
    assert rasa.calls[-1][1] == "/request_human"


@pytest.mark.parametrize("frame", ["{not json", "[1,2]", '{"type": "message"}', '{"type": "nope"}',
                                   '{"type": "message", "text": "   ", "client_id": "e"}',
                                   '{"type": "feedback", "message_id": 99999, "helpful": false}'])
def test_bad_frames_get_a_japanese_error_and_change_nothing(server, frame: str) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_text(frame)
        error = ws.receive_json()
    assert error["type"] == "error" and error["message"]
    assert rasa.calls == []
    assert client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"] == []


def test_long_messages_emoji_and_html_are_kept_as_text(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    token = new_conversation(client)
    texts = ["あ" * 10_000, "(´・ω・`)🙇‍♀️ ｱﾄﾞﾚｽ", '<img src=x onerror="alert(1)"><script>alert(2)</script>']
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        for i, text in enumerate(texts):
            ws.send_json({"type": "message", "text": text, "client_id": f"t{i}"})
            frames_until(ws, is_bot_message)
        ws.send_json({"type": "message", "text": "あ" * 10_001, "client_id": "too-long"})
        assert ws.receive_json()["message"] == TEXT["too_long"]  # 「…長すぎるため受け取れませんでした（10,000 文字まで）…」
    stored = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"]
    assert [m["text"] for m in stored if m["sender"] == "customer"] == texts


def test_bot_down_keeps_the_message_and_says_so(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    rasa.down = True
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "住所", "client_id": "x"})
        frames = frames_until(ws, is_bot_message)
    assert frames[-1]["message"]["text"] == TEXT["bot_down"] and frames[-1]["message"]["sender"] == "system"
    assert "お預かりしました" in TEXT["bot_down"]  # the customer is told the message is kept
    stored = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"]
    assert stored[0]["text"] == "住所"


def test_agent_api_needs_login_and_csrf(server) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = server
    for method, path in [("get", "/api/tickets"), ("get", "/api/tickets/1"), ("post", "/api/tickets/1/claim"),
                         ("post", "/api/tickets/1/resolve"), ("get", "/api/events"), ("get", "/api/agent/me")]:
        assert getattr(client, method)(path).status_code == 401, path
    assert client.post("/api/agent/login", json={"username": "sato", "password": "wrong"}).status_code == 401
    assert client.post("/api/agent/login", json={"username": "nobody", "password": "x"}).status_code == 401
    response = client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
    assert response.status_code == 200
    csrf = response.json()["csrf_token"]
    flags = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "httponly" in flags and "samesite=strict" in flags
    assert client.post("/api/tickets/1/claim").status_code == 403
    assert client.post("/api/tickets/1/claim", headers={"X-CSRF-Token": "forged"}).status_code == 403
    cookie = client.cookies.get("bot_agent_session")
    assert cookie and "sato" not in cookie  # signed, and the password is never in it
    tampered = TestClient(client.app)
    tampered.cookies.set("bot_agent_session", cookie[:-2] + ("xx" if not cookie.endswith("xx") else "yy"))
    assert tampered.get("/api/tickets").status_code == 401
    assert client.post("/api/tickets/1/claim", headers={"X-CSRF-Token": b"\xc3\xa9"}).status_code == 403  # non-ASCII
    assert client.post("/api/agent/logout").status_code == 403  # logout needs the CSRF token too
    assert client.post("/api/agent/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/tickets").status_code == 401


def test_repeated_wrong_passwords_must_wait(server) -> None:  # type: ignore[no-untyped-def]
    client, _, services = server
    # The first wait is 1 s from the 5th attempt; on the wall clock a slow password check (0.9 s
    # on a loaded machine) used it up before the 6th arrived.
    clock = services.stores.agents.clock = Clock()  # stands still unless moved
    codes = [client.post("/api/agent/login", json={"username": "sato", "password": f"bad{i}"}).status_code
             for i in range(6)]
    assert codes == [401] * 5 + [429]
    refused = client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) == 1
    assert "もう一度お試しください" in refused.json()["error"]
    clock.advance(0.999)
    assert client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD}).status_code == 429
    clock.advance(0.001)  # the wait is over: the right password gets in
    assert client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD}).status_code == 200


def test_bad_requests_are_4xx_with_a_message_and_change_nothing(server) -> None:  # type: ignore[no-untyped-def]
    client, _, services = server
    csrf = login(client)
    headers = {"X-CSRF-Token": csrf}
    assert client.post("/api/agent/login", content="{oops").json() == {"error": "JSON の形式が正しくありません。"}
    assert client.post("/api/tickets/999/claim", headers=headers).status_code == 404
    assert client.get("/api/tickets/999").json()["error"] == "お問い合わせ 999 はありません。画面を更新してください。"
    assert client.get("/api/tickets/abc").status_code == 404
    assert client.get("/api/tickets?status=bogus").status_code == 422
    big = {"text": "あ" * 70_000}
    assert client.post("/api/chat/sessions", json=big).status_code == 413
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "a"})
        frames_until(ws, lambda f: f["type"] == "state")
    (ticket,) = client.get("/api/tickets").json()["tickets"]
    url = f"/api/tickets/{ticket['id']}"
    assert client.post(url + "/reply", headers=headers, json={"text": "先に返信"}).status_code == 409
    assert client.post(url + "/claim", headers=headers).status_code == 200
    assert client.post(url + "/claim", headers=headers).status_code == 409
    assert client.post(url + "/reply", headers=headers, content="[1]").status_code == 400
    assert client.post(url + "/reply", headers=headers, json={"text": ""}).status_code == 422
    assert client.post(url + "/resolve", headers=headers).status_code == 200
    second = client.post(url + "/resolve", headers=headers)
    assert second.status_code == 409 and "解決済み" in second.json()["error"]
    entries = client.get(url).json()["ticket"]["entries"]
    assert [e["sender"] for e in entries] == ["customer", "bot"]  # nothing half-written by the refused calls


def test_handoff_pauses_the_bot_agent_replies_reach_the_customer_and_resolve_returns_it(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, services = server
    csrf = login(client)
    headers = {"X-CSRF-Token": csrf}
    # Available: the queue position and estimate count only available agents (bot/store/queue_place.py).
    assert client.post("/api/desk/status", headers=headers, json={"status": "available"}).status_code == 200
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "二回も住所変更したのに反映されてない、ふざけるな", "client_id": "1"})
        state = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]
        assert state["mode"] == "waiting" and state["position"] == 1 and state["estimate_minutes"] >= 1
        assert state["wait_note"] is None
        ticket_id = state["ticket_id"]
        assert client.post(f"/api/tickets/{ticket_id}/claim", headers=headers).status_code == 200
        frames = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] != "waiting")
        assert frames[-1]["state"] == {**frames[-1]["state"], "mode": "agent", "agent_name": "佐藤"}
        assert any("佐藤" in f["message"]["text"] for f in frames if f["type"] == "message")
        calls_before = len(rasa.calls)
        ws.send_json({"type": "message", "text": "早く対応してください", "client_id": "2"})
        ws.receive_json()  # echo of the customer's own message
        assert client.post(f"/api/tickets/{ticket_id}/reply", headers=headers,
                           json={"text": "お待たせしました。確認します。"}).status_code == 200
        agent = frames_until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "agent")[-1]
        assert agent["message"]["agent_name"] == "佐藤"
        assert len(rasa.calls) == calls_before  # the bot stayed silent while the agent owned it
        client.post(f"/api/tickets/{ticket_id}/notes", headers=headers, json={"text": "内部メモ: 住所DB確認"})
        assert client.post(f"/api/tickets/{ticket_id}/resolve", headers=headers).status_code == 200
        frames = frames_until(ws, lambda f: f["type"] == "state")
        assert frames[-1]["state"]["mode"] == "bot"
        assert any(f["message"]["text"] == TEXT["resolved"] for f in frames if f["type"] == "message")
        ws.send_json({"type": "message", "text": "住所変更の方法は", "client_id": "3"})
        assert frames_until(ws, is_bot_message)[-1]["message"]["faq_id"] == "change-address"
    assert rasa.resumed == [services.tokens.conversation_of(token)]
    entries = client.get(f"/api/tickets/{ticket_id}").json()["ticket"]["entries"]
    assert [(e["sender"], e["author"]) for e in entries] == [
        ("customer", None), ("bot", None), ("customer", None), ("agent", "佐藤"), ("note", "佐藤")]
    history = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"]
    assert "内部メモ" not in " ".join(m["text"] for m in history)  # notes never reach the customer


def test_customer_can_stop_waiting_and_go_back_to_the_bot(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "1"})
        frames_until(ws, lambda f: f["type"] == "state")
        ws.send_json({"type": "cancel_handoff"})
        assert frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] != "waiting")[-1]["state"]["mode"] == "bot"
        ws.send_json({"type": "cancel_handoff"})
        assert ws.receive_json()["type"] == "error"
    login(client)
    (ticket,) = client.get("/api/tickets?status=resolved").json()["tickets"]
    assert ticket["resolution"] == "cancelled" and len(rasa.resumed) == 1


def test_feedback_is_recorded_once_and_no_asks_the_bot(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "住所", "client_id": "1"})
        answer = frames_until(ws, is_bot_message)[-1]["message"]
        ws.send_json({"type": "feedback", "message_id": answer["id"], "helpful": False})
        frames = frames_until(ws, is_bot_message)
        assert {"type": "feedback_saved", "message_id": answer["id"], "helpful": False} in frames
        ws.send_json({"type": "feedback", "message_id": answer["id"], "helpful": True})  # first answer counts
        assert ws.receive_json()["helpful"] is False
    assert rasa.calls[-1][1] == "/answer_not_helpful"


def test_sse_announces_a_new_ticket(server) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    client, _, services = server
    hub = services.hub
    queue = hub.subscribe_agents()
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "1"})
        frames_until(ws, lambda f: f["type"] == "state")
    changes = []
    for _ in range(50):
        try:
            changes.append(queue.get_nowait()["change"])
        except asyncio.QueueEmpty:
            if "created" in changes:
                break
            import time
            time.sleep(0.05)
    assert "created" in changes


def test_openapi_describes_the_agent_api(server) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/tickets", "/api/tickets/{ticket_id}/claim", "/api/tickets/{ticket_id}/reply",
            "/api/tickets/{ticket_id}/resolve", "/api/events", "/api/agent/login"} <= set(paths)


def test_pages_are_served_with_security_headers(server) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = server
    for path in ("/", "/console/", "/widget/widget.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"


def test_outside_hours_the_contact_form_completes_the_offline_ticket(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "時間外だけど人と話したい", "client_id": "1"})
        state = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]
        assert state["mode"] == "bot" and state["offline"] is True  # nobody on duty: the bot keeps answering
        ws.send_json({"type": "contact", "name": "山田", "email": "not-an-email"})
        assert "メールアドレス" in ws.receive_json()["message"]
        ws.send_json({"type": "contact", "name": "山田", "phone": "０３－１２３４－５６７８", "note": "住所の件"})
        frames = frames_until(ws, lambda f: f["type"] == "state")
        assert {"type": "contact_saved"} in frames and frames[-1]["state"]["offline"] is False
        ws.send_json({"type": "message", "text": "住所", "client_id": "2"})
        frames_until(ws, is_bot_message)
    login(client)
    (ticket,) = client.get("/api/tickets").json()["tickets"]
    assert ticket["offline"] is True
    assert ticket["customer"]["phone"] == "0312345678" and ticket["customer"]["note"] == "住所の件"


def test_tickets_filed_while_the_server_was_down_are_announced(tmp_path: Path) -> None:
    import time

    stores = stores_for(f"sqlite:///{tmp_path / 'bot.db'}")
    stores.queue.enqueue(HandoffPacket("old:1", "old", ["anger"], [Turn("customer", "ふざけるな")]))
    ref: dict[str, Any] = {}
    services = Services(stores, ScriptedRasa(ref), ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    agents = services.hub.subscribe_agents()
    with TestClient(create_app(services, SECRET, watch_interval=0.05)):
        deadline = time.monotonic() + 5
        while agents.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agents.get_nowait()["change"] == "created"
        # Marked announced just after the consoles were told (a server stopped in between
        # announces it again after the lease): wait for the mark, not for the shutdown.
        while stores.queue.unannounced() and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        assert stores.queue.unannounced() == []


def test_a_resend_of_a_message_that_never_reached_the_bot_is_routed(server) -> None:  # type: ignore[no-untyped-def]
    from bot.store.chat_log import NewMessage

    client, rasa, services = server
    token = new_conversation(client)
    conversation_id = services.tokens.conversation_of(token)
    # The server stored the message, then died before asking Rasa.
    services.stores.chat_log.add(NewMessage(conversation_id, "customer", "住所を変えたい", client_id="lost"))
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "lost"})
        assert frames_until(ws, is_bot_message)[-1]["message"]["faq_id"] == "change-address"
        ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "lost"})  # now a true repeat
        ws.send_json({"type": "message", "text": "次", "client_id": "next"})
        frames_until(ws, is_bot_message)
    assert [text for _, text in rasa.calls] == ["住所を変えたい", "次"]
    history = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"]
    assert [m["text"] for m in history if m["sender"] == "customer"] == ["住所を変えたい", "次"]


def test_a_handoff_kept_in_the_outbox_keeps_the_customers_messages_for_the_ticket(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, services = server
    token = new_conversation(client)
    conversation_id = services.tokens.conversation_of(token)
    with client.websocket_connect(f"/ws/chat?token={token}") as ws:
        ws.receive_json()
        ws.send_json({"type": "message", "text": "保留になるほど怒ってる、ふざけるな", "client_id": "1"})
        assert frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["mode"] == "waiting"
        calls = len(rasa.calls)
        ws.send_json({"type": "message", "text": "注文番号は12345です", "client_id": "2"})
        assert "準備しています" in frames_until(ws, is_bot_message)[-1]["message"]["text"]
        assert len(rasa.calls) == calls  # not sent to the (paused) bot
        # The outbox delivers the packet; the watcher announces it.
        services.stores.queue.enqueue(HandoffPacket(f"{conversation_id}:1", conversation_id, ["anger"],
                                                    [Turn("customer", "保留になるほど怒ってる、ふざけるな")]))
        state = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]
        assert state["mode"] == "waiting" and state["ticket_id"] is not None
        ws.send_json({"type": "message", "text": "まだですか", "client_id": "3"})
        ws.receive_json()
    entries = services.stores.queue.get(state["ticket_id"]).entries
    assert [(e.sender, e.text) for e in entries][1:] == [
        ("bot", "申し訳ございません。担当者におつなぎします。"), ("customer", "注文番号は12345です"),
        ("customer", "まだですか")]


def test_parallel_wrong_passwords_cannot_outrun_the_lockout(server) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    client, _, services = server
    services.stores.agents.clock = Clock()  # the race is the subject, not how long the 1 s wait lasts
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda i: client.post("/api/agent/login", json={"username": "sato",
                                                                                "password": f"x{i}"}).status_code,
                              range(20)))
    assert codes.count(401) <= 5 and codes.count(429) >= 15


def test_absurd_ids_and_frames_are_4xx_not_500(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, _ = server
    csrf = login(client)
    assert client.get("/api/tickets/99999999999999999999999").status_code == 404
    assert client.post("/api/tickets/99999999999999999999999/claim", headers={"X-CSRF-Token": csrf}).status_code == 404
    assert client.post("/api/agent/login", content='{"a":' * 10_000).status_code == 400
    assert client.get("/api/analytics?days=²").status_code == 422
    with open_chat(client) as (token, ws):
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["type"] == "error"
        ws.send_text("[" * 1000)
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "feedback", "message_id": 2**70, "helpful": False})
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "message", "text": "あ\n" * 4000, "client_id": "nl"})  # 8,000 chars, long as JSON
        frames_until(ws, is_bot_message)
    assert len(rasa.calls) == 1


def test_a_subscriber_that_falls_behind_is_told_to_reload() -> None:
    import asyncio

    from bot.server.events import CLOSED, SUBSCRIBER_BACKLOG, EventHub

    hub = EventHub()
    queue = hub.subscribe_conversation("c")
    for n in range(SUBSCRIBER_BACKLOG + 1):
        hub.publish_conversation("c", {"type": "message", "n": n})
    assert queue.get_nowait() is CLOSED
    try:
        queue.get_nowait()
        raise AssertionError("more than the marker")
    except asyncio.QueueEmpty:
        pass


def test_a_bot_left_paused_by_a_lost_resume_is_resumed_instead_of_staying_silent(server) -> None:  # type: ignore[no-untyped-def]
    client, rasa, services = server
    with open_chat(client) as (token, ws):
        conversation_id = services.tokens.conversation_of(token)
        rasa.paused.add(conversation_id)  # e.g. the server restarted before it could resume Rasa
        ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "1"})
        assert frames_until(ws, is_bot_message)[-1]["message"]["faq_id"] == "change-address"
    assert rasa.resumed == [conversation_id]


def test_while_an_agent_owns_the_chat_others_cannot_reply_and_no_never_reaches_the_bot(server) -> None:  # type: ignore[no-untyped-def]
    """Issue #17's gateway cases: a reply by an agent who did not claim the ticket, a reply over
    10,000 characters, and 「いいえ」 on an earlier answer while an agent owns the chat."""
    client, rasa, services = server
    services.stores.agents.add("suzuki", "鈴木", PASSWORD)
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "住所", "client_id": "1"})
        answer = frames_until(ws, is_bot_message)[-1]["message"]
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "2"})
        ticket_id = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["ticket_id"]
        sato = {"X-CSRF-Token": login(client)}
        assert client.post(f"/api/tickets/{ticket_id}/claim", headers=sato).status_code == 200
        frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "agent")

        too_long = client.post(f"/api/tickets/{ticket_id}/reply", headers=sato, json={"text": "あ" * 10_001})
        assert too_long.status_code == 422 and too_long.json()["error"] == TEXT["too_long"]

        other = TestClient(client.app)
        response = other.post("/api/agent/login", json={"username": "suzuki", "password": PASSWORD})
        suzuki = {"X-CSRF-Token": response.json()["csrf_token"]}
        refused = other.post(f"/api/tickets/{ticket_id}/reply", headers=suzuki, json={"text": "鈴木です"})
        assert refused.status_code == 409 and refused.json()["error"]

        calls_before = len(rasa.calls)
        ws.send_json({"type": "feedback", "message_id": answer["id"], "helpful": False})
        assert frames_until(ws, lambda f: f["type"] == "feedback_saved")[-1]["helpful"] is False
        assert client.post(f"/api/tickets/{ticket_id}/reply", headers=sato, json={"text": "佐藤です"}).status_code == 200
        agent = frames_until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "agent")[-1]
        assert agent["message"]["text"] == "佐藤です"
        assert len(rasa.calls) == calls_before  # 「いいえ」 did not wake the bot while the agent owns the chat
    entries = client.get(f"/api/tickets/{ticket_id}").json()["ticket"]["entries"]
    texts = [e["text"] for e in entries]
    assert "鈴木です" not in texts and "あ" * 10_001 not in texts and texts[-1] == "佐藤です"


def test_an_offline_ticket_is_claimed_and_resolved_without_touching_the_chat(server) -> None:  # type: ignore[no-untyped-def]
    """Issue #17: claim/resolve of offline tickets. The agent calls back later; the customer's
    chat stays with the bot (no 「担当者が対応します」, no pause, no closing line)."""
    client, rasa, _ = server
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "時間外だけど人と話したい", "client_id": "1"})
        frames_until(ws, lambda f: f["type"] == "state")
        headers = {"X-CSRF-Token": login(client)}
        (ticket,) = client.get("/api/tickets").json()["tickets"]
        assert ticket["offline"] is True
        assert client.post(f"/api/tickets/{ticket['id']}/claim", headers=headers).status_code == 200
        assert client.post(f"/api/tickets/{ticket['id']}/resolve", headers=headers).status_code == 200
        ws.send_json({"type": "message", "text": "住所", "client_id": "2"})
        frames = frames_until(ws, is_bot_message)
        assert [f["message"]["sender"] for f in frames if f["type"] == "message"] == ["customer", "bot"]
        assert all(f["state"]["mode"] == "bot" for f in frames if f["type"] == "state")
    assert rasa.resumed == []  # an offline handoff never paused the bot
    resolved = client.get(f"/api/tickets/{ticket['id']}").json()["ticket"]
    assert resolved["status"] == "resolved" and resolved["claimed_by"] == "sato"
