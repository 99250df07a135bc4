"""Undelivered handoffs: packets the action server's outbox set aside, kept for the agents to see.

The outbox (bot/handoff/outbox.py) sets aside a packet the database refuses for a reason a
retry cannot cure, and a line of its file it cannot read, in ``<outbox>.bad``. They are
recorded here, with their reason, as soon as the database is reachable, so the console can
list them and an agent can send a refused packet again or dismiss it.

Every text arrives masked (the packet was masked when it was built, the ``.bad`` file is
masked) and is masked once more here before it is written. Recording is idempotent by the
set-aside line's ``key``; retried and dismissed records stay (with who and when), so a line
still in ``.bad`` is never listed again once dismissed.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bot.store.audit import record_audit
from bot.store.models import UndeliveredHandoff, utcnow
from bot.store.queue import QueueError
from bot.text.masking import mask_sensitive

STATUSES = ("open", "retried", "dismissed")
REASON_CHARS = 1000
EXCERPT_CHARS = 2000
NOT_FOUND = "配信できなかった引き継ぎ {id} はありません。画面を更新してください。"
ALREADY_HANDLED = "配信できなかった引き継ぎ {id} は、すでに処理済みです（{status}）。画面を更新してください。"
STATUS_JA = {"open": "未処理", "retried": "再送済み", "dismissed": "破棄済み"}


def _masked(value: Any) -> Any:
    """``value`` with every string in it masked (lists and dicts walked)."""
    if isinstance(value, str):
        return mask_sensitive(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


class UndeliveredHandoffs:
    """The undelivered handoffs of one database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`bot.store.database.make_engine`)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    def record(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Keep each set-aside record whose ``key`` is not kept yet.

        Args:
            records: Mappings with ``key``, ``kind`` (``refused`` / ``unreadable``),
                ``reason`` and optionally ``idempotency_key``, ``conversation_id``,
                ``summary``, ``packet``, ``excerpt``, ``set_aside_at`` (default: now).

        Returns:
            How many were new.
        """
        wanted = {str(r["key"]): r for r in records}
        if not wanted:
            return 0
        with self._sessions() as session:
            known = set(session.execute(select(UndeliveredHandoff.key)
                                        .where(UndeliveredHandoff.key.in_(list(wanted)))).scalars())
        added = 0
        for key, record in wanted.items():
            if key in known:
                continue
            row = UndeliveredHandoff(
                key=key, kind=str(record["kind"]), reason=mask_sensitive(str(record["reason"]))[:REASON_CHARS],
                idempotency_key=_short(record.get("idempotency_key"), 200),
                conversation_id=_short(record.get("conversation_id"), 200),
                summary=mask_sensitive(str(record.get("summary") or "")),
                packet=_masked(record.get("packet")) if record.get("packet") is not None else None,
                excerpt=mask_sensitive(str(record["excerpt"]))[:EXCERPT_CHARS] if record.get("excerpt") else None,
                set_aside_at=record.get("set_aside_at") or utcnow(), status="open")
            try:
                with self._sessions() as session, session.begin():
                    session.add(row)
                added += 1
            except IntegrityError:
                pass  # another process recorded the same line meanwhile
        return added

    def list(self, status: str = "open", limit: int = 100) -> Sequence[UndeliveredHandoff]:
        """Records with ``status`` (``all`` for every one), newest first."""
        query = select(UndeliveredHandoff).order_by(UndeliveredHandoff.set_aside_at.desc(),
                                                    UndeliveredHandoff.id.desc()).limit(limit)
        if status != "all":
            query = query.where(UndeliveredHandoff.status == status)
        with self._sessions() as session:
            return list(session.execute(query).scalars())

    def count_open(self) -> int:
        """How many records nobody has retried or dismissed."""
        with self._sessions() as session:
            return int(session.execute(select(func.count()).select_from(UndeliveredHandoff)
                                       .where(UndeliveredHandoff.status == "open")).scalar_one())

    def get(self, record_id: int) -> UndeliveredHandoff:
        """One record; :class:`QueueError` 404 when unknown."""
        with self._sessions() as session:
            row = session.get(UndeliveredHandoff, record_id)
        if row is None:
            raise QueueError(NOT_FOUND.format(id=record_id), status=404)
        return row

    def _close(self, record_id: int, status: str, agent: str, ticket_id: int | None = None) -> UndeliveredHandoff:
        """Move an open record to ``status`` (one conditional UPDATE: of two agents, one wins)."""
        with self._sessions() as session, session.begin():
            done = session.execute(
                update(UndeliveredHandoff)
                .where(UndeliveredHandoff.id == record_id, UndeliveredHandoff.status == "open")
                .values(status=status, handled_by=agent, handled_at=utcnow(), ticket_id=ticket_id)).rowcount
            if done:
                record_audit(session, f"undelivered.{status}", agent, f"undelivered:{record_id}",
                             {"ticket_id": ticket_id} if ticket_id else None)
        if not done:
            row = self.get(record_id)
            raise QueueError(ALREADY_HANDLED.format(id=record_id, status=STATUS_JA.get(str(row.status), row.status)))
        return self.get(record_id)

    def dismiss(self, record_id: int, agent: str) -> UndeliveredHandoff:
        """An agent decided the packet needs no ticket (409 when already handled)."""
        return self._close(record_id, "dismissed", agent)

    def mark_retried(self, record_id: int, agent: str, ticket_id: int) -> UndeliveredHandoff:
        """The packet was sent again and is ticket ``ticket_id`` now (409 when already handled)."""
        return self._close(record_id, "retried", agent, ticket_id)

    def refused_again(self, record_id: int, reason: str) -> None:
        """A retry was refused too: keep the newest reason (the record stays open)."""
        with self._sessions() as session, session.begin():
            session.execute(update(UndeliveredHandoff).where(UndeliveredHandoff.id == record_id)
                            .values(reason=mask_sensitive(reason)[:REASON_CHARS]))


def _short(value: Any, chars: int) -> str | None:
    return None if value is None else mask_sensitive(str(value))[:chars]
