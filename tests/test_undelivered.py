"""Handoffs the outbox set aside reach the agents (#12): recorded with the reason, listed, retried, dismissed.

On SQLite and on PostgreSQL (127.0.0.1:5432). On PostgreSQL the refused packet is the issue's
own example: a category longer than ``String(100)``, a repeatable SQL error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot.handoff.outbox import Outbox
from bot.handoff.packet import HandoffPacket, Turn
from bot.handoff.reasons import reason_label
from bot.store.database import make_engine, stores_for
from bot.store.queue import Queue
from bot.store.undelivered import UndeliveredHandoffs
from conftest import temporary_database
from test_outbox import down_queue
from test_server import PASSWORD, SECRET, ScriptedRasa, login

CARD = "4111 1111 1111 1111"
KINDS = ["sqlite", "postgresql"]


def refused_packet(kind: str) -> HandoffPacket:
    """A packet the database refuses every time: too long a category (PostgreSQL), no sender (both)."""
    if kind == "postgresql":
        return HandoffPacket("long:1", "long", ["anger"], [Turn("customer", f"カード {CARD} が使えない")],
                             summary=f"理由: 怒り\nお客さま: カード {CARD} が使えない", category="長" * 150,
                             customer={"name": "山田 太郎"})
    return HandoffPacket("long:1", "long", ["anger"], [Turn(None, f"カード {CARD} が使えない")],  # type: ignore[arg-type]
                         summary=f"理由: 怒り\nお客さま: カード {CARD} が使えない", customer={"name": "山田 太郎"})


GOOD = HandoffPacket("good:1", "good", ["anger"], [Turn("customer", "ふざけるな")])
TORN = '{"idempotency_key": "torn:1", "conversation_id": "torn", "transcript": [{"text": "' + CARD


@pytest.fixture(params=KINDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


def kind_of(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def test_a_packet_the_database_refuses_is_recorded_there_with_its_reason(database: str, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.jsonl")
    outbox.put(refused_packet(kind_of(database)))
    outbox.put(GOOD)
    queue = Queue(make_engine(database))
    assert outbox.drain(queue) == 2
    assert [t.conversation_id for t in queue.open_tickets()] == ["good"]
    (record,) = UndeliveredHandoffs(queue.engine).list()
    expected = "DataError" if kind_of(database) == "postgresql" else "IntegrityError"
    assert record.kind == "refused" and record.reason.startswith(expected), record.reason
    assert record.conversation_id == "long" and record.status == "open" and record.set_aside_at is not None
    assert "**** **** **** 1111" in record.summary
    stored = json.dumps([record.summary, record.packet, record.reason], ensure_ascii=False)
    assert CARD not in stored and "4111111111111111" not in stored.replace(" ", "")
    # The next drain (or a restarted action server) records nothing twice.
    assert Outbox(tmp_path / "o.jsonl").drain(queue) == 0
    assert len(UndeliveredHandoffs(queue.engine).list("all")) == 1


def test_a_torn_line_set_aside_while_the_database_is_down_is_recorded_when_it_is_back(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(TORN + "\n", encoding="utf-8")
    outbox = Outbox(path)
    outbox.put(GOOD)
    assert outbox.drain(down_queue()) == 0  # set aside in .bad, nowhere else yet
    assert "torn:1" in (tmp_path / "o.bad").read_text(encoding="utf-8")
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))
    assert outbox.drain(queue) == 1
    (record,) = UndeliveredHandoffs(queue.engine).list()
    assert record.kind == "unreadable" and record.conversation_id == "torn" and record.packet is None
    assert "torn:1" in record.excerpt and CARD not in record.excerpt


def test_recording_fails_quietly_and_is_tried_again(tmp_path: Path) -> None:
    """A queue whose database cannot record (here: a stand-in without one) never stops the delivery."""
    from sqlalchemy.exc import DataError

    outbox = Outbox(tmp_path / "o.jsonl")
    outbox.put(refused_packet("sqlite"))
    queue = Queue(make_engine(f"sqlite:///{tmp_path / 'q.db'}"))

    class Refuses:
        def enqueue(self, packet: HandoffPacket) -> Any:
            raise DataError("INSERT …", {}, Exception("value too long"))

    assert outbox.drain(Refuses()) == 1  # type: ignore[arg-type]
    assert UndeliveredHandoffs(queue.engine).list() == []
    assert outbox.drain(queue) == 0  # nothing waiting, but the database is reached: recorded now
    assert [r.reason.split(":")[0] for r in UndeliveredHandoffs(queue.engine).list()] == ["DataError"]


# --- the agent API -----------------------------------------------------------------------


@pytest.fixture()
def server(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any, Path]]:
    """A bot server on ``database`` whose configured outbox is ``tmp_path/outbox.jsonl``."""
    from bot.server.app import Services, create_app
    from bot.server.tokens import ConversationTokens
    from bot.settings import get_settings

    monkeypatch.setenv("BOT_OUTBOX", str(tmp_path / "outbox.jsonl"))
    get_settings.cache_clear()
    ref: dict[str, Any] = {}
    services = Services(stores_for(database), ScriptedRasa(ref), ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    try:
        with TestClient(create_app(services, SECRET, watch_interval=0.05)) as client:
            yield client, services, tmp_path / "outbox.jsonl"
    finally:
        get_settings.cache_clear()


def set_aside_by_the_action_server(services: Any, outbox_file: Path, kind: str) -> None:
    """The action server's drain: one refused packet recorded in the database."""
    outbox = Outbox(outbox_file)
    outbox.put(refused_packet(kind))
    assert outbox.drain(services.stores.queue) == 1


def test_the_api_needs_a_login_and_csrf(server: tuple[TestClient, Any, Path]) -> None:
    client, services, outbox_file = server
    set_aside_by_the_action_server(services, outbox_file, "sqlite")
    assert client.get("/api/undelivered-handoffs").status_code == 401
    assert client.post("/api/undelivered-handoffs/1/dismiss").status_code == 401
    login(client)
    assert client.post("/api/undelivered-handoffs/1/dismiss").status_code == 403  # no CSRF token
    assert client.post("/api/undelivered-handoffs/1/retry").status_code == 403
    assert services.stores.undelivered.count_open() == 1


def test_agents_see_refused_and_unreadable_packets_masked_with_reason_and_time(
        server: tuple[TestClient, Any, Path]) -> None:
    client, services, outbox_file = server
    kind = kind_of(str(services.stores.engine.url))
    set_aside_by_the_action_server(services, outbox_file, kind)
    # Set aside while the database was away: only in .bad, listed (and recorded) from the file.
    outbox_file.write_text(TORN + "\n", encoding="utf-8")
    Outbox(outbox_file).pending()
    login(client)
    response = client.get("/api/undelivered-handoffs")
    assert response.status_code == 200
    body = response.json()
    assert body["open_count"] == 2 and body["recorded_from_file"] == 1
    unreadable, refused = body["items"]  # newest first
    assert refused["kind"] == "refused" and refused["can_retry"] is True
    assert refused["reason_label"].startswith("データベースが受け付けませんでした")
    assert refused["reason"].startswith("DataError" if kind == "postgresql" else "IntegrityError")
    assert refused["customer_name"] == "山田 太郎" and refused["reasons"] == [reason_label("anger")]
    assert "**** **** **** 1111" in refused["summary"] and refused["set_aside_at"]
    assert unreadable["kind"] == "unreadable" and unreadable["can_retry"] is False
    assert unreadable["conversation_id"] == "torn" and "torn:1" in unreadable["excerpt"]
    assert CARD not in response.text and "4111111111111111" not in response.text.replace(" ", "")
    assert client.get("/api/undelivered-handoffs?status=nope").status_code == 422


def test_an_agent_retries_a_fixed_packet_and_dismisses_the_rest(server: tuple[TestClient, Any, Path]) -> None:
    client, services, outbox_file = server
    kind = kind_of(str(services.stores.engine.url))
    set_aside_by_the_action_server(services, outbox_file, kind)
    outbox_file.write_text(TORN + "\n", encoding="utf-8")
    Outbox(outbox_file).pending()
    csrf = login(client)
    headers = {"X-CSRF-Token": csrf}
    unreadable, refused = client.get("/api/undelivered-handoffs").json()["items"]

    # Still refused: the record stays open with the newest reason.
    again = client.post(f"/api/undelivered-handoffs/{refused['id']}/retry", headers=headers)
    assert again.status_code == 409 and "受け付けませんでした" in again.json()["error"]
    assert CARD not in again.text
    assert services.stores.queue.open_tickets() == []

    # The cause fixed (here: the packet made storable, as a schema change or a fix would): it becomes a ticket.
    record = services.stores.undelivered.get(refused["id"])
    fixed = {**record.packet, "category": None,
             "transcript": [{**turn, "sender": "customer"} for turn in record.packet["transcript"]]}
    from sqlalchemy import update

    from bot.store.models import UndeliveredHandoff

    with services.stores.engine.begin() as connection:
        connection.execute(update(UndeliveredHandoff).where(UndeliveredHandoff.id == refused["id"]).values(packet=fixed))
    done = client.post(f"/api/undelivered-handoffs/{refused['id']}/retry", headers=headers)
    assert done.status_code == 200, done.text
    (ticket,) = services.stores.queue.open_tickets()
    assert done.json()["ticket_id"] == ticket.id and ticket.conversation_id == "long"
    assert done.json()["item"]["status"] == "retried" and done.json()["item"]["handled_by"] == "sato"
    assert CARD not in json.dumps([e.text for e in services.stores.queue.get(ticket.id).entries], ensure_ascii=False)
    assert client.post(f"/api/undelivered-handoffs/{refused['id']}/retry", headers=headers).status_code == 409

    # An unreadable line has nothing to send: dismissed instead, and no longer listed, not even from .bad.
    assert client.post(f"/api/undelivered-handoffs/{unreadable['id']}/retry", headers=headers).status_code == 409
    gone = client.post(f"/api/undelivered-handoffs/{unreadable['id']}/dismiss", headers=headers)
    assert gone.status_code == 200 and gone.json()["item"]["status"] == "dismissed"
    assert client.post(f"/api/undelivered-handoffs/{unreadable['id']}/dismiss", headers=headers).status_code == 409
    assert client.post("/api/undelivered-handoffs/999999/dismiss", headers=headers).status_code == 404
    listed = client.get("/api/undelivered-handoffs").json()
    assert listed["items"] == [] and listed["open_count"] == 0
    assert len(client.get("/api/undelivered-handoffs?status=all").json()["items"]) == 2
