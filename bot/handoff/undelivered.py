"""Handoffs the outbox set aside: read from ``<outbox>.bad``, recorded in the database, sent again.

The outbox (:mod:`bot.handoff.outbox`) writes one line per set-aside packet into
``<outbox>.bad``: ``{"set_aside": reason, "at": time, "packet": {...}}`` for a packet the
database refused, or the (masked) line itself when a line of the outbox could not be read.
:func:`set_aside_record` turns such a line into a record of
:class:`bot.store.undelivered.UndeliveredHandoffs`; the action server records them at each
drain that reaches the database, and the bot server records what the file still holds
when an agent lists them, so they are listed from the file while the database was away.
:func:`retry` sends a refused packet to the queue again (an agent's choice in the console).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from bot.handoff.packet import HandoffPacket, Turn, mask_packet
from bot.store.queue import Queue
from bot.store.undelivered import UndeliveredHandoffs

KIND_REFUSED = "refused"
KIND_UNREADABLE = "unreadable"
# What agents read (the technical reason is shown under it as 詳細).
KIND_LABELS = {
    KIND_REFUSED: "データベースが受け付けませんでした。原因を直してから再送するか、不要なら破棄してください。",
    KIND_UNREADABLE: "送信待ちファイルの行が読み取れませんでした（書き込みの途中で停止した可能性があります）。"
                     "内容を確認して、必要ならお客さまにご連絡ください。",
}
UNREADABLE_REASON = "unreadable line in the outbox file"
_FIELD = r'"{name}"\s*:\s*"((?:[^"\\]|\\.){{0,200}})"'


def line_key(line: str) -> str:
    """The record key of a set-aside line (the same line is recorded once)."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _time(value: Any) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _summary(packet: Mapping[str, Any]) -> str:
    """The packet's summary, or what the customer wrote when it has none."""
    summary = packet.get("summary")
    if isinstance(summary, str) and summary.strip():
        return summary
    turns = packet.get("transcript") if isinstance(packet.get("transcript"), list) else []
    said = [str(t.get("text")) for t in turns if isinstance(t, Mapping) and t.get("sender") == "customer"
            and t.get("text")]
    return "お客さま: " + " / ".join(said[-2:]) if said else ""


def _field(line: str, name: str) -> str | None:
    """A string field of a torn JSON line, when it is still there."""
    match = re.search(_FIELD.format(name=re.escape(name)), line)
    return match.group(1) if match else None


def set_aside_record(line: str) -> dict[str, Any]:
    """The record (see :meth:`UndeliveredHandoffs.record`) of one line of ``<outbox>.bad``."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("set_aside"), str) and isinstance(data.get("packet"), dict):
        packet = data["packet"]
        text = lambda name: packet.get(name) if isinstance(packet.get(name), str) else None  # noqa: E731
        return {"key": line_key(line), "kind": KIND_REFUSED, "reason": data["set_aside"],
                "idempotency_key": text("idempotency_key"), "conversation_id": text("conversation_id"),
                "summary": _summary(packet), "packet": packet, "set_aside_at": _time(data.get("at"))}
    return {"key": line_key(line), "kind": KIND_UNREADABLE, "reason": UNREADABLE_REASON,
            "idempotency_key": _field(line, "idempotency_key"), "conversation_id": _field(line, "conversation_id"),
            "summary": "", "excerpt": line}


def set_aside_lines(outbox_file: Path) -> list[str]:
    """The lines of ``<outbox>.bad`` of the outbox at ``outbox_file`` (none when it has no such file).

    Read without the outbox's lock: the outbox replaces ``.bad`` by a rename, never in place.
    """
    bad = outbox_file.with_suffix(".bad")
    try:
        return bad.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def record_set_aside(queue: Queue, lines: Iterable[str]) -> int:
    """Record ``lines`` of ``<outbox>.bad`` in the queue's database (idempotent).

    Returns:
        How many were new there.
    """
    return UndeliveredHandoffs(queue.engine).record(set_aside_record(line) for line in lines)


def packet_from_record(packet: Mapping[str, Any]) -> HandoffPacket:
    """The masked :class:`HandoffPacket` of a refused record's ``packet`` (``ValueError`` when it has no such shape)."""
    try:
        data = dict(packet)
        data["transcript"] = [Turn(**turn) for turn in data.get("transcript") or []]
        return mask_packet(HandoffPacket(**data))
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"not a handoff packet: {exc}") from exc


def retry(queue: Queue, packet: Mapping[str, Any]) -> tuple[Any, bool]:
    """Send a refused packet to the queue again.

    Returns:
        The ticket and whether it is new (the idempotency key finds an existing one).

    Raises:
        ValueError: The record holds no usable packet.
        sqlalchemy.exc.SQLAlchemyError: Refused again, or the database is away.
    """
    return queue.enqueue(packet_from_record(packet))
