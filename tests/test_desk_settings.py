"""対応の設定: the desk's timings changed by an admin in the console (#14: admins manage settings).

On SQLite and PostgreSQL: the values in force over the start values, a change seen by the
desk at once on its own server and by a second server after the cache, the change audited
with the old and new value, 「初期値に戻す」, automatic offers turned off and on again, automatic
escalation turned on in a server that started with it off (its loop escalates the anger
ticket), and the bad-input table (403 / 400 / 404 / 422, nothing changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from bot.handoff.packet import HandoffPacket, Turn
from bot.store import desk_settings
from bot.store.database import stores_for
from bot.store.desk_settings import DeskSettings
from conftest import temporary_database
from test_desk_api import admin_and_agent, file_ticket
from test_gateway_durability import wait_for

START = {"offer_seconds": 30, "reply_overdue_minutes": 5, "escalate_after_seconds": 0}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


def audit_lines(services: Any) -> list[tuple[str, str, str, dict[str, Any]]]:
    from sqlalchemy import text

    with services.stores.engine.connect() as connection:
        rows = connection.execute(text("SELECT actor, target, address, detail FROM audit_log "
                                       "WHERE action = 'desk.settings_changed' ORDER BY id")).all()
    return [(r.actor, r.target, r.address, r.detail if isinstance(r.detail, dict) else __import__("json").loads(r.detail))
            for r in rows]


def test_an_admin_changes_resets_and_every_server_follows(database: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with admin_and_agent(tmp_path / "unused.db", assign_interval=60, database_url=database,
                         escalate_after_seconds=0) as (admin, agent, services):
        listed = {s["name"]: s for s in admin.get("/api/admin/settings").json()["settings"]}
        assert list(listed) == ["offer_seconds", "reply_overdue_minutes", "escalate_after_seconds"]
        assert (listed["offer_seconds"]["value"], listed["offer_seconds"]["default"],
                listed["offer_seconds"]["changed_by"]) == (30, 30, None)
        assert listed["escalate_after_seconds"]["env"] == "BOT_ESCALATE_AFTER_SECONDS"
        other = stores_for(database)  # a second bot server on the same database
        assert other.desk.offer_seconds == 30

        changed = admin.put("/api/admin/settings/offer_seconds", json={"value": 45})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["setting"]["value"], changed.json()["setting"]["changed_by_name"]) == (45, "佐藤")
        assert services.stores.desk.offer_seconds == 45  # this server: at once
        assert other.desk.offer_seconds == 30  # the other: after its cache ...
        monkeypatch.setattr(desk_settings, "CACHE_SECONDS", 0.0)
        assert other.desk.offer_seconds == 45  # ... with no restart
        assert admin.put("/api/admin/settings/reply_overdue_minutes", json={"value": "１０"}).json()["setting"][
            "value"] == 10  # full-width digits from the IME
        assert other.desk.reply_overdue_minutes == 10

        reset = admin.put("/api/admin/settings/offer_seconds", json={"value": None})
        assert reset.json()["setting"]["value"] == 30 and reset.json()["setting"]["changed_by"] is None
        assert other.desk.offer_seconds == 30
        lines = audit_lines(services)
        assert [(a, t, d) for a, t, _, d in lines] == [
            ("sato", "setting:offer_seconds", {"name": "offer_seconds", "old": 30, "new": 45}),
            ("sato", "setting:reply_overdue_minutes", {"name": "reply_overdue_minutes", "old": 5, "new": 10}),
            ("sato", "setting:offer_seconds", {"name": "offer_seconds", "old": 45, "new": 30, "reset": True})]
        assert all(address for _, _, address, _ in lines)  # the admin's client address
        other.engine.dispose()


def test_the_cache_keeps_a_value_for_its_time_only(database: str) -> None:
    stores = stores_for(database)
    now = [0.0]
    reader = DeskSettings(stores.engine, START, clock=lambda: now[0])
    assert reader.value("offer_seconds") == 30
    stores.desk_settings.change("offer_seconds", 5, "sato")
    now[0] = desk_settings.CACHE_SECONDS - 0.01
    assert reader.value("offer_seconds") == 30
    now[0] = desk_settings.CACHE_SECONDS
    assert reader.value("offer_seconds") == 5
    stores.engine.dispose()


def test_offers_stop_at_zero_and_start_again(database: str, tmp_path: Path) -> None:
    with admin_and_agent(tmp_path / "unused.db", assign_interval=60, database_url=database) as (admin, agent, services):
        assert agent.post("/api/desk/status", json={"status": "available"}).status_code == 200
        assert admin.put("/api/admin/settings/offer_seconds", json={"value": 0}).status_code == 200
        ticket = file_ticket(services, "c-offer")
        assert services.stores.desk.assign().offered == []  # agents claim by hand now
        assert admin.put("/api/admin/settings/offer_seconds", json={"value": None}).status_code == 200
        assert list(services.stores.desk.assign().offered) == [ticket]


def test_automatic_escalation_turned_on_in_a_running_server(tmp_path: Path) -> None:
    from test_escalation_api import published

    with admin_and_agent(tmp_path / "bot.db", assign_interval=60, escalate_after_seconds=0) as (admin, agent, services):
        events = published(services)
        packet = HandoffPacket("c-angry:1", "c-angry", ["anger"], [Turn("customer", "ふざけるな")])
        angry = services.stores.queue.enqueue(packet)[0].id
        assert admin.put("/api/admin/settings/escalate_after_seconds", json={"value": 1}).status_code == 200
        wait_for(lambda: ("escalated", angry, None) in events, seconds=10)
        assert services.stores.queue.get(angry, False).escalation is not None


BAD = [
    ("offer_seconds", {"value": -1}, 422, "「割り当ての応答待ち」には 0 から 3600 までの整数を秒で入力してください（入力: -1）。"),
    ("offer_seconds", {"value": 3601}, 422, "0 から 3600 までの整数"),
    ("offer_seconds", {"value": 1.5}, 422, "（入力: 1.5）"),
    ("offer_seconds", {"value": True}, 422, "（入力: True）"),
    ("offer_seconds", {"value": "三十"}, 422, "（入力: 三十）"),
    ("offer_seconds", {"value": ""}, 422, "（入力: ）"),
    ("offer_seconds", {"value": "<b>1</b>" * 10}, 422, "（入力: <b>1</b><b>1</b><b>1）"),
    ("offer_seconds", {}, 400, "「value」に数値を指定してください"),
    ("retention_days", {"value": 30}, 404, "「retention_days」という設定はありません"),
]


@pytest.mark.parametrize(("name", "body", "status", "message"), BAD)
def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path, name: str, body: dict[str, Any], status: int,
                                                  message: str) -> None:
    with admin_and_agent(tmp_path / "bot.db", assign_interval=60) as (admin, agent, services):
        answer = admin.put(f"/api/admin/settings/{name}", json=body)
        assert (answer.status_code, message in answer.json()["error"]) == (status, True), answer.text
        assert services.stores.desk.offer_seconds == services.stores.desk.start_offer_seconds
        assert audit_lines(services) == []


def test_agents_and_requests_without_csrf_or_json_are_refused(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    with admin_and_agent(tmp_path / "bot.db", assign_interval=60) as (admin, agent, services):
        assert agent.get("/api/admin/settings").status_code == 403
        assert agent.put("/api/admin/settings/offer_seconds", json={"value": 5}).status_code == 403
        assert TestClient(admin.app).get("/api/admin/settings").status_code == 401
        no_csrf = admin.put("/api/admin/settings/offer_seconds", json={"value": 5},
                            headers={"X-CSRF-Token": ""})
        assert no_csrf.status_code == 403
        malformed = admin.put("/api/admin/settings/offer_seconds", content=b"{value: 5",
                              headers={"Content-Type": "application/json"})
        assert (malformed.status_code, malformed.json()["error"]) == (400, "JSON の形式が正しくありません。")
        assert services.stores.desk.offer_seconds == services.stores.desk.start_offer_seconds
        assert audit_lines(services) == []
