"""Bring a queue database to the newest schema with Alembic (bot/store/migrations)."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """Alembic configuration without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


_ALEMBIC = threading.Lock()  # Alembic's `op` / context are module globals: one migration at a time


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` (idempotent; safe at each start-up)."""
    config = alembic_config()
    with _ALEMBIC, engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
