"""Rasa's tracker store: the conversations Rasa remembers, for retention and erasure (#14 item 5).

`bot run` gives Rasa a SQL tracker store (bot/store/rasa_endpoints.py): on PostgreSQL the
bot's own database, on SQLite the sibling file ``trackers.db`` (``endpoints.yml`` for a
hand-run Rasa names the same file for the default database). Rasa's ``SQLTrackerStore``
writes one row per event into its table ``events``: ``sender_id`` is the conversation id
the bot server sends (``c-…`` for the widget, ``line-…`` for LINE), ``timestamp`` UNIX
time, ``data`` the event as JSON, i.e. what the customer wrote and the slots.

Nothing here creates that table or file: before Rasa has run there is simply nothing to
count or delete. Every DELETE repeats its condition (a conversation that got a new event
meanwhile is kept), so two runs at once remove each row once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Collection, Iterator

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, delete, func, inspect, select
from sqlalchemy.engine import Connection, Engine

from bot.store.rasa_endpoints import tracker_store

# The columns of Rasa's table this module reads (rasa.core.tracker_store.SQLTrackerStore.SQLEvent).
EVENTS = Table("events", MetaData(), Column("id", Integer, primary_key=True), Column("sender_id", String(255)),
               Column("timestamp", Float))
CHUNK = 500  # conversations per statement


class RasaTrackers:
    """The ``events`` table of Rasa's SQL tracker store that goes with one bot database.

    Attributes:
        shared: The table is in the bot's own database (PostgreSQL): its statements may run
            in the caller's transaction (:meth:`connection`).
        path: The SQLite file of the tracker store (``None`` on PostgreSQL or without one).
    """

    def __init__(self, engine: Engine | None = None, path: Path | None = None) -> None:
        """Use the bot database's ``engine`` (PostgreSQL), or the SQLite file ``path``; neither: no store."""
        self.shared = engine is not None
        self.path = path
        self._engine = engine

    @classmethod
    def for_engine(cls, engine: Engine) -> "RasaTrackers":
        """The tracker store `bot run` configures for the bot database of ``engine``.

        An in-memory SQLite database has no tracker store (Rasa cannot share it).
        """
        url = engine.url
        if url.get_backend_name() == "postgresql":
            return cls(engine=engine)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return cls(path=Path(tracker_store(url.render_as_string(hide_password=False))["db"]))
        return cls()

    def _file_engine(self) -> Engine | None:
        if self._engine is None and self.path is not None and self.path.exists():
            self._engine = create_engine(f"sqlite:///{self.path}", future=True, connect_args={"timeout": 30},
                                         hide_parameters=True)
        return self._engine

    @contextlib.contextmanager
    def begin(self, shared: Connection | None = None) -> Iterator[Connection | None]:
        """A connection in a transaction on the store; ``None`` when there is no ``events`` table.

        Args:
            shared: The caller's connection to the bot database: used (in its transaction)
                when the store is in that database.
        """
        if self.shared and shared is not None:
            yield shared if inspect(shared).has_table(EVENTS.name) else None
            return
        engine = self._file_engine()
        if engine is None:
            yield None
            return
        with engine.begin() as connection:
            yield connection if inspect(connection).has_table(EVENTS.name) else None

    def close(self) -> None:
        """Close the SQLite file's connections (the bot database's engine is the caller's)."""
        if not self.shared and self._engine is not None:
            self._engine.dispose()
            self._engine = None


def count_events(connection: Connection | None, sender_ids: Collection[str]) -> int:
    """Events of these conversations (asked :data:`CHUNK` at a time: SQLite limits the parameters)."""
    if connection is None:
        return 0
    senders = list(sender_ids)
    return sum(int(connection.execute(select(func.count()).select_from(EVENTS).where(
        EVENTS.c.sender_id.in_(senders[start:start + CHUNK]))).scalar_one()) for start in range(0, len(senders), CHUNK))


def delete_events(connection: Connection | None, sender_ids: Collection[str]) -> int:
    """Delete every event of these conversations; returns how many."""
    if connection is None or not sender_ids:
        return 0
    return int(connection.execute(delete(EVENTS).where(EVENTS.c.sender_id.in_(list(sender_ids)))).rowcount or 0)


def expired_conversations(connection: Connection | None, cutoff: dt.datetime, keep: Collection[str]) -> list[str]:
    """Conversations whose last event is older than ``cutoff``, besides ``keep``, sorted (one scan)."""
    if connection is None:
        return []
    query = select(EVENTS.c.sender_id).group_by(EVENTS.c.sender_id) \
        .having(func.max(EVENTS.c.timestamp) < cutoff.timestamp()).order_by(EVENTS.c.sender_id)
    kept = set(keep)
    return [sender for sender in connection.execute(query).scalars() if sender not in kept]


def delete_expired(connection: Connection | None, sender_ids: Collection[str], cutoff: dt.datetime) -> int:
    """Delete the events of these expired conversations; returns how many.

    A conversation with an event at or after ``cutoff`` by the time of the DELETE is kept.
    """
    if connection is None or not sender_ids:
        return 0
    senders = list(sender_ids)
    recent = select(EVENTS.c.sender_id).where(EVENTS.c.sender_id.in_(senders), EVENTS.c.timestamp >= cutoff.timestamp())
    return int(connection.execute(delete(EVENTS).where(EVENTS.c.sender_id.in_(senders),
                                                       EVENTS.c.sender_id.not_in(recent))).rowcount or 0)
