"""Outbound webhooks (#15 item 3) against a real local HTTP receiver (http.server in a thread).

The webhooks file's checks; events written with the ticket change (SQLite and
PostgreSQL), claimed once by two senders at once, in order per ticket; a bot server
whose agent claims and resolves while the receiver fails its first answers (every
event arrives, in order, repeats with the same id, each signature checked by the
verifier printed in docs/webhooks.md); a receiver that never answers does not slow the
agent's resolve; dead letters listed for admins only and replayed; a receiver that answers
500 forever: dead-lettered, listed through the admin API, replayed, and delivered by the
replay once it answers 2xx.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from starlette.testclient import TestClient

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.server.app import Services
from bot.settings import WebhookSettings
from bot.store.csat import Surveys
from bot.store.database import make_engine
from bot.store.queue import Queue, QueueError
from bot.store.webhooks import WebhookDeliveries, WebhookOutbox
from bot.webhooks.config import EVENTS, WebhookConfig, WebhookConfigError, load_webhook_config
from conftest import PROJECT_ROOT, temporary_database
from test_desk_api import admin_and_agent

KEY = "k" * 32
ALL = ["ticket.created", "ticket.claimed", "ticket.resolved", "csat.received"]
FAST = WebhookSettings(attempts=3, retry_seconds=0.05, timeout=0.5)


def documented_block(marker: str, language: str) -> str:
    """The fenced ``language`` block right after the ``<!-- marker …-->`` comment of docs/webhooks.md."""
    text = (PROJECT_ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(marker)}[^>]*-->\s*```{language}\n(.*?)```", text, re.S)
    assert found, f"docs/webhooks.md lost its {marker} block"
    return found.group(1)


def documented_verifier() -> Callable[..., bool]:
    """``verify`` of the Python block in docs/webhooks.md, as a receiver would copy it."""
    code = documented_block("verifier:python", "python")
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]  # type: ignore[no-any-return]


class Receiver:
    """A local HTTP receiver: records every request; answers 204, or 500 / late as the test sets.

    ``port``: listen there (a receiver that comes up where the sender has been refused); 0: any free one.
    ``fail_first``: answer 500 to this many requests first (recorded all the same).
    """

    def __init__(self, port: int = 0, fail_first: int = 0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        self.always_fail = False
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    fail = receiver.always_fail or len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def write_config(folder: Path, text: str) -> Path:
    path = folder / "webhooks.yml"
    path.write_text(text, encoding="utf-8")
    return path


def config_for(url: str, events: list[str] = ALL) -> WebhookConfig:
    from bot.webhooks.config import Endpoint

    return WebhookConfig((Endpoint("crm", url, tuple(events), KEY),))


def packet(key: str) -> HandoffPacket:
    return HandoffPacket(f"{key}:1", key, ["human_request"],
                         [Turn("customer", "カード 4111 1111 1111 1111 の件で担当者と話したい")],
                         customer={"name": "山田 太郎"})


def test_the_webhooks_file_is_checked_with_file_entry_and_fix(tmp_path: Path) -> None:
    secret = tmp_path / "crm.secret"
    secret.write_text(KEY + "\n", encoding="utf-8")
    good = write_config(tmp_path, f"endpoints:\n  - name: crm\n    url: https://crm.example.jp/h\n"
                                  f"    events: [ticket.created, ticket.escalated]\n    secret_file: {secret}\n")
    config = load_webhook_config(good)
    assert config.endpoints[0].secret == KEY and KEY not in repr(config.endpoints[0])
    assert config.routes()["ticket.created"] == ("crm",) and config.routes()["ticket.resolved"] == ()
    assert set(EVENTS) >= {"ticket.transferred", "ticket.escalated"}
    bad = [
        ("endpoints: []\n", "endpoints がありません"),
        ("endpoints: [\n", "YAML として読めません"),
        (f"endpoints:\n  - {{name: crm, url: 'ftp://x.jp/h', events: [ticket.created], secret: {KEY}}}\n",
         "http(s) の URL ではありません"),
        (f"endpoints:\n  - {{name: crm, url: 'https://x.jp', events: [ticket.opened], secret: {KEY}}}\n",
         "'ticket.opened' は知らないイベント"),
        ("endpoints:\n  - {name: crm, url: 'https://x.jp', events: [ticket.created], secret: short}\n",
         "短すぎます"),
        ("endpoints:\n  - {name: crm, url: 'https://x.jp', events: [ticket.created]}\n",
         "secret と secret_file のどちらか一つ"),
        ("endpoints:\n  - {name: crm, url: 'https://x.jp', events: [ticket.created], secret_file: /nope}\n",
         "secret_file /nope が読めません"),
        (f"endpoints:\n  - {{name: crm, url: 'https://x.jp', events: [ticket.created], secret: {KEY}}}\n"
         f"  - {{name: crm, url: 'https://y.jp', events: [ticket.created], secret: {KEY}}}\n", "name が重複"),
        (f"endpoints:\n  - {{name: 'c r m', url: 'https://x.jp', events: [], secret: {KEY}, header: 1}}\n",
         "header は使えないキー"),
    ]
    for text, expected in bad:
        path = write_config(tmp_path, text)
        with pytest.raises(WebhookConfigError) as caught:
            load_webhook_config(path)
        message = str(caught.value)
        assert expected in message and str(path) in message and "対処" in message, (text, message)
    with pytest.raises(WebhookConfigError, match="endpoints\\[0\\]: crm"):
        load_webhook_config(write_config(tmp_path, "endpoints:\n  - {name: crm, url: 'mailto:a@b.jp', "
                                                   f"events: [ticket.created], secret: {KEY}}}\n"))
    with pytest.raises(WebhookConfigError, match="BOT_WEBHOOKS_FILE"):
        load_webhook_config(tmp_path / "missing.yml")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


def test_events_are_written_with_the_change_claimed_once_and_in_order(database: str) -> None:
    engine = make_engine(database)
    try:
        outbox = WebhookOutbox(config_for("http://127.0.0.1:9/").routes())
        queue = Queue(engine, webhooks=outbox)
        deliveries = WebhookDeliveries(engine)
        first, _ = queue.enqueue(packet("c1"))
        assert queue.enqueue(packet("c1"))[1] is False  # a retried handoff adds no second event
        queue.claim(first.id, "sato")
        queue.resolve(first.id, "resolved", "sato")
        Surveys(engine, outbox).record("c1", first.id, 4, "ありがとう")
        second, _ = queue.enqueue(packet("c2"))
        rows = deliveries.for_ticket(first.id)
        assert [r.event_type for r in rows] == ALL and len({r.event_id for r in rows}) == 4
        assert rows[1].data["status"] == "claimed" and rows[1].data["claimed_by"] == "sato"
        assert rows[3].data["csat"]["rating"] == 4

        # Two senders at once: each row is claimed by one; only the first event of each ticket.
        results: list[list[int]] = []
        threads = [threading.Thread(target=lambda: results.append([r.id for r in deliveries.claim_due()]))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        claimed = sorted(results[0] + results[1])
        assert claimed == sorted([rows[0].id, deliveries.for_ticket(second.id)[0].id])
        assert deliveries.claim_due() == []  # the ticket's later events wait for the first
        deliveries.delivered(rows[0].id)
        assert [r.id for r in deliveries.claim_due()] == [rows[1].id]
        # A failed try keeps the next event waiting; the last one dead-letters it, the next goes.
        assert deliveries.failed_try(rows[1].id, "HTTP 500", 2, dt_zero()) is False
        assert [r.id for r in deliveries.claim_due()] == [rows[1].id]
        assert deliveries.failed_try(rows[1].id, "HTTP 500", 2, dt_zero()) is True
        assert [r.id for r in deliveries.claim_due()] == [rows[2].id]
        assert [r.id for r in deliveries.dead_letters()] == [rows[1].id]
        assert deliveries.retry(rows[1].id, "sato").status == "pending"
        with pytest.raises(Exception, match="配信できなかったものではありません"):
            deliveries.retry(rows[1].id, "sato")
        # Without receivers nothing is written.
        plain = Queue(engine, webhooks=WebhookOutbox())
        third, _ = plain.enqueue(packet("c3"))
        assert deliveries.for_ticket(third.id) == []
    finally:
        engine.dispose()


def dt_zero() -> Any:
    import datetime as dt

    return dt.timedelta(0)


@pytest.fixture()
def webhook_server(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[TestClient, TestClient, Services]]:
    """A bot server posting every event to ``receiver``; the admin's (sato) and an agent's clients."""
    with admin_and_agent(tmp_path / "bot.db", assign_interval=3600, webhooks=config_for(receiver.url),
                         webhook_settings=FAST, webhook_poll_seconds=0.05) as clients:
        yield clients


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_every_event_arrives_signed_in_order_with_stable_ids(
        webhook_server: tuple[TestClient, TestClient, Services], receiver: Receiver) -> None:
    admin, _, services = webhook_server
    receiver.fail_first = 3  # the first answers are 500: retried, the repeats carry the same id
    tickets = [services.stores.queue.enqueue(packet(f"c{i}"))[0].id for i in range(3)]
    for ticket_id in tickets:
        assert admin.post(f"/api/tickets/{ticket_id}/claim").status_code == 200
        assert admin.post(f"/api/tickets/{ticket_id}/resolve").status_code == 200
    expected = {t: ["ticket.created", "ticket.claimed", "ticket.resolved"] for t in tickets}

    def delivered() -> dict[int, list[str]]:
        order: dict[int, list[str]] = {}
        seen: set[str] = set()
        for event in receiver.events()[receiver.fail_first:]:  # those answered 2xx
            if event["id"] not in seen:
                seen.add(event["id"])
                order.setdefault(event["ticket"]["id"], []).append(event["type"])
        return order

    wait_until(lambda: delivered() == expected)
    verify = documented_verifier()
    events = receiver.events()
    ids_by_request = [e["id"] for e in events]
    assert len(ids_by_request) > len(set(ids_by_request))  # repeats happened, with the same id
    for (headers, body), event in zip(receiver.requests, events):
        assert verify(KEY, body, headers["x-webhook-timestamp"], headers["x-signature"])
        assert headers["x-webhook-id"] == event["id"] and headers["x-webhook-event"] == event["type"]
        assert not verify("wrong-key-" + KEY, body, headers["x-webhook-timestamp"], headers["x-signature"])
        assert not verify(KEY, body + b" ", headers["x-webhook-timestamp"], headers["x-signature"])
        replayed_later = int(headers["x-webhook-timestamp"]) + 301
        assert not verify(KEY, body, headers["x-webhook-timestamp"], headers["x-signature"], now=replayed_later)
        assert "4111 1111 1111 1111" not in body.decode("utf-8") and "1111" in body.decode("utf-8")
    # Per ticket, no request ever went back to an earlier event (a later one waited for it).
    for ticket_id in tickets:
        steps = [expected[ticket_id].index(e["type"]) for e in events if e["ticket"]["id"] == ticket_id]
        assert steps == sorted(steps), steps
    resolved = next(e for e in events if e["type"] == "ticket.resolved")
    assert resolved["ticket"]["resolved_by"] == "sato" and resolved["transcript"][0]["sender"] == "customer"
    # The same event's bodies are identical however often it was sent.
    bodies: dict[str, set[bytes]] = {}
    for _, body in receiver.requests:
        bodies.setdefault(json.loads(body)["id"], set()).add(body)
    assert all(len(b) == 1 for b in bodies.values())


def test_a_receiver_that_hangs_never_slows_the_resolve_and_dead_letters_are_replayed(
        webhook_server: tuple[TestClient, TestClient, Services], receiver: Receiver) -> None:
    admin, agent, services = webhook_server
    receiver.delay = 2.0  # far beyond the 0.5 s timeout
    ticket_id = services.stores.queue.enqueue(packet("slow"))[0].id
    assert admin.post(f"/api/tickets/{ticket_id}/claim").status_code == 200
    started = time.monotonic()
    assert admin.post(f"/api/tickets/{ticket_id}/resolve").status_code == 200
    assert time.monotonic() - started < 0.5
    deliveries = services.webhook_sender.deliveries  # type: ignore[union-attr]
    wait_until(lambda: deliveries.count("dead") >= 1)
    assert agent.get("/api/admin/webhooks/dead-letters").status_code == 403
    listing = admin.get("/api/admin/webhooks/dead-letters").json()
    dead = listing["dead_letters"][0]
    assert dead["endpoint"] == "crm" and dead["attempts"] == FAST.attempts and "0.5 s" in dead["last_error"]
    assert agent.post(f"/api/admin/webhooks/dead-letters/{dead['id']}/retry").status_code == 403
    receiver.delay = 0.0  # back: the ticket's later events no longer wait for the dead one
    wait_until(lambda: deliveries.count("delivered") == 2)
    assert listing["count"] == 1 and dead["type"] == "ticket.created"
    assert admin.post("/api/admin/webhooks/dead-letters/999999/retry").status_code == 404
    assert admin.post(f"/api/admin/webhooks/dead-letters/{dead['id']}/retry").status_code == 200
    assert admin.post(f"/api/admin/webhooks/dead-letters/{dead['id']}/retry").status_code == 409
    wait_until(lambda: deliveries.count("delivered") == 3)
    replayed = json.loads(receiver.requests[-1][1])
    assert (replayed["id"], replayed["type"]) == (dead["event_id"], "ticket.created")
    assert admin.get("/api/admin/webhooks/dead-letters").json()["count"] == 0


def test_a_receiver_answering_500_forever_is_dead_lettered_listed_and_replayed_by_an_admin(
        webhook_server: tuple[TestClient, TestClient, Services], receiver: Receiver) -> None:
    admin, _, services = webhook_server
    receiver.always_fail = True
    ticket_id = services.stores.queue.enqueue(packet("c9"))[0].id
    deliveries = services.webhook_sender.deliveries  # type: ignore[union-attr]
    wait_until(lambda: deliveries.count("dead") == 1)
    row = deliveries.for_ticket(ticket_id)[0]
    assert (row.status, row.attempts, row.last_error) == ("dead", FAST.attempts, "HTTP 500")
    assert len(receiver.requests) == FAST.attempts and {e["id"] for e in receiver.events()} == {row.event_id}

    def listed() -> list[dict[str, Any]]:
        answer = admin.get("/api/admin/webhooks/dead-letters")
        assert answer.status_code == 200, answer.text
        return answer.json()["dead_letters"]  # type: ignore[no-any-return]

    dead = listed()
    assert [(d["id"], d["event_id"], d["type"], d["endpoint"], d["attempts"], d["last_error"]) for d in dead] == \
        [(row.id, row.event_id, "ticket.created", "crm", FAST.attempts, "HTTP 500")]
    # Replayed while the receiver still fails: tried again in full, dead again, nothing lost.
    assert admin.post(f"/api/admin/webhooks/dead-letters/{row.id}/retry").status_code == 200
    wait_until(lambda: len(receiver.requests) == 2 * FAST.attempts and deliveries.count("dead") == 1)
    assert [d["id"] for d in listed()] == [row.id]
    # The receiver answers 2xx again: the admin's replay arrives, with the same id and body.
    receiver.always_fail = False
    assert admin.post(f"/api/admin/webhooks/dead-letters/{row.id}/retry").status_code == 200
    wait_until(lambda: deliveries.count("delivered") == 1)
    assert listed() == [] and deliveries.get(row.id).retried_by == "sato"
    assert len(receiver.requests) == 2 * FAST.attempts + 1
    assert {e["id"] for e in receiver.events()} == {row.event_id}
    assert len({body for _, body in receiver.requests}) == 1


def test_a_take_over_tells_receivers_the_new_owner(tmp_path: Path) -> None:
    """A take-over changes who owns the chat: ``ticket.claimed`` with the new agent, in the same
    transaction as the take-over (a refused one sends nothing)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    queue = Queue(engine, webhooks=WebhookOutbox(config_for("http://127.0.0.1:9/hooks", ["ticket.claimed"]).routes()))
    ticket, _ = queue.enqueue(packet("c-takeover"))
    queue.claim(ticket.id, "sato")
    queue.take_over(ticket.id, "suzuki", "鈴木が引き継ぎました", "鈴木")
    with pytest.raises(QueueError) as refused:  # already suzuki's: refused, nothing sent
        queue.take_over(ticket.id, "suzuki", "鈴木が引き継ぎました", "鈴木")
    assert str(refused.value) == wording.STORE_AGENT_TEXT["already_yours"].format(ticket_id=ticket.id)
    rows = WebhookDeliveries(engine).for_ticket(ticket.id)
    assert [(r.event_type, r.data["claimed_by"]) for r in rows] == [("ticket.claimed", "sato"),
                                                                     ("ticket.claimed", "suzuki")]
