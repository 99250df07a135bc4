"""Bring a queue database to the newest schema with Alembic (bot/store/migrations).

Every bot server and action server migrates the database when it opens it, and with
scale-out several start at the same moment (``make run-scaled``). The upgrade therefore
runs under a lock that other processes wait for, so exactly one creates the schema and
the others find it at head:

- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``), taken in the
  upgrade's own transaction, so it is released by the commit (or the rollback of a failed
  upgrade) and never left behind on a pooled connection;
- SQLite: an exclusive ``flock`` on ``<database file>.migrate-lock`` (mode 0600). SQLite
  runs DDL outside the driver's implicit transactions, so its own locking would not keep
  two migrations apart. An in-memory database has one process and needs no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
# The advisory lock's key: any fixed 64-bit number that nothing else on the server uses
# (the first 8 bytes of sha256("mirai-support migrate"), as a signed integer).
ADVISORY_LOCK_KEY = 0x3928_9069_2B72_B757
LOCK_FILE_MODE = 0o600


def alembic_config() -> Config:
    """Alembic configuration without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


_ALEMBIC = threading.Lock()  # Alembic's `op` / context are module globals: one migration at a time


def sqlite_lock_file(engine: Engine) -> Path | None:
    """The lock file of a SQLite database file; ``None`` for other databases and in-memory SQLite."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + ".migrate-lock")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600) until the block ends."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, LOCK_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (idempotent; safe at each start-up, in several processes at once)."""
    config = alembic_config()
    lock_file = sqlite_lock_file(engine)
    # SQLite: the file lock is taken before the connection's transaction begins, so a
    # process waiting for it holds no database lock the migrating one needs.
    with _ALEMBIC, (_file_lock(lock_file) if lock_file else contextlib.nullcontext()):
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
