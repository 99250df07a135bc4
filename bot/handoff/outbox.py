"""Local outbox: handoff packets wait here while the queue database is unreachable.

Each packet is one JSON line, written and fsynced before the customer is told a person
will take over, so nothing is lost on a crash or restart. :meth:`Outbox.drain` delivers
waiting packets in order; the queue's idempotency key makes a re-delivery harmless.
:meth:`Outbox.deliver_in_background` keeps retrying until the outbox is empty, so
tickets arrive as soon as the database is back, not only with the next handoff.

The files hold customer messages, so they are private to the bot's user (mode 0600,
whatever the umask) and hold masked packets only: :meth:`Outbox.put` masks again what
:func:`bot.handoff.packet.build_packet` already masked. A line that cannot be read, and a
packet the queue refuses for a reason a retry cannot cure, is moved out of the outbox into
``<outbox>.bad`` (masked, once, with the reason; newest :data:`BAD_MAX_LINES` lines and at
most :data:`BAD_MAX_BYTES` bytes kept; see docs/masking.md). Each drain that reaches the
database also records there what ``.bad`` holds (:mod:`bot.handoff.undelivered`), so agents
see these packets, with the reason, in the console (「配信できなかった引き継ぎ」).

Every read and write holds an exclusive ``flock`` on ``<outbox>.lock`` (and a thread
lock), so action servers sharing the file on one machine never interleave a write with
a drain's rewrite.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO, Callable, Iterator, Optional


from bot.handoff.packet import HandoffPacket, Turn, mask_packet
from bot.handoff.undelivered import line_key, record_set_aside
from bot.store.queue import Queue
from bot.text.masking import mask_sensitive

logger = logging.getLogger(__name__)
RETRY_SECONDS = 1.0
FILE_MODE = 0o600  # owner read/write only: the files hold customer messages
BAD_MAX_LINES = 100  # newest unreadable lines kept in <outbox>.bad
BAD_MAX_BYTES = 256 * 1024  # and at most this many bytes


def _open_private(path: Path, flags: int, mode: str) -> IO[str]:
    """Open ``path`` as text, created with (or brought back to) mode 0600."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a file left by an older version may be 0644
        return os.fdopen(fd, mode, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text`` (mode 0600, fsynced)."""
    tmp = path.with_name(path.name + ".tmp")
    with _open_private(tmp, os.O_WRONLY | os.O_TRUNC, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def is_transient(exc: BaseException) -> bool:
    """True when a database error means "not reachable now" (retry later), not "this packet is wrong"."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                            sa_exc.TimeoutError))


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
        self._recorded: set[str] = set()  # keys of the .bad lines this process recorded in the database

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, and other processes on the same file, one at a time."""
        with self._lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with _open_private(self._path.with_suffix(".lock"), os.O_WRONLY | os.O_APPEND, "a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    def put(self, packet: HandoffPacket) -> None:
        """Store ``packet`` durably, masked, in a file only the bot's user can read."""
        line = packet_to_json(mask_packet(packet))
        with self._locked():
            # A crash mid-write leaves a last line without its newline: start a new line,
            # or this packet would be glued to it and set aside with it.
            torn = self._path.exists() and self._path.stat().st_size > 0 and not self._ends_with_newline()
            with _open_private(self._path, os.O_WRONLY | os.O_APPEND, "a") as handle:
                handle.write(("\n" if torn else "") + line + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with self._path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def pending(self) -> list[HandoffPacket]:
        """Packets not delivered yet, oldest first.

        A line that cannot be read (e.g. torn by a crash mid-write) is set aside in
        ``<outbox>.bad`` and skipped, so one damaged line never blocks later handoffs.
        """
        with self._locked():
            return self._pending()

    def _pending(self) -> list[HandoffPacket]:
        """:meth:`pending`, for a caller that holds the lock (it also guards ``.bad``)."""
        if not self._path.exists():
            return []
        packets = []
        unreadable = []
        for line in self._path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                packets.append(packet_from_json(line))
            except (ValueError, TypeError, KeyError):
                unreadable.append(line)
        if unreadable:
            self._set_aside(unreadable)
            # Out of the outbox once set aside: read again every second while the database
            # is down, they would be set aside again (and .bad rewritten) each time.
            self._rewrite(packets)
        return packets

    def _rewrite(self, packets: list[HandoffPacket]) -> None:
        """Replace the outbox with ``packets`` (caller holds the lock).

        Fsynced before the rename: never an empty outbox after a crash. Masked again: a
        file left by an older version may hold unmasked packets.
        """
        _write_private(self._path, "".join(packet_to_json(mask_packet(p)) + "\n" for p in packets))

    def _set_aside(self, lines: list[str]) -> None:
        """Keep unreadable ``lines`` in ``<outbox>.bad`` for a person to look at.

        Retention: each line is masked and cut to :data:`BAD_MAX_BYTES` / 8 characters; a
        line already there is not added again (the retry thread reads the outbox every
        second); only the newest :data:`BAD_MAX_LINES` lines and :data:`BAD_MAX_BYTES`
        bytes are kept, the oldest are dropped first.
        """
        bad = self._path.with_suffix(".bad")
        kept = self._bad_lines()
        known = set(kept)
        new = [line for line in dict.fromkeys(mask_sensitive(line)[: BAD_MAX_BYTES // 8] for line in lines)
               if line not in known]
        if not new:
            return
        logger.error("outbox: %d unreadable line(s) set aside in %s", len(new), bad)
        kept = (kept + new)[-BAD_MAX_LINES:]
        while kept and len("".join(line + "\n" for line in kept).encode("utf-8")) > BAD_MAX_BYTES:
            kept.pop(0)
        _write_private(bad, "".join(line + "\n" for line in kept))

    def _bad_lines(self) -> list[str]:
        """The lines of ``<outbox>.bad``, oldest first (caller holds the lock)."""
        bad = self._path.with_suffix(".bad")
        return bad.read_text(encoding="utf-8", errors="replace").splitlines() if bad.exists() else []

    def _record_set_aside(self, queue: Queue) -> None:
        """Record in the queue's database the ``.bad`` lines this process has not recorded yet (caller holds the lock).

        A failure leaves them in ``.bad`` (listed from there) and is tried again at the next drain.
        """
        lines = [line for line in self._bad_lines() if line_key(line) not in self._recorded]
        if not lines:
            return
        try:
            record_set_aside(queue, lines)
        except Exception:  # noqa: BLE001 - recording must never stop a delivery
            logger.warning("outbox: %d set-aside packet(s) not recorded in the database yet, kept in %s",
                           len(lines), self._path.with_suffix(".bad"), exc_info=True)
            return
        self._recorded.update(line_key(line) for line in lines)

    def drain(self, queue: Queue) -> int:
        """Deliver waiting packets in order; stop when the database is unreachable (the rest stay).

        A packet the database refuses for a reason of its own (:func:`is_transient` false)
        is set aside in ``<outbox>.bad`` with the reason, so it never blocks later handoffs.
        When the database was reached, what ``.bad`` holds is recorded there too.

        Returns:
            How many left the outbox (delivered or set aside).
        """
        with self._locked():
            waiting = self._pending()
            delivered = 0
            poisoned: list[str] = []
            for packet in waiting:
                try:
                    queue.enqueue(packet)
                except Exception as exc:  # noqa: BLE001 - whatever it is, it must not block the rest
                    if is_transient(exc):
                        break  # the database is away: keep this and the rest, in order
                    # The packet itself is refused (a value too long for a column, a missing
                    # value, a shape the queue cannot store): retrying cannot help. Set it
                    # aside with the reason and go on with the next.
                    logger.error("outbox: packet for %s refused, set aside: %s",
                                 packet.conversation_id, type(exc).__name__)
                    poisoned.append(json.dumps({"set_aside": f"{type(exc).__name__}: {str(exc)[:300]}",
                                                "at": dt.datetime.now(dt.timezone.utc).isoformat(),
                                                "packet": json.loads(packet_to_json(packet))},
                                               ensure_ascii=False))
                delivered += 1
            if poisoned:
                self._set_aside(poisoned)
            if delivered:
                self._rewrite(waiting[delivered:])
            if delivered == len(waiting):  # the database answered every packet: it is reachable
                self._record_set_aside(queue)
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
                if not self._pending():
                    self._retrier = None
                    return
            time.sleep(retry_seconds)
            queue = connect()
            if queue is not None:
                delivered = self.drain(queue)
                if delivered:
                    logger.info("outbox: %d handoff packet(s) delivered", delivered)
