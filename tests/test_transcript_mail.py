"""Transcripts by e-mail, through a real SMTP client to a local SMTP server (aiosmtpd).

Checks the message as a mail client reads it (Japanese subject RFC 2047 encoded, UTF-8
plain-text body, To / From, masked numbers, no internal notes, customer and agent text
left as text), the widget's request and the automatic mail on resolve over the bot
server's WebSocket, bad addresses, and a mail server that is down (retried, then the
customer is told; the gateway keeps answering).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import socket
import time
from email.policy import default
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiosmtpd.controller import Controller
from starlette.testclient import TestClient

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.mail.sender import TranscriptMailer
from bot.server.app import Services, create_app, stores_for
from bot.server.tokens import ConversationTokens
from bot.settings import SmtpSettings
from bot.store.transcript_mails import TranscriptMails
from test_server import PASSWORD, SECRET, ScriptedRasa, frames_until, login, open_chat

SUBJECT = "【みらいメンバーズ】チャットでのお問い合わせの記録"
SENDER = "みらいメンバーズ サポート <support@example.jp>"
NO_WAIT = (dt.timedelta(0),)


class Inbox:
    """aiosmtpd handler that keeps every accepted message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK"

    def wait(self, count: int = 1, seconds: float = 10.0) -> list[tuple[str, list[str], bytes]]:
        deadline = time.monotonic() + seconds
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} mails arrived, {count} expected"
        return self.messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def smtp() -> Iterator[tuple[Inbox, SmtpSettings]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, security="none", timeout=5, attempts=3)
    finally:
        controller.stop()


@contextlib.contextmanager
def app_with_mail(tmp_path: Path, settings: SmtpSettings) -> Iterator[tuple[TestClient, Services]]:
    """A bot server (scripted Rasa) mailing through ``settings``, retrying at once, polling often."""
    ref: dict[str, Any] = {}
    services = Services(stores_for(f"sqlite:///{tmp_path / 'bot.db'}"), ScriptedRasa(ref),  # type: ignore[arg-type]
                        ConversationTokens(SECRET), smtp=settings)
    services.gateway.configure_mail(settings, retry_waits=NO_WAIT, poll_seconds=0.05)
    ref["services"] = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
        yield client, services


@pytest.fixture()
def mail_server(tmp_path: Path, smtp: tuple[Inbox, SmtpSettings]) -> Iterator[tuple[TestClient, Services, Inbox]]:
    inbox, settings = smtp
    with app_with_mail(tmp_path, settings) as (client, services):
        yield client, services, inbox


def read(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=default)  # type: ignore[return-value]


def test_the_transcript_mail_as_a_mail_client_reads_it(tmp_path: Path, smtp: tuple[Inbox, SmtpSettings]) -> None:
    import asyncio

    inbox, settings = smtp
    stores = stores_for(f"sqlite:///{tmp_path / 'bot.db'}")
    stores.agents.add("sato", "佐藤", PASSWORD)
    ticket, _ = stores.queue.enqueue(HandoffPacket("c1:1", "c1", ["human_request"], [
        Turn("customer", "カード 4111 1111 1111 1111 の請求が二重です <script>alert(1)</script>"),
        Turn("bot", "担当者におつなぎします。")], customer={"name": "山田 太郎", "email": "taro@example.jp"}))
    stores.queue.claim(ticket.id, "sato")
    stores.queue.add_entry(ticket.id, "agent", 'ご確認ください: <a href="https://evil.example/">こちら</a>', "佐藤")
    stores.queue.add_entry(ticket.id, "note", "内部メモ: 返金は上長承認が必要", "佐藤")
    stores.queue.add_entry(ticket.id, "system", "お客さまが会話を終了しました。")
    stores.queue.resolve(ticket.id, "resolved", "sato")
    mails = TranscriptMails(stores.engine, NO_WAIT)
    mails.enqueue(ticket.id, "c1", "taro@example.jp", "request")
    assert asyncio.run(TranscriptMailer(settings, mails, stores.queue).send_due()) == 1

    mail_from, rcpt_tos, raw = inbox.wait()[0]
    assert (mail_from, rcpt_tos) == ("support@example.jp", ["taro@example.jp"])
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")  # every header is 7-bit: RFC 2047 words
    assert "Subject: =?utf-8?" in headers
    message = read(raw)
    assert message["Subject"] == SUBJECT
    assert message["To"] == "taro@example.jp"
    assert message["From"].addresses[0].display_name == "みらいメンバーズ サポート"
    assert message["From"].addresses[0].addr_spec == "support@example.jp"
    assert not message.is_multipart() and message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert body.startswith("山田 太郎 さま")
    assert "**** **** **** 1111" in body and "4111 1111 1111 1111" not in body
    assert "<script>alert(1)</script>" in body  # as text: a plain-text body cannot run or render it
    assert '<a href="https://evil.example/">こちら</a>' in body and "担当者（佐藤）" in body
    assert "内部メモ" not in body and "会話を終了しました" not in body
    assert mails.for_ticket(ticket.id)[0].status == "sent"


def test_the_widget_asks_for_the_transcript_and_a_known_address_gets_it_on_resolve(mail_server: Any) -> None:
    client, services, inbox = mail_server
    headers = {"X-CSRF-Token": login(client)}
    with open_chat(client) as (token, ws):
        ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "1"})
        ticket_id = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["ticket_id"]
        client.post(f"/api/tickets/{ticket_id}/claim", headers=headers)
        client.post(f"/api/tickets/{ticket_id}/reply", headers=headers, json={"text": "確認いたします。"})
        ws.send_json({"type": "transcript", "ticket_id": ticket_id, "email": "taro@example.jp"})  # not resolved
        assert frames_until(ws, lambda f: f["type"] == "error")[-1]["message"] == \
            wording.TRANSCRIPT_TEXT["no_ticket"]
        assert client.post(f"/api/tickets/{ticket_id}/resolve", headers=headers).status_code == 200
        state = frames_until(ws, lambda f: f["type"] == "state" and f["state"]["mode"] == "bot")[-1]["state"]
        assert state["transcript"] == {"ticket_id": ticket_id}  # the button is shown
        for bad in ("taro", "taro@example.jp\r\nBcc: spam@example.com", "<taro@example.jp>", 5, "a" * 250 + "@x.jp"):
            ws.send_json({"type": "transcript", "ticket_id": ticket_id, "email": bad})
            assert frames_until(ws, lambda f: f["type"] == "error")[-1]["message"] == \
                wording.TRANSCRIPT_TEXT["bad_address"]
        ws.send_json({"type": "transcript", "ticket_id": ticket_id, "email": "ｔａｒｏ＠example.jp"})
        queued = frames_until(ws, lambda f: f["type"] == "transcript_queued")[-1]
        assert queued["message"] == wording.TRANSCRIPT_TEXT["queued"].format(address="taro@example.jp")
    _, rcpt_tos, raw = inbox.wait()[0]
    assert rcpt_tos == ["taro@example.jp"] and "確認いたします。" in read(raw).get_content()
    # No address in the customer details: nothing was queued on resolve, only the request.
    assert [m.trigger for m in services.gateway.mailer.mails.for_ticket(ticket_id)] == ["request"]

    # Customer details with an address (widget config or contact form): mailed on resolve, unasked.
    queue = services.stores.queue
    ticket, _ = queue.enqueue(HandoffPacket("c9:1", "c9", ["human_request"], [Turn("customer", "電話ください")],
                                            customer={"email": "hanako@example.jp"}, offline=True))
    client.post(f"/api/tickets/{ticket.id}/claim", headers=headers)
    assert client.post(f"/api/tickets/{ticket.id}/resolve", headers=headers).status_code == 200
    _, rcpt_tos, raw = inbox.wait(2)[1]
    assert rcpt_tos == ["hanako@example.jp"] and "電話ください" in read(raw).get_content()


def test_a_mail_server_that_is_down_is_retried_then_the_customer_is_told(tmp_path: Path) -> None:
    down = SmtpSettings(host="127.0.0.1", port=free_port(), sender=SENDER, security="none", timeout=2, attempts=2)
    with app_with_mail(tmp_path, down) as (client, services):
        headers = {"X-CSRF-Token": login(client)}
        with open_chat(client) as (token, ws):
            ws.send_json({"type": "message", "text": "ふざけるな", "client_id": "1"})
            ticket_id = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]["ticket_id"]
            client.post(f"/api/tickets/{ticket_id}/claim", headers=headers)
            assert client.post(f"/api/tickets/{ticket_id}/resolve", headers=headers).status_code == 200
            ws.send_json({"type": "transcript", "ticket_id": ticket_id, "email": "taro@example.jp"})
            frames_until(ws, lambda f: f["type"] == "transcript_queued")
            told = frames_until(ws, lambda f: f["type"] == "message" and "メールでお送りできませんでした"
                                in f["message"]["text"], limit=40)[-1]
            assert told["message"]["sender"] == "system" and "taro@example.jp" in told["message"]["text"]
            ws.send_json({"type": "message", "text": "住所を変えたい", "client_id": "2"})  # the gateway still answers
            assert frames_until(ws, lambda f: f["type"] == "message" and f["message"]["sender"] == "bot")
        mail = services.gateway.mailer.mails.for_ticket(ticket_id)[0]  # type: ignore[union-attr]
        assert (mail.status, mail.attempts) == ("failed", 2) and "ConnectionRefused" in (mail.last_error or "")


def test_without_a_mail_server_nothing_is_offered_or_sent(tmp_path: Path) -> None:
    assert not SmtpSettings().enabled and not SmtpSettings(host="smtp.example.jp").enabled
    with app_with_mail(tmp_path, SmtpSettings()) as (client, services), open_chat(client) as (_, ws):
        assert services.gateway.mailer is None
        ws.send_json({"type": "transcript", "ticket_id": 1, "email": "taro@example.jp"})
        assert frames_until(ws, lambda f: f["type"] == "error")[-1]["message"] == wording.TRANSCRIPT_TEXT["off"]


def test_smtp_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_SMTP_HOST", "smtp.example.jp")
    with pytest.raises(ValueError, match="BOT_SMTP_FROM"):
        SmtpSettings.from_env()
    monkeypatch.setenv("BOT_SMTP_FROM", "support@example.jp")
    monkeypatch.setenv("BOT_SMTP_SECURITY", "tls13")
    with pytest.raises(ValueError, match="starttls"):
        SmtpSettings.from_env()
    monkeypatch.setenv("BOT_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("BOT_SMTP_PORT", "465")
    found = SmtpSettings.from_env()
    assert (found.enabled, found.port, found.security, found.attempts) == (True, 465, "ssl", 5)


def test_a_given_up_mail_is_listed_for_admins_and_sent_when_retried(tmp_path: Path) -> None:
    """Mail server down → the mail is given up; admins see it (agents are refused), fix the
    server, retry: it is sent at once, the retry is audited, a second retry is refused."""
    port = free_port()
    down = SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, security="none", timeout=2, attempts=2)
    with app_with_mail(tmp_path, down) as (client, services):
        services.stores.agents.add("suzuki", "鈴木", PASSWORD)
        agent = TestClient(client.app)
        signed_in = agent.post("/api/agent/login", json={"username": "suzuki", "password": PASSWORD})
        agent_headers = {"X-CSRF-Token": signed_in.json()["csrf_token"]}
        admin_headers = {"X-CSRF-Token": login(client)}  # sato: the first agent is the admin
        assert TestClient(client.app).get("/api/admin/mails/failed").status_code == 401
        packet = HandoffPacket("c-mail:1", "c-mail", ["human_request"], [Turn("customer", "カード 4111 1111 1111 1111")])
        ticket, _ = services.stores.queue.enqueue(packet)
        mails = services.gateway.mailer.mails  # type: ignore[union-attr]
        mail = mails.enqueue(ticket.id, "c-mail", "taro@example.jp", "request")
        services.gateway.mailer.wake()  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while mails.get(mail.id).status != "failed":
            assert time.monotonic() < deadline, mails.get(mail.id).status
            time.sleep(0.05)

        assert agent.get("/api/admin/mails/failed").status_code == 403
        listing = client.get("/api/admin/mails/failed").json()
        assert listing["count"] == 1
        shown = listing["mails"][0]
        assert (shown["id"], shown["ticket_id"], shown["address"], shown["attempts"]) == (mail.id, ticket.id,
                                                                                         "taro@example.jp", 2)
        assert shown["trigger_label"] == "お客さまの依頼（会話の記録）" and "ConnectionRefused" in shown["last_error"]
        retry = f"/api/admin/mails/failed/{mail.id}/retry"
        assert agent.post(retry, headers=agent_headers).status_code == 403
        assert client.post(retry).status_code == 403  # no CSRF token
        assert client.post("/api/admin/mails/failed/999999/retry", headers=admin_headers).json()["error"] == \
            "メール 999999 は見つかりません。一覧を再読み込みしてください。"

        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)  # the mail server is back
        controller.start()
        try:
            answer = client.post(retry, headers=admin_headers)
            assert answer.status_code == 200 and answer.json()["mail"]["status"] == "pending"
            _, rcpt_tos, raw = inbox.wait(1)[0]
            assert rcpt_tos == ["taro@example.jp"] and "4111 1111 1111 1111" not in read(raw).get_content()
        finally:
            controller.stop()
        deadline = time.monotonic() + 10
        while mails.get(mail.id).status != "sent":
            assert time.monotonic() < deadline, mails.get(mail.id).status
            time.sleep(0.05)
        again = client.post(retry, headers=admin_headers)
        assert again.status_code == 409 and "送信できなかったものではありません" in again.json()["error"]
        assert client.get("/api/admin/mails/failed").json() == {"mails": [], "count": 0}
        audit = client.get("/api/admin/audit", params={"action": "mail.retried"}).json()
        assert [(e["actor"], e["target"]) for e in audit["entries"]] == [("sato", f"mail:{mail.id}")]
