"""Bring the database to the newest schema before any bot process starts (systemd
``mirai-support-migrate.service``, ``deploy/run_scaled.py``).

Every bot and action server migrates the database when it opens it, under a lock
(:mod:`bot.store.migrate`), so servers started together wait for one another instead of
failing (``duplicate key value violates unique constraint "pg_type_typname_nsp_index"``
before the lock). This one-shot step still runs first: a schema error is reported once,
here, instead of by every server, and the servers start without waiting for the upgrade.
"""

from __future__ import annotations

import sys

from bot.settings import get_settings


def main() -> int:
    """Migrate ``DATABASE_URL``; 0 on success, 1 with the reason on stderr."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.store.database import make_engine

    url = get_settings().database_url
    try:
        make_engine(url).dispose()  # creates a SQLite file's folder, then upgrade()
    except (OSError, SQLAlchemyError) as exc:
        print(f"データベースを準備できませんでした: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
