"""Rasa's ``endpoints.yml`` for a run: where the action server is, and where conversations live.

Without a tracker store Rasa keeps every conversation in memory and forgets it on restart
(the next turn after a clarify loses its context; a handoff after a restart looked like
an old one). So the launcher always gives Rasa a SQL tracker store on the queue's database:

* ``DATABASE_URL`` on PostgreSQL: the same database (Rasa's own ``events`` table).
  Rasa's SQL store, retrying while the database restarts (:mod:`bot.store.rasa_tracker_retry`).
* The default SQLite file (``var/handoff.db``): a sibling file ``var/trackers.db``. Two
  processes writing one SQLite file wait on each other's locks; Rasa writes every turn.

With a Redis URL in ``BOT_EVENTS_URL`` (several servers), Rasa also gets the Redis lock
store, so two Rasa servers never process the same conversation at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TRACKERS_FILE = "trackers.db"
# Rasa's SQL tracker store that waits out a database restart (bot/store/rasa_tracker_retry.py).
TRACKER_STORE_TYPE = "bot.store.rasa_tracker_retry.RetryingSQLTrackerStore"


def tracker_store(database_url: str) -> dict[str, Any]:
    """The ``tracker_store`` section for the queue's database URL.

    Args:
        database_url: ``DATABASE_URL`` (``sqlite:///…`` or ``postgresql://…``).

    Raises:
        ValueError: A database Rasa's SQL tracker store cannot use; names the fix.
    """
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        folder = Path(url.database).parent if url.database else Path("var")
        return {"type": TRACKER_STORE_TYPE, "dialect": "sqlite", "db": str((folder / TRACKERS_FILE).resolve())}
    if url.get_backend_name() == "postgresql":
        section: dict[str, Any] = {"type": TRACKER_STORE_TYPE, "dialect": "postgresql", "url": url.host or "127.0.0.1",
                                   "port": url.port or 5432, "db": url.database}
        if url.username:
            section["username"] = url.username
        if url.password:
            section["password"] = url.password
        return section
    raise ValueError(f"DATABASE_URL={url.render_as_string(hide_password=True)}: Rasa の会話の保存先に使えません。"
                     "対処: sqlite:/// か postgresql:// の URL を指定してください。")


def lock_store(events_url: str) -> dict[str, Any] | None:
    """The ``lock_store`` section for ``BOT_EVENTS_URL`` (``None`` without Redis)."""
    if not events_url.startswith(("redis://", "rediss://")):
        return None
    from urllib.parse import urlparse

    parsed = urlparse(events_url)
    section: dict[str, Any] = {"type": "redis", "url": parsed.hostname or "127.0.0.1", "port": parsed.port or 6379,
                               "key_prefix": "mirai_support"}
    if parsed.password:
        section["password"] = parsed.password
    if parsed.scheme == "rediss":
        section["use_ssl"] = True
    return section


def write_endpoints(path: Path, action_port: int, database_url: str, events_url: str = "") -> Path:
    """Write Rasa's endpoints file for one run (owner-only: it may hold a database password).

    Args:
        path: Where to write it.
        action_port: Port of the action server.
        database_url: ``DATABASE_URL``: the tracker store goes on it (module docstring).
        events_url: ``BOT_EVENTS_URL``: a Redis URL adds the lock store.

    Returns:
        ``path``.
    """
    doc: dict[str, Any] = {"action_endpoint": {"url": f"http://127.0.0.1:{action_port}/webhook"},
                           "tracker_store": tracker_store(database_url)}
    locks = lock_store(events_url)
    if locks:
        doc["lock_store"] = locks
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
