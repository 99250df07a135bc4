"""Webhook retries (#15 item 3): the wait doubles per failed try, and a receiver that is down loses nothing.

Against real local receivers (tests/test_webhooks.py's http.server in a thread): the sender's
rounds run on a clock the test moves, so each scheduled next try is read exactly (10 s, 20 s,
40 s … up to an hour, then the dead letter); a bot server whose receiver refuses connections
(nothing listens on its port) while agents claim, transfer, escalate and resolve, then comes
up: every event arrives, in order per ticket, none lost, and the repeats carry the same id.
The sender's settings are short so the outage takes about a second, not 30.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

from starlette.testclient import TestClient

from bot.launcher import free_port
from bot.settings import WebhookSettings
from bot.store.database import make_engine
from bot.store.models import as_utc, utcnow
from bot.store.queue import Queue
from bot.store.webhooks import MAX_WAIT, WebhookDeliveries, WebhookOutbox
from bot.webhooks.config import EVENTS
from bot.webhooks.sender import WebhookSender
from test_desk_api import admin_and_agent
from test_webhooks import KEY, Receiver, config_for, documented_verifier, packet, receiver, wait_until  # noqa: F401


def test_each_failed_try_doubles_the_wait_up_to_an_hour_then_dead_letters(tmp_path: Path, receiver: Receiver) -> None:
    receiver.always_fail = True
    settings = WebhookSettings(attempts=12, retry_seconds=WebhookSettings().retry_seconds, timeout=2)
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    config = config_for(receiver.url, ["ticket.created"])
    queue = Queue(engine, webhooks=WebhookOutbox(config.routes()))
    ticket, _ = queue.enqueue(packet("backoff"))
    now = [utcnow()]
    deliveries = WebhookDeliveries(engine, clock=lambda: now[0])
    sender = WebhookSender(config, deliveries, queue, settings)
    second = dt.timedelta(seconds=1)
    waits: list[float] = []

    async def tries() -> None:
        try:
            for attempt in range(1, settings.attempts + 1):
                assert await sender.send_due() == 0
                row = deliveries.for_ticket(ticket.id)[0]
                assert (row.attempts, len(receiver.requests)) == (attempt, attempt)
                if row.status == "dead":
                    return
                due = as_utc(row.next_attempt_at)
                waits.append((due - now[0]).total_seconds())
                now[0] = due - second  # a second early: nothing is sent
                assert await sender.send_due() == 0 and len(receiver.requests) == attempt
                now[0] = due
        finally:
            await sender.close()

    try:
        asyncio.run(tries())
    finally:
        engine.dispose()
    first = settings.retry_seconds
    assert waits == [first, 2 * first, 4 * first, 8 * first, 16 * first, 32 * first, 64 * first, 128 * first,
                     256 * first, MAX_WAIT.total_seconds(), MAX_WAIT.total_seconds()]
    assert waits[:3] == [10, 20, 40]  # as docs/webhooks.md says: 10 秒、20 秒、40 秒…（最大 1 時間）
    row = deliveries.for_ticket(ticket.id)[0]
    assert (row.status, row.attempts, row.last_error) == ("dead", settings.attempts, "HTTP 500")
    assert {json.loads(body)["id"] for _, body in receiver.requests} == {row.event_id}


def test_a_receiver_refusing_connections_then_coming_up_gets_every_event_in_order_none_lost(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here until the receiver comes up
    settings = WebhookSettings(attempts=50, retry_seconds=0.02, timeout=0.5)
    config = config_for(f"http://127.0.0.1:{port}/hooks", list(EVENTS))
    steps = ["ticket.created", "ticket.claimed", "ticket.transferred", "ticket.escalated", "ticket.resolved"]
    receiver: Receiver | None = None
    with admin_and_agent(tmp_path / "bot.db", assign_interval=3600, webhooks=config, webhook_settings=settings,
                         webhook_poll_seconds=0.05) as (admin, agent, services):
        try:
            assert agent.post("/api/desk/status", json={"status": "available"}).status_code == 200
            tickets = [services.stores.queue.enqueue(packet(f"down{i}"))[0].id for i in range(4)]
            for ticket_id in tickets:
                act(admin, ticket_id, "claim", None)
                act(admin, ticket_id, "transfer", {"to_agent": "suzuki", "note": "鈴木さんへ"})
                act(agent, ticket_id, "escalate", {})
                act(agent, ticket_id, "resolve", None)
            deliveries = services.webhook_sender.deliveries  # type: ignore[union-attr]
            # Down for a while: each ticket's first event is tried again and again, the later ones wait.
            wait_until(lambda: all(deliveries.for_ticket(t)[0].attempts >= 6 for t in tickets))
            queued = {t: deliveries.for_ticket(t) for t in tickets}
            assert deliveries.count("delivered") == 0
            for rows in queued.values():
                assert [r.event_type for r in rows] == steps and [r.attempts for r in rows[1:]] == [0] * 4
                assert "Cannot connect" in (rows[0].last_error or ""), rows[0].last_error
            receiver = Receiver(port, fail_first=2)  # up again; its first answers fail too: sent again, same id
            wait_until(lambda: deliveries.count("delivered") == len(tickets) * len(steps))
        finally:
            if receiver is not None:
                receiver.close()
    assert receiver is not None
    events = receiver.events()
    assert len(events) >= len(tickets) * len(steps) + receiver.fail_first  # (a slow answer may add a repeat)
    verify = documented_verifier()
    assert all(verify(KEY, body, h["x-webhook-timestamp"], h["x-signature"]) for h, body in receiver.requests)
    for ticket_id, rows in queued.items():
        mine = [e for e in events if e["ticket"]["id"] == ticket_id]
        first: dict[str, str] = {}
        for event in mine:
            first.setdefault(event["id"], event["type"])
        # All of them, in order, with the ids they were queued with while the receiver was down.
        assert list(first) == [r.event_id for r in rows] and list(first.values()) == steps
        order = [list(first).index(e["id"]) for e in mine]
        assert order == sorted(order)  # never back to an earlier event
    repeated = [i for i in {e["id"] for e in events} if sum(e["id"] == i for e in events) > 1]
    assert repeated, "the failed first answers were not repeated"
    for event_id in repeated:
        assert len({body for h, body in receiver.requests if h["x-webhook-id"] == event_id}) == 1  # the same body


def act(client: TestClient, ticket_id: int, action: str, body: dict[str, str] | None) -> None:
    response = client.post(f"/api/tickets/{ticket_id}/{action}", json=body) if body is not None \
        else client.post(f"/api/tickets/{ticket_id}/{action}")
    assert response.status_code == 200, (action, response.text)
