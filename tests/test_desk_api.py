"""The desk's agent API (#14 item 1): status, offers, accept / decline, caps, late replies, admin-only pages.

One bot server on SQLite with a scripted Rasa (tests/test_server.py); the assignment rounds run
every 0.05 s. The store's rules on both databases are in tests/test_desk.py.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.server.app import Services, create_app, stores_for
from bot.server.tokens import ConversationTokens
from test_gateway_durability import wait_for
from test_server import PASSWORD, SECRET, ScriptedRasa


@contextmanager
def admin_and_agent(db_path: Path, assign_interval: float = 0.05, database_url: str | None = None,
                    **services_options: Any) -> Iterator[tuple[TestClient, TestClient, Services]]:
    """A bot server on a fresh SQLite file with the admin's client (sato, the first agent) and
    an agent's (suzuki), both logged in; ``database_url``: another database instead (PostgreSQL);
    ``services_options`` go to :class:`Services`."""
    ref: dict[str, Any] = {}
    services = Services(stores_for(database_url or f"sqlite:///{db_path}"), ScriptedRasa(ref),  # type: ignore[arg-type]
                        ConversationTokens(SECRET), **services_options)
    ref["services"] = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    services.stores.agents.add("suzuki", "鈴木", PASSWORD)
    app = create_app(services, SECRET, watch_interval=0.05, assign_interval=assign_interval)
    with TestClient(app) as admin, TestClient(app) as agent:
        for client, name in ((admin, "sato"), (agent, "suzuki")):
            response = client.post("/api/agent/login", json={"username": name, "password": PASSWORD})
            assert response.status_code == 200, response.text
            client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        yield admin, agent, services


@pytest.fixture()
def desk_server(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, Services]]:
    """The admin's client (sato, the first agent) and an agent's (suzuki), both logged in."""
    with admin_and_agent(tmp_path / "bot.db") as clients:
        yield clients


def file_ticket(services: Services, key: str, category: str = "登録情報の変更") -> int:
    packet = HandoffPacket(f"{key}:1", key, ["human_request"], [Turn("customer", "担当者と話したい")], category=category)
    return services.stores.queue.enqueue(packet)[0].id


def offers(client: TestClient) -> list[int]:
    return [t["id"] for t in client.get("/api/desk/me").json()["offers"]]


def test_admin_pages_are_for_admins_with_checked_values(desk_server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = desk_server
    for response in (agent.get("/api/admin/agents"), agent.post("/api/admin/agents/suzuki", json={"max_chats": 9})):
        assert response.status_code == 403 and response.json()["error"] == wording.DESK_TEXT["admin_only"]
    listing = admin.get("/api/admin/agents").json()
    assert [(a["username"], a["role_label"], a["max_chats"], a["status_label"]) for a in listing["agents"]] == \
        [("sato", "管理者", 3, "オフライン"), ("suzuki", "担当者", 3, "オフライン")]
    assert "登録情報の変更" in listing["categories"] and listing["max_chats_limit"] == 20
    bad = {"max_chats": 0, "role": "root", "status": "busy", "skills": ["料金・請求"]}
    for field, value in bad.items():
        response = admin.post("/api/admin/agents/suzuki", json={field: value})
        assert response.status_code == 422, field
        assert str(value) in response.json()["error"] or "料金・請求" in response.json()["error"]
    assert admin.post("/api/admin/agents/suzuki", json={}).status_code == 422
    assert admin.post("/api/admin/agents/ghost", json={"max_chats": 2}).status_code == 404
    assert admin.post("/api/admin/agents/sato", json={"role": "agent"}).status_code == 409  # the last admin
    changed = admin.post("/api/admin/agents/suzuki", json={"max_chats": "5", "skills": ["登録情報の変更"]})
    assert changed.status_code == 200
    assert (changed.json()["agent"]["max_chats"], changed.json()["agent"]["skills"]) == (5, ["登録情報の変更"])
    assert admin.post("/api/admin/agents/suzuki", json={"role": "admin"}).status_code == 200
    assert agent.get("/api/admin/agents").status_code == 200  # an admin now
    assert admin.post("/api/admin/agents/suzuki", json={"max_chats": 2}, headers={"X-CSRF-Token": "x"}).status_code \
        == 403


def test_offer_decline_accept_and_the_cap(desk_server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = desk_server
    first = file_ticket(services, "c1")
    time.sleep(0.2)
    assert offers(agent) == [] and offers(admin) == []  # both offline: nothing offered
    assert agent.post("/api/desk/status", json={"status": "busy"}).status_code == 422
    assert agent.post("/api/desk/status", json={"status": "available"}).json()["agent"]["status_label"] == "対応可能"
    wait_for(lambda: offers(agent) == [first])
    me = agent.get("/api/desk/me").json()
    assert (me["agent"]["load"], me["agent"]["max_chats"], me["offer_seconds"]) == (1, 3, 30)
    assert me["offers"][0]["offered_to_name"] == "鈴木" and me["offers"][0]["offer_expires_at"]
    conversation = services.stores.queue.get(first, False).conversation_id
    import asyncio

    state = asyncio.run(services.gateway.state(conversation))
    assert (state["mode"], state["position"]) == ("waiting", 1)
    # Declined: nobody else is available, so it stays unoffered until someone is.
    assert agent.post(f"/api/tickets/{first}/decline").status_code == 200
    assert agent.post(f"/api/tickets/{first}/decline").json()["error"] == \
        wording.DESK_TEXT["not_offered"].format(ticket_id=first)
    admin.post("/api/desk/status", json={"status": "available"})
    wait_for(lambda: offers(admin) == [first])
    assert admin.post(f"/api/tickets/{first}/claim").status_code == 200  # accept
    assert admin.get("/api/desk/me").json()["agent"]["load"] == 1
    # A cap of 1: the next ticket goes to the other agent, and a manual claim is refused in Japanese.
    admin.post("/api/admin/agents/sato", json={"max_chats": 1})
    second = file_ticket(services, "c2")
    wait_for(lambda: offers(agent) == [second])
    refused = admin.post(f"/api/tickets/{second}/claim")
    assert refused.status_code == 409
    assert refused.json()["error"] == wording.DESK_TEXT["full"].format(cap=1, ticket_id=second)
    # Away: the offer goes back at once; logging out means offline.
    agent.post("/api/desk/status", json={"status": "away"})
    assert offers(agent) == [] and services.stores.queue.get(second, False).offered_to is None
    admin.post("/api/agent/logout")
    assert services.stores.desk.agent("sato").status == "offline"  # type: ignore[union-attr]


def test_a_late_reply_is_flagged_and_taken_over_politely(desk_server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = desk_server
    ticket = file_ticket(services, "c1")
    assert admin.post(f"/api/tickets/{ticket}/claim").status_code == 200
    assert agent.get("/api/desk/me").json()["overdue"] == []
    desk = services.stores.desk
    desk.clock = lambda: time.time() + 5 * 60 + 1
    late = agent.get("/api/desk/me").json()["overdue"]
    assert [t["id"] for t in late] == [ticket] and late[0]["reply_overdue"] is True
    assert agent.get(f"/api/tickets/{ticket}").json()["ticket"]["reply_overdue"] is True
    assert agent.post(f"/api/tickets/{ticket}/takeover").status_code == 200
    conversation = services.stores.queue.get(ticket, False).conversation_id
    system = [m.text for m in services.stores.chat_log.history(conversation) if m.sender == "system"]
    assert system[-1] == "担当者が交代します。ここからは鈴木が担当いたします。"
    entries = services.stores.queue.get(ticket).entries
    assert entries[-1].sender == "system" and entries[-1].text == "鈴木さんが佐藤さんから対応を引き継ぎました。"
    desk.clock = time.time
    assert agent.get("/api/desk/me").json()["overdue"] == []  # the new agent's own time to reply


def test_bot_agent_set_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """`bot agent add` makes the first agent admin; `bot agent set` checks values; `list` shows them."""
    from bot.settings import get_settings
    from test_agent_sessions import run_cli

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    try:
        assert run_cli(["agent", "add", "sato", "--name", "佐藤"], monkeypatch, url, [PASSWORD, PASSWORD]) == 0
        assert "管理者です" in capsys.readouterr().out
        assert run_cli(["agent", "add", "suzuki", "--name", "鈴木"], monkeypatch, url, [PASSWORD, PASSWORD]) == 0
        assert "管理者" not in capsys.readouterr().out
        for bad, expected in ((["--max-chats", "0"], "1 から 20 までの整数"), (["--max-chats", "-3"], "1 から 20"),
                              (["--max-chats", "1000"], "1 から 20"), (["--skills", "料金・請求"], "料金・請求"),
                              (["--role", "root"], "admin"), ([], "変更する項目")):
            assert run_cli(["agent", "set", "suzuki", *bad], monkeypatch, url) == 1, bad
            assert expected in capsys.readouterr().err
        assert run_cli(["agent", "set", "ghost", "--max-chats", "2"], monkeypatch, url) == 1
        assert "ghost" in capsys.readouterr().err
        assert run_cli(["agent", "set", "suzuki", "--max-chats", "5", "--skills", "登録情報の変更、サービスについて",
                        "--status", "available"], monkeypatch, url) == 0
        assert "担当者・同時対応数 5・対応可能・スキル: 登録情報の変更、サービスについて" in capsys.readouterr().out
        assert run_cli(["agent", "list"], monkeypatch, url) == 0
        listing = capsys.readouterr().out
        assert "役割" in listing and "管理者" in listing and "0 / 5" in listing and "0 / 3" in listing
        assert "すべて" in listing and "オフライン" in listing
    finally:
        get_settings.cache_clear()
