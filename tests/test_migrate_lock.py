"""Servers starting together migrate the database once: the upgrade runs under a lock (#12).

``make run-scaled`` and a production start bring up two bot servers (and action servers) at the
same moment; each migrates the database when it opens it (:func:`bot.store.database.make_engine`).
Without a lock, on a fresh PostgreSQL database both create the tables and one fails.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from conftest import temporary_database

PROCESSES = 4  # more than two makes the race of the unlocked code certain, not just likely


def _migrate(url: str, start: Any, errors: Any) -> None:
    """Wait for the others, then open (and so migrate) the database; report any error."""
    from bot.store.database import make_engine

    start.wait(30)
    try:
        make_engine(url).dispose()
    except Exception as exc:  # noqa: BLE001 - reported to the test, which shows it
        errors.put(f"{type(exc).__name__}: {str(exc)[:300]}")
        raise


def _head() -> str:
    from alembic.script import ScriptDirectory

    from bot.store.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_servers_starting_at_once_migrate_a_fresh_database_once(kind: str, tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with temporary_database(kind, tmp_path) as url:
        start, errors = context.Barrier(PROCESSES), context.Queue()
        workers = [context.Process(target=_migrate, args=(url, start, errors)) for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        reported = []
        while not errors.empty():
            reported.append(errors.get())
        assert [w.exitcode for w in workers] == [0] * PROCESSES, reported
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
                tickets = connection.execute(text("SELECT count(*) FROM tickets")).scalar_one()
        finally:
            engine.dispose()
        assert versions == [_head()] and tickets == 0


def test_the_sqlite_lock_file_is_private_and_a_second_start_changes_nothing(tmp_path: Path) -> None:
    """The lock sits next to the database file, readable by the bot's user only, whatever the umask."""
    import os
    import stat

    from bot.store.database import make_engine

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    old_umask = os.umask(0o022)
    try:
        make_engine(url).dispose()
        make_engine(url).dispose()  # the next start: waits for nobody, finds the schema at head
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "bot.db.migrate-lock").stat().st_mode) == 0o600
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [_head()]
    finally:
        engine.dispose()
