"""The audit log's admin API (#14 item 6) and `bot retention run`: admins only, filters, pages, CSV.

One bot server on SQLite with a scripted Rasa (tests/test_desk_api.py's admin and agent). The
store's rules on both databases are in tests/test_retention.py.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot import wording
from bot.server.app import Services
from bot.store.audit import AuditFilter
from test_desk_api import admin_and_agent, file_ticket
from test_server import PASSWORD

FORMULA_NAME = "=HYPERLINK(\"http://x\")"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, Services]]:
    with admin_and_agent(tmp_path / "bot.db") as clients:
        yield clients


def actions(client: TestClient, **query: Any) -> list[str]:
    response = client.get("/api/admin/audit", params={"limit": 200, **query})
    assert response.status_code == 200, response.text
    return [e["action"] for e in response.json()["entries"]]


def test_admins_only_and_no_way_to_write(server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = server
    for path in ("/api/admin/audit", "/api/admin/audit.csv"):
        response = agent.get(path)
        assert response.status_code == 403 and response.json()["error"] == wording.DESK_TEXT["admin_only"]
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert admin.request(method, path).status_code == 405
    with TestClient(admin.app) as anonymous:
        assert anonymous.get("/api/admin/audit").status_code == 401
    audit_routes = [r for r in admin.app.routes if "audit" in getattr(r, "path", "")]
    assert audit_routes and all(r.methods <= {"GET", "HEAD"} for r in audit_routes)
    before = actions(admin)
    agent.post("/api/admin/audit", json={"action": "auth.login"})
    assert actions(admin) == before


def test_actions_filters_and_pages(server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = server
    assert admin.post("/api/agent/login", json={"username": "suzuki", "password": "wrong"}).status_code == 401
    assert admin.post("/api/admin/agents/suzuki", json={"max_chats": 5}).status_code == 200
    ticket_id = file_ticket(services, "c1")
    assert agent.post(f"/api/tickets/{ticket_id}/claim").status_code == 200
    assert agent.post(f"/api/tickets/{ticket_id}/resolve").status_code == 200
    refused = agent.get("/api/analytics.csv.zip?days=7")  # agents read analytics; exports are for admins
    assert refused.status_code == 403 and refused.json()["error"] == wording.DESK_TEXT["admin_only"]
    assert admin.get("/api/analytics.csv.zip?days=7").status_code == 200
    assert agent.post("/api/agent/logout").status_code == 200

    listing = admin.get("/api/admin/audit").json()
    newest_first = [e["action"] for e in listing["entries"]]
    assert newest_first[:5] == ["auth.logout", "export.analytics", "ticket.resolved", "ticket.claimed",
                                "agent.changed"]
    assert newest_first.count("auth.login") == 2 and "auth.login_failed" in newest_first
    assert listing["actions"]["ticket.resolved"] == "解決" and "suzuki" in listing["actors"]
    failed = next(e for e in listing["entries"] if e["action"] == "auth.login_failed")
    assert (failed["actor"], failed["address"], failed["action_label"]) == ("suzuki", "testclient", "ログイン失敗")
    changed = next(e for e in listing["entries"] if e["action"] == "agent.changed")
    assert (changed["actor"], changed["target"], changed["detail"]) == \
        ("sato", "suzuki", {"changes": {"max_chats": [3, 5]}})

    assert actions(admin, actor="suzuki", action="ticket.claimed") == ["ticket.claimed"]
    assert set(actions(admin, actor="suzuki")) == {"auth.login", "auth.login_failed", "ticket.claimed",
                                                   "ticket.resolved", "auth.logout"}  # the refused export: nothing
    assert actions(admin, actor="sato", action="export.analytics") == ["export.analytics"]
    assert actions(admin, since="2000-01-01", until="2000-12-31") == []
    assert len(actions(admin, since="2000-01-01")) == listing["total"]
    first = admin.get("/api/admin/audit", params={"limit": 2}).json()
    second = admin.get("/api/admin/audit", params={"limit": 2, "offset": first["next_offset"]}).json()
    assert first["has_more"] and first["next_offset"] == 2 and first["total"] == listing["total"]
    assert [e["id"] for e in first["entries"] + second["entries"]] == [e["id"] for e in listing["entries"][:4]]
    last = admin.get("/api/admin/audit", params={"limit": 200}).json()
    assert (last["has_more"], last["next_offset"]) == (False, None)
    for bad in ({"action": "drop.table"}, {"since": "2026-13-01"}, {"since": "2026-11-02", "until": "2026-11-01"},
                {"limit": "0"}, {"offset": "-1"}):
        response = admin.get("/api/admin/audit", params=bad)
        assert response.status_code == 422 and response.json()["error"], bad


def test_csv_export_is_defused_and_logged(server: tuple[TestClient, TestClient, Services]) -> None:
    admin, agent, services = server
    assert admin.post("/api/agent/login", json={"username": FORMULA_NAME, "password": "x"}).status_code == 401
    response = admin.get("/api/admin/audit.csv", params={"action": "auth.login_failed"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["cache-control"] == "no-store" and "attachment" in response.headers["content-disposition"]
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0] == ["日時（日本時間）", "操作した人", "操作", "操作コード", "対象", "詳細", "接続元"]
    assert [row[1:5] for row in rows[1:]] == [["'" + FORMULA_NAME, "ログイン失敗", "auth.login_failed",
                                               "'" + FORMULA_NAME]]
    exported, _ = services.stores.audit.page(AuditFilter(action="export.audit"))
    assert [(e.actor, e.detail) for e in exported] == [("sato", {"action": "auth.login_failed"})]
    assert agent.get("/api/admin/audit.csv").status_code == 403


def test_bot_retention_run_and_agent_commands_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main
    from bot.server.app import stores_for
    from bot.settings import get_settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["agent", "add", "kato", "--name", "加藤", "--password-stdin"]) == 0
        assert main(["retention", "run", "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert "削除の対象（--dry-run" in dry and "チャットの発言: 0 件" in dry and "合計 0 件。" in dry
        assert main(["retention", "run"]) == 0
        assert "削除しました:" in capsys.readouterr().out
        lines, _ = stores_for(url).audit.page(AuditFilter())
        assert [(e.action, e.actor.startswith("cli:")) for e in reversed(lines)] == \
            [("agent.created", True), ("retention.run", True)]
    finally:
        get_settings.cache_clear()
