"""Support agents who log in to the console; passwords are kept as bcrypt hashes."""

from __future__ import annotations

from dataclasses import dataclass

import bcrypt
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bot.store.models import Agent

MIN_PASSWORD_CHARS = 8
# Checked against when the user name is unknown, so a wrong name and a wrong password
# take the same time (no user-name probing by timing).
_DUMMY_HASH = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt())


@dataclass(frozen=True)
class AgentProfile:
    """What the console shows of an agent."""

    username: str
    display_name: str


class AgentError(ValueError):
    """An agent cannot be added as asked; the message says why (Japanese)."""


class AgentDirectory:
    """Agents on one database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`bot.store.queue.make_engine`)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    def add(self, username: str, display_name: str, password: str) -> AgentProfile:
        """Create an agent.

        Raises:
            AgentError: Empty name, short password or the user name is taken.
        """
        username = username.strip()
        if not username or not display_name.strip():
            raise AgentError("ユーザー名と表示名を指定してください。")
        if len(password) < MIN_PASSWORD_CHARS:
            raise AgentError(f"パスワードは {MIN_PASSWORD_CHARS} 文字以上にしてください。")
        hashed = bcrypt.hashpw(password.encode("utf-8")[:72], bcrypt.gensalt()).decode("ascii")
        with self._sessions() as session:
            session.add(Agent(username=username, display_name=display_name.strip(), password_hash=hashed))
            try:
                session.commit()
            except IntegrityError:
                raise AgentError(f"ユーザー名 {username} はすでに使われています。") from None
        return AgentProfile(username, display_name.strip())

    def authenticate(self, username: str, password: str) -> AgentProfile | None:
        """The agent when ``password`` is right, else ``None``."""
        with self._sessions() as session:
            agent = session.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
        hashed = agent.password_hash.encode("ascii") if agent else _DUMMY_HASH
        # bcrypt only reads 72 bytes; longer input is cut, never an error.
        ok = bcrypt.checkpw(password.encode("utf-8")[:72], hashed)
        return AgentProfile(agent.username, agent.display_name) if agent and ok else None

    def get(self, username: str) -> AgentProfile | None:
        """The agent called ``username``, if any."""
        with self._sessions() as session:
            agent = session.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
        return AgentProfile(agent.username, agent.display_name) if agent else None

    def count(self) -> int:
        """How many agents exist."""
        with self._sessions() as session:
            return int(session.execute(select(func.count(Agent.id))).scalar() or 0)
