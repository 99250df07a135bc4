"""Local outbox: handoff packets wait here while the queue database is unreachable.

Each packet is one JSON line, written and fsynced before the customer is told a person
will take over, so nothing is lost on a crash or restart. :meth:`Outbox.drain` delivers
waiting packets in order; the queue's idempotency key makes a re-delivery harmless.
:meth:`Outbox.deliver_in_background` keeps retrying until the outbox is empty, so
tickets arrive as soon as the database is back, not only with the next handoff.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator, Optional

from sqlalchemy.exc import SQLAlchemyError

from bot.store.queue import HandoffPacket, Queue, Turn

logger = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


def packet_to_json(packet: HandoffPacket) -> str:
    """One JSON line."""
    return json.dumps(asdict(packet), ensure_ascii=False)


def packet_from_json(line: str) -> HandoffPacket:
    """Inverse of :func:`packet_to_json`."""
    data = json.loads(line)
    data["transcript"] = [Turn(**turn) for turn in data["transcript"]]
    return HandoffPacket(**data)


class Outbox:
    """An append-only JSON-lines file of undelivered packets."""

    def __init__(self, path: Path) -> None:
        """Keep packets in ``path`` (its folder is created when needed)."""
        self._path = path
        self._lock = threading.Lock()
        self._retrier: threading.Thread | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, and other processes on the same file, one at a time."""
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._path.with_suffix(".lock"), "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    def put(self, packet: HandoffPacket) -> None:
        """Store ``packet`` durably."""
        with self._locked():
            with self._path.open("a", encoding="utf-8") as handle:
                handle.write(packet_to_json(packet) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def pending(self) -> list[HandoffPacket]:
        """Packets not delivered yet, oldest first.

        A line that cannot be read (e.g. torn by a crash mid-write) is set aside in
        ``<outbox>.bad`` and skipped, so one damaged line never blocks later handoffs.
        """
        if not self._path.exists():
            return []
        packets = []
        for line in self._path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                packets.append(packet_from_json(line))
            except (ValueError, TypeError, KeyError):
                logger.error("outbox: unreadable line kept in %s.bad", self._path)
                with self._path.with_suffix(".bad").open("a", encoding="utf-8") as bad:
                    bad.write(line + "\n")
        return packets

    def drain(self, queue: Queue) -> int:
        """Deliver waiting packets in order; stop at the first failure (the rest stay).

        Returns:
            How many were delivered.
        """
        with self._locked():
            waiting = self.pending()
            delivered = 0
            for packet in waiting:
                try:
                    queue.enqueue(packet)
                except SQLAlchemyError:
                    break
                delivered += 1
            if delivered:
                rest = waiting[delivered:]
                tmp = self._path.with_suffix(".tmp")
                with tmp.open("w", encoding="utf-8") as handle:
                    handle.write("".join(packet_to_json(p) + "\n" for p in rest))
                    handle.flush()
                    os.fsync(handle.fileno())  # never an empty outbox after a crash
                tmp.replace(self._path)
            return delivered

    def deliver_in_background(self, connect: Callable[[], Optional[Queue]],
                              retry_seconds: float = RETRY_SECONDS) -> None:
        """Start (once) a daemon thread that drains the outbox until it is empty.

        Args:
            connect: Returns the queue, or ``None`` while its database is unreachable.
            retry_seconds: Pause between attempts.
        """
        with self._lock:
            if self._retrier is not None and self._retrier.is_alive():
                return
            self._retrier = threading.Thread(target=self._retry_until_empty, args=(connect, retry_seconds),
                                             name="outbox-retry", daemon=True)
            self._retrier.start()

    def _retry_until_empty(self, connect: Callable[[], Optional[Queue]], retry_seconds: float) -> None:
        while True:
            with self._locked():
                # Decided under the lock: a put() racing with this exit starts a new thread.
                if not self.pending():
                    self._retrier = None
                    return
            time.sleep(retry_seconds)
            queue = connect()
            if queue is not None:
                delivered = self.drain(queue)
                if delivered:
                    logger.info("outbox: %d handoff packet(s) delivered", delivered)
