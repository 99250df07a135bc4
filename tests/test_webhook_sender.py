"""The webhook sender's rounds (#15: a slow or failing endpoint never slows the chat).

Against real local receivers (raw sockets in threads): an answer with a huge body is cut at
the size cap and still counts by its status; an endless trickled body is given up at the
timeout without holding back the other rows of the round; a round's database work is one
claim, one read of its tickets and one write of its outcomes, however many rows it has.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from bot.settings import WebhookSettings
from bot.store.database import make_engine
from bot.store.queue import Queue
from bot.store.webhooks import WebhookDeliveries, WebhookOutbox
from bot.webhooks.config import Endpoint, WebhookConfig
from bot.webhooks.sender import MAX_RESPONSE_BYTES, WebhookSender
from test_webhooks import KEY, packet

TIMEOUT = 1.5


class RawReceiver:
    """Accepts connections on 127.0.0.1 and answers each request with ``answer(conn)`` on its own thread."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        self.answer = answer
        self.sent_bytes = 0
        self.requests = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hooks"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += conn.recv(65536)
            self.requests += 1
            try:
                self.answer(conn)
            except OSError:
                pass  # the sender hung up: expected for huge and endless answers

    def close(self) -> None:
        self.server.close()


def huge(receiver: list[RawReceiver]) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        size = 50 * 1024 * 1024
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b"x" * 65536
        for _ in range(size // len(chunk)):
            conn.sendall(chunk)
            receiver[0].sent_bytes += len(chunk)
    return answer


def endless(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        conn.sendall(b"1\r\nx\r\n")
        time.sleep(0.05)


def fine(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture()
def make_receiver() -> Iterator[Callable[[Callable[[socket.socket], None]], RawReceiver]]:
    made: list[RawReceiver] = []

    def make(answer: Callable[[socket.socket], None]) -> RawReceiver:
        made.append(RawReceiver(answer))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def sender_for(tmp_path: Path, endpoints: dict[str, str]) -> tuple[WebhookSender, Queue, WebhookDeliveries]:
    config = WebhookConfig(tuple(Endpoint(name, url, ("ticket.created",), KEY) for name, url in endpoints.items()))
    engine = make_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    queue = Queue(engine, webhooks=WebhookOutbox(config.routes()))
    deliveries = WebhookDeliveries(engine)
    settings = WebhookSettings(attempts=3, retry_seconds=60, timeout=TIMEOUT)
    return WebhookSender(config, deliveries, queue, settings), queue, deliveries


def one_round(sender: WebhookSender) -> tuple[int, float]:
    async def run() -> tuple[int, float]:
        began = time.monotonic()
        try:
            return await sender.send_due(), time.monotonic() - began
        finally:
            await sender.close()

    return asyncio.run(run())


def test_a_huge_answer_is_cut_at_the_cap_and_counts_by_its_status(tmp_path: Path, make_receiver: Any) -> None:
    holder: list[RawReceiver] = []
    holder.append(make_receiver(huge(holder)))
    sender, queue, deliveries = sender_for(tmp_path, {"crm": holder[0].url})
    ticket, _ = queue.enqueue(packet("h1"))
    sent, took = one_round(sender)
    assert sent == 1 and took < TIMEOUT
    assert [r.status for r in deliveries.for_ticket(ticket.id)] == ["delivered"]
    time.sleep(0.2)
    # Cut soon after the cap (socket buffers hold a few MB), nowhere near the 50 MB offered.
    assert holder[0].sent_bytes < 20 * 1024 * 1024 and MAX_RESPONSE_BYTES < holder[0].sent_bytes


def test_an_endless_answer_times_out_and_the_rest_of_the_round_arrives(tmp_path: Path, make_receiver: Any) -> None:
    slow, quick = make_receiver(endless), make_receiver(fine)
    sender, queue, deliveries = sender_for(tmp_path, {"slow": slow.url, "quick": quick.url})
    ticket, _ = queue.enqueue(packet("e1"))
    sent, took = one_round(sender)
    assert sent == 1 and TIMEOUT <= took < TIMEOUT + 1.0
    rows = {r.endpoint: r for r in deliveries.for_ticket(ticket.id)}
    assert rows["quick"].status == "delivered"
    assert rows["slow"].status == "pending" and rows["slow"].last_error == f"no complete answer within {TIMEOUT:g} s"


def test_a_round_reads_its_tickets_once_and_writes_its_outcomes_once(tmp_path: Path, make_receiver: Any,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    quick = make_receiver(fine)
    sender, queue, deliveries = sender_for(tmp_path, {"crm": quick.url, "gone": quick.url})
    for i in range(20):
        queue.enqueue(packet(f"r{i}"))
    sender.config = WebhookConfig(sender.config.endpoints[:1])  # "gone" left the file meanwhile
    calls: dict[str, list[Any]] = {"tickets": [], "delivered": []}
    for name in calls:
        original = getattr(deliveries, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name].append(args)
            return _original(*args)

        monkeypatch.setattr(deliveries, name, spy)
    sent, _ = one_round(sender)
    assert sent == 20 and quick.requests == 20
    assert len(calls["tickets"]) == 1 and len(calls["delivered"]) == 1 and len(calls["delivered"][0]) == 20
    assert deliveries.count("delivered") == 20 and deliveries.count("pending") == 20
    gone = [r for r in deliveries.for_ticket(1) if r.endpoint == "gone"]
    assert "no longer in the webhooks file" in (gone[0].last_error or "")
