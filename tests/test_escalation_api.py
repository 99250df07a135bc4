"""Escalation's agent API (#15 items 1 and 2): roles, transfers, escalate → join, whispers, history, 409s,
bad input, the supervisor view and the automatic escalation's background loop.

One bot server on SQLite with a scripted Rasa (tests/test_desk_api.py's server): sato is the
admin (an admin can do all a supervisor can), suzuki an agent, kato is made a supervisor by
the admin. The store's rules on both databases are in tests/test_escalation.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.server.app import Services
from test_desk_api import admin_and_agent
from test_gateway_durability import wait_for
from test_server import PASSWORD

TEXT = wording.ESCALATION_TEXT
GATEWAY = wording.GATEWAY_TEXT
Clients = tuple[TestClient, TestClient, TestClient, Services]


@contextmanager
def three_roles(db_path: Path, **services_options: Any) -> Iterator[Clients]:
    """The admin (sato), an agent (suzuki) and a supervisor (kato), logged in; everyone 対応可能."""
    with admin_and_agent(db_path, assign_interval=60, **services_options) as (admin, agent, services):
        services.stores.agents.add("kato", "加藤", PASSWORD)
        assert admin.post("/api/admin/agents/kato", json={"role": "supervisor"}).json()["agent"]["role_label"] == "責任者"
        supervisor = TestClient(admin.app)
        login = supervisor.post("/api/agent/login", json={"username": "kato", "password": PASSWORD})
        supervisor.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        for client in (admin, agent, supervisor):
            assert client.post("/api/desk/status", json={"status": "available"}).status_code == 200
        yield admin, agent, supervisor, services


@pytest.fixture()
def roles(tmp_path: Path) -> Iterator[Clients]:
    with three_roles(tmp_path / "bot.db", escalate_after_seconds=0) as clients:
        yield clients


def customer_ticket(client: TestClient, services: Services, reasons: tuple[str, ...] = ("human_request",)) -> tuple[int, str]:
    """A widget conversation with a ticket; returns the ticket id and the customer's token."""
    session = client.post("/api/chat/sessions", json={}).json()
    packet = HandoffPacket(f"{session['conversation_id']}:1", session["conversation_id"], list(reasons),
                           [Turn("customer", "担当者と話したい")], category="登録情報の変更")
    return services.stores.queue.enqueue(packet)[0].id, session["token"]


def customer_lines(client: TestClient, token: str) -> list[str]:
    history = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()
    return [m["text"] for m in history["messages"] if m["sender"] == "system"]


def published(services: Services) -> Any:
    """Every ticket event this server publishes from now on, as (change, ticket id, claimed_by).

    (The ticket watcher announces new tickets on its own time: a ``created`` may come in between.)
    """
    seen: list[tuple[str, int, Any]] = []
    hub = services.hub
    original = hub.publish_ticket

    def spy(change: str, ticket: dict[str, Any]) -> None:
        seen.append((change, ticket["id"], ticket["claimed_by"]))
        original(change, ticket)

    hub.publish_ticket = spy  # type: ignore[method-assign]
    return seen


def test_agents_cannot_use_the_supervisor_view_join_or_whisper(roles: Clients) -> None:
    admin, agent, supervisor, services = roles
    ticket, _ = customer_ticket(agent, services)
    for response in (agent.get("/api/supervisor/overview"), agent.post(f"/api/tickets/{ticket}/join"),
                     agent.post(f"/api/tickets/{ticket}/whisper", json={"text": "x"})):
        assert (response.status_code, response.json()["error"]) == (403, TEXT["supervisor_only"])
    for client in (admin, supervisor):
        assert client.get("/api/supervisor/overview").status_code == 200
    assert TestClient(admin.app).get("/api/supervisor/overview").status_code == 401
    refused = admin.post("/api/admin/agents/kato", json={"role": "boss"})
    assert refused.status_code == 422 and "supervisor（責任者）" in refused.json()["error"]


def test_escalate_notify_join_once_and_resolve(roles: Clients) -> None:
    admin, agent, supervisor, services = roles
    ticket, token = customer_ticket(agent, services, ("anger",))
    assert agent.post(f"/api/tickets/{ticket}/claim").status_code == 200
    events = published(services)
    escalated = agent.post(f"/api/tickets/{ticket}/escalate", json={"note": "解約を強く求めています"})
    assert escalated.status_code == 200
    body = escalated.json()["ticket"]
    assert (body["escalation"], body["escalation_label"], body["priority_label"], body["claimed_by"]) == \
        ("requested", "責任者待ち", "至急", "suzuki")
    assert [e for e in events if e[0] != "created"] == [("escalated", ticket, "suzuki")]  # every console, at once
    assert agent.post(f"/api/tickets/{ticket}/reply", json={"text": "確認いたします。"}).status_code == 200  # still in
    again = agent.post(f"/api/tickets/{ticket}/escalate", json={})
    assert (again.status_code, again.json()["error"]) == (409, TEXT["already_escalated"].format(ticket_id=ticket))
    overview = supervisor.get("/api/supervisor/overview").json()
    row = next(t for t in overview["tickets"] if t["id"] == ticket)
    assert row["escalation"] == "requested" and row["last_customer_at"] and overview["tickets"][0]["id"] == ticket
    assert {a["username"]: (a["chats"], a["max_chats"]) for a in overview["agents"]}["suzuki"] == (1, 3)

    joined = supervisor.post(f"/api/tickets/{ticket}/join")
    assert joined.status_code == 200 and joined.json()["ticket"]["claimed_by"] == "kato"
    second = admin.post(f"/api/tickets/{ticket}/join")
    assert (second.status_code, second.json()["error"]) == \
        (409, TEXT["already_joined"].format(ticket_id=ticket, name="加藤"))
    assert agent.post(f"/api/tickets/{ticket}/reply", json={"text": "x"}).status_code == 409  # the agent left
    assert customer_lines(agent, token) == [GATEWAY["agent_joined"].format(name="鈴木"),
                                            GATEWAY["supervisor_joined"].format(name="加藤")]
    assert supervisor.post(f"/api/tickets/{ticket}/resolve").status_code == 200
    history = agent.get(f"/api/tickets/{ticket}/history").json()["events"]
    assert [(e["kind_label"], e["actor_name"], e["note"]) for e in history] == [
        ("対応開始", "鈴木", None), ("エスカレーション", "鈴木", "解約を強く求めています"),
        ("責任者が参加", "加藤", None), ("解決", "加藤", None)]
    assert all(e["at"] for e in history)


def test_transfer_to_a_colleague_and_to_the_queue_with_one_line_each(roles: Clients) -> None:
    admin, agent, supervisor, services = roles
    ticket, token = customer_ticket(agent, services)
    agent.post(f"/api/tickets/{ticket}/claim")
    targets = agent.get("/api/transfer-targets").json()
    assert {"sato", "kato"} <= {a["username"] for a in targets["agents"]} and "登録情報の変更" in targets["categories"]
    moved = agent.post(f"/api/tickets/{ticket}/transfer", json={"to_agent": "sato", "note": "料金の件は佐藤さんへ"})
    assert moved.status_code == 200 and moved.json()["ticket"]["claimed_by"] == "sato"
    back = admin.post(f"/api/tickets/{ticket}/transfer",
                      json={"to_queue": True, "category": "サービスについて", "note": "サービスの担当へ"})
    assert back.status_code == 200
    assert (back.json()["ticket"]["status"], back.json()["ticket"]["category"]) == ("waiting", "サービスについて")
    assert customer_lines(agent, token) == [GATEWAY["agent_joined"].format(name="鈴木"),
                                            GATEWAY["agent_changed"].format(name="佐藤"), GATEWAY["requeued"]]
    history = agent.get(f"/api/tickets/{ticket}/history").json()["events"]
    assert [(e["kind"], e["target_name"], e["note"]) for e in history][1:] == [
        ("transferred", "佐藤", "料金の件は佐藤さんへ"), ("requeued", "サービスについて", "サービスの担当へ")]


def test_a_whisper_reaches_the_agent_never_the_customer(roles: Clients) -> None:
    admin, agent, supervisor, services = roles
    ticket, token = customer_ticket(agent, services)
    agent.post(f"/api/tickets/{ticket}/claim")
    secret = "<b>ささやき</b>：まず謝罪を"
    events = published(services)
    answer = supervisor.post(f"/api/tickets/{ticket}/whisper", json={"text": secret})
    assert answer.status_code == 200 and answer.json()["events"][-1]["note"] == secret
    assert [e for e in events if e[0] != "created"] == [("whisper", ticket, "suzuki")]
    assert agent.get(f"/api/tickets/{ticket}/history").json()["events"][-1]["note"] == secret
    history = agent.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"})
    assert secret not in history.text and "まず謝罪" not in history.text
    entries = agent.get(f"/api/tickets/{ticket}").json()["ticket"]["entries"]
    assert all("まず謝罪" not in e["text"] for e in entries)
    # Another agent's console does not read it.
    services.stores.agents.add("ito", "伊藤", PASSWORD)
    other = TestClient(admin.app)
    other.post("/api/agent/login", json={"username": "ito", "password": PASSWORD})
    assert all(e["kind"] != "whisper" for e in other.get(f"/api/tickets/{ticket}/history").json()["events"])


BAD_INPUT = [
    # (who, action, body, status, message)
    ("agent", "transfer", {"note": "理由"}, 422, TEXT["no_target"]),
    ("agent", "transfer", {"to_agent": "sato", "to_queue": True, "note": "理由"}, 422, TEXT["two_targets"]),
    ("agent", "transfer", {"to_agent": "sato"}, 422, TEXT["note_required"]),
    ("agent", "transfer", {"to_agent": "sato", "note": "   "}, 422, TEXT["note_required"]),
    ("agent", "transfer", {"to_agent": "sato", "note": ["理由"]}, 422, TEXT["not_text"].format(what="内部メモ")),
    ("agent", "transfer", {"to_agent": "sato", "note": "あ" * 1001}, 422,
     TEXT["too_long"].format(what="内部メモ", limit=1000, length=1001)),
    ("agent", "transfer", {"to_queue": True, "category": "料金・請求", "note": "理由"}, 422, "カテゴリ「料金・請求」"),
    ("agent", "transfer", {"to_agent": "ghost", "note": "理由"}, 404, TEXT["unknown_agent"].format(username="ghost")),
    ("agent", "transfer", {"to_agent": "ito", "note": "理由"}, 409, TEXT["unavailable"].format(name="伊藤",
                                                                                             status="オフライン")),
    ("agent", "transfer", {"to_agent": "suzuki", "note": "理由"}, 409, TEXT["to_self"].format(name="鈴木")),
    ("agent", "escalate", {"note": "あ" * 1001}, 422, TEXT["too_long"].format(what="内部メモ", limit=1000, length=1001)),
    ("supervisor", "escalate", {}, 409, "あなたが対応中ではないため"),
    ("supervisor", "whisper", {"text": ""}, 422, TEXT["text_required"].format(what="ささやき")),
    ("supervisor", "whisper", {"text": "あ" * 1001}, 422, TEXT["too_long"].format(what="ささやき", limit=1000,
                                                                               length=1001)),
    ("supervisor", "whisper", {"text": 3}, 422, TEXT["not_text"].format(what="ささやき")),
    ("agent", "transfer", "not json", 400, "JSON"),
]


def test_bad_input_gets_a_clear_japanese_message_and_changes_nothing(roles: Clients) -> None:
    admin, agent, supervisor, services = roles
    services.stores.agents.add("ito", "伊藤", PASSWORD)  # offline
    for who, action, body, status, message in BAD_INPUT:
        case = f"{who} {action} {str(body)[:40]}"
        ticket, token = customer_ticket(agent, services)  # a fresh chat per case
        agent.post(f"/api/tickets/{ticket}/claim")
        client = {"agent": agent, "supervisor": supervisor}[who]
        if isinstance(body, str):
            response = client.post(f"/api/tickets/{ticket}/{action}", content=body.encode(),
                                   headers={"Content-Type": "application/json"})
        else:
            response = client.post(f"/api/tickets/{ticket}/{action}", json=body)
        assert response.status_code == status, (case, response.text)
        assert message in response.json()["error"], case
        state = services.stores.queue.get(ticket, False)
        assert (state.status, state.claimed_by, state.escalation) == ("claimed", "suzuki", None), case
        assert [e["kind"] for e in agent.get(f"/api/tickets/{ticket}/history").json()["events"]] == ["claimed"], case
        assert customer_lines(agent, token) == [GATEWAY["agent_joined"].format(name="鈴木")], case
        agent.post(f"/api/tickets/{ticket}/resolve")  # a free slot for the next case


def test_unknown_tickets_and_resolved_ones(roles: Clients) -> None:
    admin, agent, supervisor, services = roles
    for client, path in ((agent, "transfer"), (agent, "escalate"), (supervisor, "join"), (supervisor, "whisper")):
        response = client.post(f"/api/tickets/99999/{path}", json={"to_agent": "sato", "note": "x", "text": "x"})
        assert (response.status_code, response.json()["error"]) == \
            (404, wording.STORE_AGENT_TEXT["not_found"].format(ticket_id=99999)), path
    assert agent.get("/api/tickets/99999/history").status_code == 404
    ticket, _ = customer_ticket(agent, services)
    agent.post(f"/api/tickets/{ticket}/claim")
    agent.post(f"/api/tickets/{ticket}/resolve")
    response = agent.post(f"/api/tickets/{ticket}/escalate", json={})
    assert (response.status_code, response.json()["error"]) == \
        (409, TEXT["resolved"].format(ticket_id=ticket, action="エスカレーション"))
    response = supervisor.post(f"/api/tickets/{ticket}/join")
    assert (response.status_code, response.json()["error"]) == \
        (409, TEXT["resolved"].format(ticket_id=ticket, action="参加"))


def test_the_background_loop_escalates_a_waiting_anger_ticket(tmp_path: Path) -> None:
    with three_roles(tmp_path / "bot.db", escalate_after_seconds=1) as (admin, agent, supervisor, services):
        events = published(services)
        calm, _ = customer_ticket(agent, services)
        angry, _ = customer_ticket(agent, services, ("anger",))
        wait_for(lambda: ("escalated", angry, None) in events, seconds=10)
        history = supervisor.get(f"/api/tickets/{angry}/history").json()["events"]
        assert (history[-1]["kind_label"], history[-1]["actor_name"]) == ("自動エスカレーション", "システム")
        assert history[-1]["note"] == TEXT["auto_note"].format(wait="1秒")
        assert services.stores.queue.get(calm, False).escalation is None
        assert [e for e in events if e[0] == "escalated"] == [("escalated", angry, None)]  # once
