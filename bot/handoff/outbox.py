"""Local outbox: handoff packets wait here while the queue database is unreachable.

Each packet is one JSON line, written and fsynced before the customer is told a person
will take over, so nothing is lost on a crash or restart. :meth:`Outbox.drain` delivers
waiting packets in order; the queue's idempotency key makes a re-delivery harmless.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from bot.store.queue import HandoffPacket, Queue, Turn


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

    def put(self, packet: HandoffPacket) -> None:
        """Store ``packet`` durably."""
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._path.open("a", encoding="utf-8") as handle:
                handle.write(packet_to_json(packet) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def pending(self) -> list[HandoffPacket]:
        """Packets not delivered yet, oldest first."""
        if not self._path.exists():
            return []
        lines = self._path.read_text(encoding="utf-8").splitlines()
        return [packet_from_json(line) for line in lines if line.strip()]

    def drain(self, queue: Queue) -> int:
        """Deliver waiting packets in order; stop at the first failure (the rest stay).

        Returns:
            How many were delivered.
        """
        with self._lock:
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
                tmp.write_text("".join(packet_to_json(p) + "\n" for p in rest), encoding="utf-8")
                tmp.replace(self._path)
            return delivered
