"""Department hand-off without chat (#15 item 4): knowledge/departments.yml, the store, the API,
the department's e-mail (local aiosmtpd) and the signed ``ticket.forwarded`` webhook (local receiver).

The store runs on SQLite and PostgreSQL (127.0.0.1:5432, throwaway databases as in
tests/test_escalation.py); the API on one bot server (SQLite, scripted Rasa) that mails
through aiosmtpd and posts to a local receiver: the customer reads the department's promise
once and never the note; the department gets the note and the masked transcript.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import Engine

from bot import wording
from bot.knowledge.departments import Department, read_departments
from bot.knowledge.style import load_style
from bot.knowledge.validate import validate_knowledge
from bot.settings import SmtpSettings
from bot.store.desk import Desk
from bot.store.forwarding import Delivery, Forwards, receivers_for
from bot.store.queue import Queue, QueueError
from bot.store.transcript_mails import TranscriptMails
from bot.store.webhooks import WebhookDeliveries, WebhookOutbox
from bot.webhooks.config import Endpoint, WebhookConfig
from conftest import PROJECT_ROOT
from test_desk import add_agent, clock, database, desk, engine, file_ticket  # noqa: F401 - fixtures
from test_escalation_api import customer_lines, customer_ticket
from test_desk_api import admin_and_agent
from test_gateway_durability import wait_for
from test_transcript_mail import Inbox, read, smtp  # noqa: F401 - fixture
from test_webhooks import FAST, KEY, Receiver, documented_verifier, receiver  # noqa: F401 - fixture

TEXT = wording.FORWARD_TEXT
NOTE = "二重請求の返金確認をお願いします。カード 4111 1111 1111 1111 の明細を確認済み。<b>急ぎ</b>"
ACCOUNTING = Department("accounting", "経理部", "経理部の担当者から2営業日以内にメールでご連絡します。",
                        email="keiri@example.jp")
DEPARTMENTS_YML = """\
departments:
  - id: accounting
    name: 経理部
    email: keiri@example.jp
    promise: 経理部の担当者から2営業日以内にメールでご連絡します。
  - id: delivery
    name: 配送センター
    email: haisou@example.jp
    webhook: delivery-center
    promise: 配送センターの担当者から翌営業日までにお電話でご連絡します。
  - id: legal
    name: 法務部
    webhook: legal-system
    promise: 法務部の担当者から5営業日以内にご連絡します。
  - id: nowhere
    name: 広報部
    promise: 広報部の担当者からご連絡します。
"""


def name(username: str) -> str:
    return username.upper()


# ---- departments.yml ---------------------------------------------------------------------------------


def test_the_project_departments_file_is_valid_and_read() -> None:
    found, findings = read_departments(PROJECT_ROOT / "knowledge" / "departments.yml",
                                       load_style(PROJECT_ROOT / "knowledge"))
    assert findings == []
    assert {d.name for d in found} >= {"経理部", "配送センター"} and all(d.email or d.webhook for d in found)


@pytest.mark.parametrize("entry, expected", [
    ("  - {id: Accounting!, name: 経理部, email: k@example.jp, promise: ご連絡します。}", "「id」は半角英小文字"),
    ("  - {id: a, email: k@example.jp, promise: ご連絡します。}", "「name」"),
    ("  - {id: a, name: 経理部, email: k@example.jp}", "「promise」"),
    ("  - {id: a, name: 経理部, email: 'keiri at example', promise: ご連絡します。}", "メールアドレスの形ではありません"),
    ("  - {id: a, name: 経理部, webhook: 'https://x.example.jp/h', promise: ご連絡します。}", "受信先の name"),
    ("  - {id: a, name: 経理部, promise: ご連絡します。}", "送り先がありません"),
    ("  - {id: a, name: 経理部, email: k@example.jp, promise: ご連絡します。, url: x}", "「url」という項目はありません"),
    ("  - {id: a, name: 経理部, email: k@example.jp, promise: お客様にご連絡します。}", "お客様"),
    ("  - {id: a, name: 経理部, email: k@example.jp, promise: '" + "あ" * 151 + "'}", "151 文字"),
    ("  - {id: a, name: 経理部, email: k@example.jp, promise: ご連絡します。}\n"
     "  - {id: a, name: 経理二課, email: k@example.jp, promise: ご連絡します。}", "id「a」は departments.yml:2"),
    ("  - just text", "「id:」などの項目を持つ形"),
])
def test_bad_entries_are_named_with_file_entry_and_fix(tmp_path: Path, entry: str, expected: str) -> None:
    (tmp_path / "departments.yml").write_text("departments:\n" + entry + "\n", encoding="utf-8")
    found, findings = read_departments(tmp_path / "departments.yml", load_style(PROJECT_ROOT / "knowledge"))
    messages = [f"{f.path.name}:{f.line} {f.entry} {f.problem} {f.fix}" for f in findings]
    assert any(expected in m for m in messages), messages
    assert all(f.path == tmp_path / "departments.yml" and f.line and f.fix for f in findings)
    if expected == "送り先がありません":  # kept, so the console can say why it cannot be used
        assert [d.id for d in found] == ["a"]


def test_kb_validate_reports_departments_and_a_broken_file(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    (kb / "faq").mkdir(parents=True)
    (kb / "faq" / "a.yml").write_text((PROJECT_ROOT / "knowledge" / "faq" / "service.yml").read_text(encoding="utf-8"),
                                      encoding="utf-8")
    (kb / "departments.yml").write_text("departments:\n  - id: a\n    name: 経理部\n    promise: [\n", encoding="utf-8")
    problems = validate_knowledge(kb, check_published=False)
    assert any(p.path.name == "departments.yml" and p.severity == "error" and p.line for p in problems)
    (kb / "departments.yml").write_text("departments:\n  - {id: a, name: 経理部, promise: ご連絡します。}\n",
                                        encoding="utf-8")
    found = [p for p in validate_knowledge(kb, check_published=False) if p.path.name == "departments.yml"]
    assert [(p.entry, p.line) for p in found] == [("a", 2)] and "送り先がありません" in found[0].problem


def test_a_department_receiver_hears_only_its_own_forwards() -> None:
    delivery = Department("delivery", "配送センター", "ご連絡します。", webhook="delivery-center")
    subscribed = ("crm", "delivery-center", "legal-system")
    assert receivers_for(delivery, subscribed, ("delivery-center", "legal-system"), lambda n: True) == \
        ("delivery-center", "crm")
    assert receivers_for(ACCOUNTING, subscribed, ("delivery-center", "legal-system"), lambda n: True) == ("crm",)
    assert receivers_for(delivery, (), ("delivery-center",), lambda n: False) == ()


# ---- the store (SQLite and PostgreSQL) ---------------------------------------------------------------


@pytest.fixture()
def queue(engine: Engine) -> Queue:  # noqa: F811
    return Queue(engine, webhooks=WebhookOutbox({"ticket.forwarded": ["crm"], "ticket.resolved": ["crm"]}))


def test_a_forward_resolves_records_and_queues_both_deliveries_at_once(queue: Queue, desk: Desk) -> None:  # noqa: F811
    ticket_id = file_ticket(queue, "f1")
    queue.claim(ticket_id, "sato")
    forwards = Forwards(queue)
    ticket = forwards.forward(ticket_id, "sato", ACCOUNTING, NOTE, Delivery("keiri@example.jp", ("keiri", "crm")), name)
    assert (ticket.status, ticket.resolution, ticket.resolved_by) == ("resolved", "forwarded", "sato")
    step = forwards.forward_event(ticket_id)
    assert step is not None and (step.kind, step.actor, step.target) == ("forwarded", "sato", "accounting")
    assert "**** **** **** 1111" in (step.note or "") and "4111 1111 1111 1111" not in (step.note or "")
    mails = TranscriptMails(queue.engine).for_ticket(ticket_id)
    assert [(m.trigger, m.address, m.status) for m in mails] == [("forward", "keiri@example.jp", "pending")]
    rows = WebhookDeliveries(queue.engine).for_ticket(ticket_id)
    assert [(r.event_type, r.endpoint) for r in rows] == [("ticket.forwarded", "keiri"), ("ticket.forwarded", "crm"),
                                                          ("ticket.resolved", "crm")]
    assert rows[0].event_id == rows[1].event_id and rows[0].data["forward"]["department"]["name"] == "経理部"
    assert rows[0].data["status"] == "resolved" and rows[0].data["resolution"] == "forwarded"
    last = queue.get(ticket_id).entries[-1]
    assert (last.sender, last.text) == ("system", "SATOさんが経理部に引き継ぎました（メール・Webhook）。")


def test_refusals_change_nothing(queue: Queue, desk: Desk) -> None:  # noqa: F811
    forwards = Forwards(queue)
    delivery = Delivery("keiri@example.jp")
    waiting = file_ticket(queue, "f2")
    theirs = file_ticket(queue, "f3")
    queue.claim(theirs, "suzuki")
    done = file_ticket(queue, "f4")
    queue.claim(done, "sato")
    queue.resolve(done, "resolved", "sato")
    cases = [(waiting, 409, "あなたが対応中ではないため"), (theirs, 409, "あなたが対応中ではないため"),
             (done, 409, "すでに解決済み"), (999_999, 404, "ありません")]
    for ticket_id, status, expected in cases:
        with pytest.raises(QueueError) as caught:
            forwards.forward(ticket_id, "sato", ACCOUNTING, "メモ", delivery, name)
        assert caught.value.status == status and expected in str(caught.value)
        assert "部署への引き継ぎ" in str(caught.value) or status == 404
    assert queue.get(waiting, False).status == "waiting" and queue.get(theirs, False).claimed_by == "suzuki"
    assert queue.get(done, False).resolution == "resolved"
    for ticket_id in (waiting, theirs, done):
        assert forwards.forward_event(ticket_id) is None and TranscriptMails(queue.engine).for_ticket(ticket_id) == []
        assert all(r.event_type != "ticket.forwarded" for r in WebhookDeliveries(queue.engine).for_ticket(ticket_id))


def test_a_supervisor_forwards_another_agents_chat_and_is_named(queue: Queue, desk: Desk) -> None:  # noqa: F811
    forwards = Forwards(queue)
    ticket_id = file_ticket(queue, "f5")
    queue.claim(ticket_id, "suzuki")
    waiting = file_ticket(queue, "f6")
    with pytest.raises(QueueError) as caught:  # a supervisor too needs a claimed chat
        forwards.forward(waiting, "sato", ACCOUNTING, "メモ", Delivery("keiri@example.jp"), name, supervisor=True)
    assert caught.value.status == 409 and "対応待ち" in str(caught.value)
    ticket = forwards.forward(ticket_id, "sato", ACCOUNTING, NOTE, Delivery("keiri@example.jp"), name, supervisor=True)
    assert (ticket.status, ticket.resolution, ticket.resolved_by) == ("resolved", "forwarded", "sato")
    step = forwards.forward_event(ticket_id)
    assert step is not None and (step.kind, step.actor, step.target) == ("forwarded", "sato", "accounting")
    last = queue.get(ticket_id).entries[-1]
    assert (last.sender, last.text) == ("system", "SATOさんがSUZUKIさんの対応中のチャットを経理部に引き継ぎました（メール）。")
    rows = WebhookDeliveries(queue.engine).for_ticket(ticket_id)
    assert [(r.event_type, r.endpoint) for r in rows] == [("ticket.resolved", "crm")]
    assert (rows[0].data["claimed_by"], rows[0].data["resolved_by"]) == ("suzuki", "sato")


# ---- the API, the mail and the webhook ---------------------------------------------------------------


@contextlib.contextmanager
def forward_server(tmp_path: Path, smtp_settings: SmtpSettings | None, receiver_url: str | None) -> Iterator[Any]:
    """sato (admin) and suzuki, logged in; departments from DEPARTMENTS_YML; mail and the receiver when given."""
    departments = tmp_path / "departments.yml"
    departments.write_text(DEPARTMENTS_YML, encoding="utf-8")
    options: dict[str, Any] = {"webhook_settings": FAST, "webhook_poll_seconds": 0.05}
    if smtp_settings is not None:
        options["smtp"] = smtp_settings
    if receiver_url is not None:
        options["webhooks"] = WebhookConfig((Endpoint("delivery-center", receiver_url, ("ticket.created",), KEY),))
    else:
        options["webhooks"] = None
    with admin_and_agent(tmp_path / "bot.db", assign_interval=60, **options) as (admin, agent, services):
        services.gateway.departments_file = departments
        yield admin, agent, services


def claimed_chat(client: Any, services: Any) -> tuple[int, str]:
    ticket_id, token = customer_ticket(client, services)
    services.stores.queue.add_entry(ticket_id, "customer", "カード 4111 1111 1111 1111 で二重に請求されています")
    services.stores.queue.add_entry(ticket_id, "note", "内部メモ: 前回も同じ件", "佐藤")
    assert client.post(f"/api/tickets/{ticket_id}/claim").status_code == 200
    return ticket_id, token


def test_forward_by_mail_and_webhook_the_customer_reads_the_promise_never_the_note(
        tmp_path: Path, smtp: tuple[Inbox, SmtpSettings], receiver: Receiver) -> None:  # noqa: F811
    inbox, settings = smtp
    with forward_server(tmp_path, settings, receiver.url) as (admin, agent, services):
        listed = {d["id"]: d for d in admin.get("/api/departments").json()["departments"]}
        assert [listed[k]["available"] for k in ("accounting", "delivery", "legal", "nowhere")] == \
            [True, True, False, False]
        assert "legal-system" in listed["legal"]["problem"] and "送り先" in listed["nowhere"]["problem"]
        ticket_id, token = claimed_chat(admin, services)
        response = admin.post(f"/api/tickets/{ticket_id}/forward", json={"department": "delivery", "note": NOTE})
        assert response.status_code == 200, response.text
        assert (response.json()["ticket"]["status"], response.json()["ticket"]["resolution"]) == ("resolved", "forwarded")

        # The customer: one line with the promise, never the note (history API = what the widget and LINE get).
        lines = customer_lines(admin, token)
        promise = [line for line in lines if "配送センター" in line]
        assert promise == [TEXT["customer"].format(department="配送センター",
                                                    promise="配送センターの担当者から翌営業日までにお電話でご連絡します。")]
        history = admin.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).text
        assert "返金確認" not in history and "引き継ぎました（メール" not in history
        state = admin.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["state"]
        assert state["mode"] == "bot" and not state.get("survey")

        # 対応の記録: the step with the department's name and the note.
        events = admin.get(f"/api/tickets/{ticket_id}/history").json()["events"]
        step = [e for e in events if e["kind"] == "forwarded"]
        assert [(e["kind_label"], e["actor_name"], e["target_name"]) for e in step] == [("部署に引き継ぎ", "佐藤", "配送センター")]
        assert step[0]["note"].startswith("二重請求の返金確認")

        # The department's mail: Japanese subject, the note, the masked transcript, no internal note of the chat.
        mail_from, rcpt_tos, raw = inbox.wait()[0]
        assert rcpt_tos == ["haisou@example.jp"]
        message = read(raw)
        assert message["Subject"] == f"【部署への引き継ぎ】お問い合わせ {ticket_id}（配送センター）"
        assert "Subject: =?utf-8?" in raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        body = message.get_content()
        assert "二重請求の返金確認をお願いします" in body and "<b>急ぎ</b>" in body
        assert "**** **** **** 1111" in body and "4111 1111 1111 1111" not in body
        assert "配送センターの担当者から翌営業日までにお電話でご連絡します。" in body and "担当者の佐藤" in body
        assert "前回も同じ件" not in body
        assert wait_for(lambda: services.gateway.mailer.mails.for_ticket(ticket_id)[0].status == "sent")

        # The signed webhook to the department's receiver.
        wait_for(lambda: any(b'"ticket.forwarded"' in body for _, body in receiver.requests))
        headers, raw_body = next((h, b) for h, b in receiver.requests if b'"ticket.forwarded"' in b)
        verify = documented_verifier()
        assert verify(KEY, raw_body, headers["x-webhook-timestamp"], headers["x-signature"])
        assert not verify(KEY, raw_body, headers["x-webhook-timestamp"], headers["x-signature"],
                          now=int(headers["x-webhook-timestamp"]) + 301)
        event = receiver.events()[[b for _, b in receiver.requests].index(raw_body)]
        assert headers["x-webhook-event"] == "ticket.forwarded" and event["ticket"]["resolution"] == "forwarded"
        assert event["forward"]["department"] == {"id": "delivery", "name": "配送センター"}
        assert event["forward"]["note"].startswith("二重請求の返金確認") and "4111 1111" not in raw_body.decode("utf-8")
        assert event["forward"]["promise"].startswith("配送センターの担当者")


def test_bad_input_gets_a_clear_message_and_changes_nothing(
        tmp_path: Path, smtp: tuple[Inbox, SmtpSettings]) -> None:  # noqa: F811
    inbox, settings = smtp
    with forward_server(tmp_path, settings, None) as (admin, agent, services):
        ticket_id, token = claimed_chat(admin, services)
        other, _ = customer_ticket(admin, services)
        forward = f"/api/tickets/{ticket_id}/forward"
        cases = [
            (forward, {"department": "sales", "note": "メモ"}, 404, "部署「sales」は knowledge/departments.yml にありません"),
            (forward, {"department": "", "note": "メモ"}, 422, TEXT["no_department"]),
            (forward, {"department": "nowhere", "note": "メモ"}, 409, "広報部には送り先"),
            (forward, {"department": "legal", "note": "メモ"}, 409, "受信先「legal-system」が BOT_WEBHOOKS_FILE にない"),
            (forward, {"department": "accounting", "note": "  "}, 422, TEXT["note_required"]),
            (forward, {"department": "accounting"}, 422, TEXT["note_required"]),
            (forward, {"department": "accounting", "note": "あ" * 1001}, 422, "1,000 文字以内"),
            (forward, {"department": "accounting", "note": 5}, 422, "文字列で"),
            (f"/api/tickets/{other}/forward", {"department": "accounting", "note": "メモ"}, 409, "あなたが対応中ではない"),
            ("/api/tickets/999999/forward", {"department": "accounting", "note": "メモ"}, 404, "ありません"),
        ]
        for path, body, status, expected in cases:
            response = admin.post(path, json=body)
            assert response.status_code == status and expected in response.json()["error"], (body, response.text)
        # suzuki has not claimed it: 409 too.
        response = agent.post(forward, json={"department": "accounting", "note": "メモ"})
        assert response.status_code == 409 and "あなたが対応中ではない" in response.json()["error"]
        assert services.stores.queue.get(ticket_id, False).status == "claimed"
        assert services.stores.forwards.forward_event(ticket_id) is None
        assert services.gateway.mailer.mails.for_ticket(ticket_id) == [] and inbox.messages == []
        assert not [line for line in customer_lines(admin, token) if "引き継ぎました" in line]
        # Forwarded once; a second try meets a resolved ticket.
        assert admin.post(forward, json={"department": "accounting", "note": "メモ"}).status_code == 200
        again = admin.post(forward, json={"department": "accounting", "note": "メモ"})
        assert again.status_code == 409 and "すでに解決済み" in again.json()["error"]


def test_without_a_mail_server_a_mail_only_department_is_refused(tmp_path: Path) -> None:
    with forward_server(tmp_path, None, None) as (admin, agent, services):
        ticket_id, _ = claimed_chat(admin, services)
        response = admin.post(f"/api/tickets/{ticket_id}/forward", json={"department": "accounting", "note": "メモ"})
        assert response.status_code == 409 and "BOT_SMTP_HOST" in response.json()["error"]
        assert services.stores.queue.get(ticket_id, False).status == "claimed"


def test_a_mail_given_up_is_in_the_history_not_the_customers_chat(tmp_path: Path) -> None:
    # One try (retries are the transcript mailer's, tests/test_transcript_mail.py): given up at once.
    down = SmtpSettings(host="127.0.0.1", port=9, sender="support@example.jp", security="none", timeout=1, attempts=1)
    with forward_server(tmp_path, down, None) as (admin, agent, services):
        ticket_id, token = claimed_chat(admin, services)
        assert admin.post(f"/api/tickets/{ticket_id}/forward",
                          json={"department": "accounting", "note": "メモ"}).status_code == 200

        def failed() -> list[dict[str, Any]]:
            events = admin.get(f"/api/tickets/{ticket_id}/history").json()["events"]
            return [e for e in events if e["kind"] == "forward_failed"]

        found = wait_for(failed, 10.0)
        assert "keiri@example.jp" in found[0]["note"] and "1 回" in found[0]["note"]
        assert services.gateway.mailer.mails.for_ticket(ticket_id)[0].status == "failed"
        assert not [line for line in customer_lines(admin, token) if "送りできませんでした" in line]


def test_supervisors_and_admins_forward_other_agents_chats_recorded_with_who(
        tmp_path: Path, smtp: tuple[Inbox, SmtpSettings]) -> None:  # noqa: F811
    inbox, settings = smtp
    with forward_server(tmp_path, settings, None) as (admin, agent, services):
        body = {"department": "accounting", "note": "返金の確認をお願いします。"}
        # An agent cannot forward the admin's chat (tested above); the admin forwards the agent's.
        theirs, token = claimed_chat(agent, services)
        response = admin.post(f"/api/tickets/{theirs}/forward", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["ticket"]["resolution"] == "forwarded"
        events = admin.get(f"/api/tickets/{theirs}/history").json()["events"]
        step = [(e["actor"], e["actor_name"], e["target_name"], e["note"]) for e in events if e["kind"] == "forwarded"]
        assert step == [("sato", "佐藤", "経理部", "返金の確認をお願いします。")]
        record = [e for e in services.stores.queue.get(theirs).entries if e.sender == "system"][-1].text
        assert record == "佐藤さんが鈴木さんの対応中のチャットを経理部に引き継ぎました（メール）。"
        promise = TEXT["customer"].format(department="経理部", promise=ACCOUNTING.promise)
        assert [line for line in customer_lines(admin, token) if "経理部" in line] == [promise]
        # A supervisor (not an admin) forwards the admin's chat; an agent again cannot.
        mine, _ = claimed_chat(admin, services)
        refused = agent.post(f"/api/tickets/{mine}/forward", json=body)
        assert refused.status_code == 409 and "あなたが対応中ではない" in refused.json()["error"]
        services.stores.desk.update("suzuki", role="supervisor", changed_by="sato")
        assert agent.post(f"/api/tickets/{mine}/forward", json=body).status_code == 200
        events = admin.get(f"/api/tickets/{mine}/history").json()["events"]
        assert [(e["actor"], e["target"]) for e in events if e["kind"] == "forwarded"] == [("suzuki", "accounting")]
        assert services.stores.queue.get(mine, False).resolved_by == "suzuki"
        # Each forward mailed the department once, naming who forwarded it.
        mails = [read(raw) for _, _, raw in inbox.wait(2)]
        named = [[n for n in ("佐藤", "鈴木") if f"担当者の{n}" in m.get_content()] for m in mails]
        assert sorted(named) == [["佐藤"], ["鈴木"]]
