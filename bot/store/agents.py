"""Support agents who log in to the console, their sessions, and failed-login counters.

Passwords are kept as bcrypt hashes. A console login is a row of ``agent_sessions``
(server side), so logging out, removing the agent or changing the password ends it at
once on every bot server of the database. ``login_attempts`` holds the counters of the
login throttle (see :mod:`bot.server.auth`), shared by every bot server as well.

The tables are declared here, on the models' ``Base``; migration 0004 creates them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import bcrypt
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot import wording
from bot.store.audit import record_audit
from bot.store.models import Agent, Base, as_utc

MIN_PASSWORD_CHARS = 8
SESSION_IDLE_SECONDS = 30 * 60  # no request for this long ends a session
SESSION_MAX_SECONDS = 12 * 3600  # a session ends this long after login, busy or not
SESSION_TOUCH_SECONDS = 60  # last_seen_at is written at most once a minute per session
ATTEMPTS_FORGET_SECONDS = 24 * 3600  # failed-login counters untouched this long start again from zero
_SELECT_CHUNK = 500

Clock = Callable[[], float]


class AgentSession(Base):
    """One console login: the cookie carries the random id, the table its SHA-256."""

    __tablename__ = "agent_sessions"

    id = Column(String(64), primary_key=True)  # sha256 hex of the id in the cookie
    agent_id = Column(Integer, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)
    last_seen_at = Column(DateTime(timezone=True), nullable=False, index=True)


class LoginAttempt(Base):
    """Failed-login counter of one client address or one user name (the key is hashed)."""

    __tablename__ = "login_attempts"

    key = Column(String(64), primary_key=True)  # sha256 hex of "address:..." / "name:..."
    failures = Column(Integer, nullable=False)
    blocked_until = Column(DateTime(timezone=True))
    updated_at = Column(DateTime(timezone=True), nullable=False, index=True)


@dataclass(frozen=True)
class AgentProfile:
    """What the console shows of an agent."""

    username: str
    display_name: str


@dataclass(frozen=True)
class AgentListing:
    """One line of ``bot agent list``."""

    username: str
    display_name: str
    created_at: dt.datetime
    active_sessions: int


@dataclass(frozen=True)
class SessionInfo:
    """A live console session.

    Attributes:
        session_id: The random id inside the cookie (never stored as is).
        username: The agent's user name.
        display_name: The agent's display name.
        csrf_token: Must come back in the ``X-CSRF-Token`` header of each state change.
    """

    session_id: str
    username: str
    display_name: str
    csrf_token: str


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off after repeated failures.

    Attributes:
        free_failures: Failures allowed before any wait.
        base_seconds: Wait after the ``free_failures``-th failure; doubles with each further one.
        max_seconds: The longest wait.
    """

    free_failures: int
    base_seconds: float
    max_seconds: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures (0: none)."""
        if failures < self.free_failures:
            return 0.0
        return float(min(self.base_seconds * 2 ** min(failures - self.free_failures, 40), self.max_seconds))


class AgentError(ValueError):
    """An agent cannot be added or changed as asked; the message says why (Japanese)."""


_dummy_hash: bytes | None = None


def _dummy() -> bytes:
    """A hash to check against when the user name is unknown.

    A wrong name and a wrong password then take the same time (no user-name probing by
    timing). Made on first use, not at import (the migrations import this module).
    """
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt())
    return _dummy_hash


def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AgentError(f"パスワードは {MIN_PASSWORD_CHARS} 文字以上にしてください。")
    # bcrypt only reads 72 bytes; longer input is cut, never an error.
    return bcrypt.hashpw(password.encode("utf-8")[:72], bcrypt.gensalt()).decode("ascii")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _bulk(statement: Any) -> Any:
    """A bulk UPDATE/DELETE that leaves the objects already loaded in the session alone."""
    return statement.execution_options(synchronize_session=False)


def _sweep(session: Session, column: Any, condition: Any) -> None:
    """Delete the rows matching ``condition``, skipping rows another transaction holds.

    Two servers sweeping at once could otherwise wait on each other's rows (a deadlock on
    PostgreSQL); a skipped row is swept next time. SQLite has one writer at a time.
    """
    held_by_no_one = select(column).where(condition).with_for_update(skip_locked=True)
    session.execute(_bulk(delete(column.class_).where(column.in_(held_by_no_one))))


def _unknown(username: str) -> AgentError:
    return AgentError(wording.STORE_AGENT_TEXT["unknown_agent"].format(username=username))


class AgentDirectory:
    """Agents, their sessions and the login counters on one database.

    Attributes:
        clock: ``time.time`` by default; tests set a stand-in to move time.
        sessions: Console sessions (:class:`AgentSessions`).
        login_attempts: Failed-login counters (:class:`LoginAttempts`).
    """

    def __init__(self, engine: Engine, clock: Clock = time.time) -> None:
        """Use ``engine`` (see :func:`bot.store.queue.make_engine`)."""
        self._db = sessionmaker(engine, expire_on_commit=False, future=True)
        self.clock = clock
        self.sessions = AgentSessions(self._db, self._now)
        self.login_attempts = LoginAttempts(self._db, self._now, engine.dialect.name)

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    def add(self, username: str, display_name: str, password: str, actor: str | None = None) -> AgentProfile:
        """Create an agent (the first one of the database is an admin; see bot/store/desk.py).

        ``actor`` (who adds it) goes into the audit log, in the same transaction.

        Raises:
            AgentError: Empty name, short password or the user name is taken.
        """
        username = username.strip()
        if not username or not display_name.strip():
            raise AgentError("ユーザー名と表示名を指定してください。")
        hashed = _hash_password(password)
        with self._db() as session:
            # The first agent of a database is its admin: someone must manage the others.
            first = session.execute(select(Agent.id).limit(1)).first() is None
            role = "admin" if first else "agent"
            session.add(Agent(username=username, display_name=display_name.strip(), password_hash=hashed, role=role))
            record_audit(session, "agent.created", actor, username, {"role": role})
            try:
                session.commit()
            except IntegrityError:
                raise AgentError(f"ユーザー名 {username} はすでに使われています。") from None
        return AgentProfile(username, display_name.strip())

    def authenticate(self, username: str, password: str) -> AgentProfile | None:
        """The agent when ``password`` is right, else ``None`` (one bcrypt check either way)."""
        with self._db() as session:
            agent = session.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
        hashed = agent.password_hash.encode("ascii") if agent else _dummy()
        ok = bcrypt.checkpw(password.encode("utf-8")[:72], hashed)
        return AgentProfile(agent.username, agent.display_name) if agent and ok else None

    def get(self, username: str) -> AgentProfile | None:
        """The agent called ``username``, if any."""
        with self._db() as session:
            agent = session.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
        return AgentProfile(agent.username, agent.display_name) if agent else None

    def count(self) -> int:
        """How many agents exist."""
        with self._db() as session:
            return int(session.execute(select(func.count(Agent.id))).scalar() or 0)

    def listing(self) -> list[AgentListing]:
        """Every agent, by user name, with the number of live sessions."""
        live = self.sessions.live_condition()
        with self._db() as session:
            counts = dict(session.execute(select(AgentSession.agent_id, func.count(AgentSession.id))
                                          .where(live).group_by(AgentSession.agent_id)).all())
            agents = session.execute(select(Agent).order_by(Agent.username)).scalars().all()
        return [AgentListing(a.username, a.display_name, as_utc(a.created_at), int(counts.get(a.id, 0)))
                for a in agents]

    def remove(self, username: str, actor: str | None = None) -> tuple[AgentProfile, int]:
        """Delete an agent and end every session of theirs (``actor`` goes into the audit log).

        Returns:
            The removed agent and how many live sessions were ended.

        Raises:
            AgentError: No such agent.
        """
        live = self.sessions.live_condition()
        with self._db() as session:
            agent = session.execute(select(Agent).where(Agent.username == username)
                                    .with_for_update()).scalar_one_or_none()
            if agent is None:
                raise _unknown(username)
            ended = int(session.execute(select(func.count(AgentSession.id))
                                        .where(AgentSession.agent_id == agent.id, live)).scalar() or 0)
            session.execute(_bulk(delete(AgentSession).where(AgentSession.agent_id == agent.id)))
            session.delete(agent)
            record_audit(session, "agent.removed", actor, username, {"ended_sessions": ended} if ended else None)
            session.commit()
        return AgentProfile(agent.username, agent.display_name), ended

    def set_password(self, username: str, password: str, keep_session: str | None = None,
                     actor: str | None = None) -> int:
        """Change an agent's password and end their other sessions.

        Args:
            username: The agent.
            password: The new password.
            keep_session: The session (cookie id) that asked for the change, kept; ``None``
                (``bot agent passwd``) ends every session.
            actor: Who changed it, for the audit log (default: the agent themself).

        Returns:
            How many live sessions were ended.

        Raises:
            AgentError: No such agent, or the password is too short.
        """
        hashed = _hash_password(password)
        live = self.sessions.live_condition()
        with self._db() as session:
            agent_id = session.execute(select(Agent.id).where(Agent.username == username)
                                       .with_for_update()).scalar_one_or_none()
            if agent_id is None:
                raise _unknown(username)
            session.execute(_bulk(update(Agent).where(Agent.id == agent_id).values(password_hash=hashed)))
            others = [AgentSession.agent_id == agent_id]
            if keep_session is not None:
                others.append(AgentSession.id != _digest(keep_session))
            ended = int(session.execute(select(func.count(AgentSession.id)).where(*others, live)).scalar() or 0)
            session.execute(_bulk(delete(AgentSession).where(*others)))
            record_audit(session, "auth.password_changed", actor or username, username,
                         {"ended_sessions": ended} if ended else None)
            session.commit()
        return ended


class AgentSessions:
    """Console sessions: started at login, checked on each request, ended at logout."""

    def __init__(self, db: sessionmaker, now: Callable[[], dt.datetime]) -> None:
        """Use the database sessions ``db``; ``now`` tells the time."""
        self._db = db
        self._now = now

    def live_condition(self, now: dt.datetime | None = None) -> object:
        """SQL condition: the session is neither idle too long nor too old."""
        now = now or self._now()
        return (AgentSession.last_seen_at > now - dt.timedelta(seconds=SESSION_IDLE_SECONDS)) & \
               (AgentSession.created_at > now - dt.timedelta(seconds=SESSION_MAX_SECONDS))

    @staticmethod
    def _expired(row: AgentSession, now: dt.datetime) -> bool:
        return (now - as_utc(row.last_seen_at)).total_seconds() >= SESSION_IDLE_SECONDS \
            or (now - as_utc(row.created_at)).total_seconds() >= SESSION_MAX_SECONDS

    def start(self, username: str, address: str | None = None) -> SessionInfo | None:
        """A new session for ``username`` (``None`` if there is no such agent).

        The login goes into the audit log (with the client ``address``) in the same transaction.
        """
        now = self._now()
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._db() as session:
            agent = session.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
            if agent is None:
                return None
            _sweep(session, AgentSession.id, ~self.live_condition(now))  # expired sessions
            session.add(AgentSession(id=_digest(session_id), agent_id=agent.id, csrf_token=csrf, created_at=now,
                                     last_seen_at=now))
            record_audit(session, "auth.login", username, username, address=address, at=now)
            try:
                session.commit()
            except IntegrityError:  # the agent was removed in between
                return None
            return SessionInfo(session_id, agent.username, agent.display_name, csrf)

    def lookup(self, session_id: str, touch: bool = True) -> SessionInfo | None:
        """The live session with this cookie id, else ``None`` (an expired one is deleted).

        Args:
            session_id: The id from the cookie.
            touch: Count this as activity (restarts the idle time). The event stream's
                periodic checks do not, or an open tab would never go idle.
        """
        now = self._now()
        key = _digest(session_id)
        with self._db() as session:
            found = session.execute(select(AgentSession, Agent).join(Agent, Agent.id == AgentSession.agent_id)
                                    .where(AgentSession.id == key)).first()
            if found is None:
                return None
            row, agent = found
            if self._expired(row, now):
                session.execute(_bulk(delete(AgentSession).where(AgentSession.id == key)))
                session.commit()
                return None
            if touch and (now - as_utc(row.last_seen_at)).total_seconds() >= SESSION_TOUCH_SECONDS:
                session.execute(_bulk(update(AgentSession).where(AgentSession.id == key).values(last_seen_at=now)))
                session.commit()
            return SessionInfo(session_id, agent.username, agent.display_name, row.csrf_token)

    def end(self, session_id: str, audit: tuple[str, str | None] | None = None) -> None:
        """End one session; ``audit``: (user name, client address) of a logout, for the audit log."""
        with self._db() as session:
            ended = session.execute(_bulk(delete(AgentSession).where(AgentSession.id == _digest(session_id)))).rowcount
            if audit is not None and ended:
                record_audit(session, "auth.logout", audit[0], audit[0], address=audit[1])
            session.commit()


class LoginAttempts:
    """Failed-login counters, one per key, kept in the database (shared by every bot server).

    An attempt is counted *before* the password is checked and forgotten when it turns
    out right, so parallel guesses cannot all slip in before the first failure is stored.
    The counters of all keys of one attempt are read and written in one transaction with
    the rows locked, so two servers never both let the same guess through.
    """

    def __init__(self, db: sessionmaker, now: Callable[[], dt.datetime], dialect: str) -> None:
        """Use the database sessions ``db``; ``now`` tells the time."""
        self._db = db
        self._now = now
        self._insert = postgresql_insert if dialect == "postgresql" else sqlite_insert

    def begin(self, limits: Iterable[tuple[str, Backoff]]) -> float:
        """Count an attempt on every key, unless one of them must still wait.

        Args:
            limits: ``(key, back-off)`` pairs, e.g. the client address and the user name.

        Returns:
            0 when the attempt was counted and may go on; else the seconds to wait
            (nothing was counted).
        """
        now = self._now()
        stale = now - dt.timedelta(seconds=ATTEMPTS_FORGET_SECONDS)
        policy = {_digest(key): backoff for key, backoff in limits}
        keys = sorted(policy)  # one lock order on every server: no deadlock
        with self._db() as session:
            # Creating the rows first takes SQLite's write lock; PostgreSQL locks the rows below.
            statement = self._insert(LoginAttempt).on_conflict_do_nothing(index_elements=["key"])
            session.execute(statement, [{"key": k, "failures": 0, "updated_at": now} for k in keys])
            rows = {row.key: row for row in self._rows(session, keys)}
            wait = 0.0
            for key in keys:
                row = rows[key]
                if as_utc(row.updated_at) <= stale:
                    row.failures, row.blocked_until = 0, None
                if row.blocked_until is not None:
                    wait = max(wait, (as_utc(row.blocked_until) - now).total_seconds())
            if wait <= 0:
                for key in keys:
                    row = rows[key]
                    row.failures += 1
                    row.updated_at = now
                    delay = policy[key].delay(row.failures)
                    row.blocked_until = now + dt.timedelta(seconds=delay) if delay else None
                _sweep(session, LoginAttempt.key, LoginAttempt.updated_at <= stale)
            session.commit()
        return max(wait, 0.0)

    def succeeded(self, keys: Iterable[str]) -> None:
        """Forget the counters of ``keys`` after a right password."""
        digests = [_digest(key) for key in keys]
        with self._db() as session:
            session.execute(_bulk(delete(LoginAttempt).where(LoginAttempt.key.in_(digests))))
            session.commit()

    @staticmethod
    def _rows(session: Session, keys: Sequence[str]) -> list[LoginAttempt]:
        rows: list[LoginAttempt] = []
        for start in range(0, len(keys), _SELECT_CHUNK):
            chunk = keys[start:start + _SELECT_CHUNK]
            rows += session.execute(select(LoginAttempt).where(LoginAttempt.key.in_(chunk))
                                    .order_by(LoginAttempt.key).with_for_update()).scalars().all()
        return rows

