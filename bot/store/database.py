"""The database of a bot: its engine, migrated, and the stores that share it.

The bot server, the action server and the command-line tools all open the database
here, so each gets the same connection settings (SQLite's lock wait and WAL, hidden
statement parameters) and the newest schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from bot.store.agents import AgentDirectory
from bot.store.audit import AuditLog
from bot.store.chat_log import ChatLog
from bot.store.desk import Desk
from bot.store.desk_settings import DeskSettings
from bot.store.erasure import Erasure
from bot.store.escalation import Escalations
from bot.store.forwarding import Forwards
from bot.store.pending import PendingHandoffs
from bot.store.queue import Queue
from bot.store.retention import Retention
from bot.store.undelivered import UndeliveredHandoffs


def make_engine(url: str) -> Engine:
    """Engine for ``url``, migrated to the newest schema (a SQLite file's folder is created).

    ``hide_parameters``: a database error's message (logged with its traceback) never
    carries the statement's parameters, i.e. customers' messages and details.
    """
    from bot.store.migrate import upgrade

    if not url.startswith("sqlite"):
        engine = create_engine(url, future=True, pool_pre_ping=True, hide_parameters=True)
    else:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # The action server and the bot server write the same file: wait for the other's
        # lock instead of failing at once, and let readers work during a write (WAL).
        engine = create_engine(url, future=True, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)
    return engine


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@dataclass
class Stores:
    """The stores of a bot server, on one engine (analytics read the engine directly)."""

    queue: Queue
    chat_log: ChatLog
    agents: AgentDirectory
    pending: PendingHandoffs
    engine: Engine
    # Handoffs the action servers' outboxes set aside (the console's 「配信できなかった引き継ぎ」).
    undelivered: UndeliveredHandoffs = field(init=False)
    # Agents' caps, status and skills; offers of waiting tickets (bot/store/desk.py).
    desk: Desk = field(init=False)
    # The desk's timings as admins set them in the console (bot/store/desk_settings.py).
    desk_settings: DeskSettings = field(init=False)
    # Transfers, escalations, supervisors' joins and whispers, tickets' history (bot/store/escalation.py).
    escalations: Escalations = field(init=False)
    # Forwards of claimed tickets to a department (bot/store/forwarding.py).
    forwards: Forwards = field(init=False)
    # Who did what (admins' console page 監査ログ) and what retention removes (bot/store/retention.py).
    audit: AuditLog = field(init=False)
    retention: Retention = field(init=False)
    # One customer's erasure on request (the console's 個人情報の削除; `bot data delete` builds its own).
    erasure: Erasure = field(init=False)

    def __post_init__(self) -> None:
        from bot.settings import get_settings

        self.undelivered = UndeliveredHandoffs(self.engine)
        self.desk = Desk(self.engine)
        self.desk_settings = DeskSettings(self.engine, {
            "offer_seconds": self.desk.start_offer_seconds,
            "reply_overdue_minutes": self.desk.start_reply_overdue_minutes,
            "escalate_after_seconds": get_settings().escalate_after_seconds})
        self.desk.settings = self.desk_settings
        self.escalations = Escalations(self.queue, self.desk)
        self.forwards = Forwards(self.queue)
        self.audit = AuditLog(self.engine)
        self.retention = Retention(self.engine, get_settings().retention)
        self.erasure = Erasure(self.engine)


def stores_for(database_url: str) -> Stores:
    """Queue, chat log, agents and pending handoffs on one (migrated) database."""
    engine = make_engine(database_url)
    return Stores(Queue(engine), ChatLog(engine), AgentDirectory(engine), PendingHandoffs(engine), engine)
