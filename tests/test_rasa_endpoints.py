"""Rasa's endpoints for a run: tracker store on the queue's database, Redis lock store."""

import stat

import pytest
import yaml

from bot.store.rasa_endpoints import lock_store, tracker_store, write_endpoints


def test_sqlite_queue_gets_a_sibling_tracker_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    section = tracker_store(f"sqlite:///{tmp_path}/var/handoff.db")
    assert section == {"type": "bot.store.rasa_tracker_retry.RetryingSQLTrackerStore", "dialect": "sqlite", "db": str(tmp_path / "var" / "trackers.db")}


def test_postgresql_queue_shares_its_database() -> None:
    section = tracker_store("postgresql://bot:s3cret@db.example:5433/support")
    assert section == {"type": "bot.store.rasa_tracker_retry.RetryingSQLTrackerStore", "dialect": "postgresql", "url": "db.example", "port": 5433,
                       "db": "support", "username": "bot", "password": "s3cret"}
    assert tracker_store("postgresql://postgres@127.0.0.1/test")["port"] == 5432


def test_other_databases_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="sqlite:/// か postgresql://"):
        tracker_store("mysql://root:pw@127.0.0.1/test")


def test_lock_store_only_with_redis() -> None:
    assert lock_store("") is None
    assert lock_store("redis://127.0.0.1:6379/0") == {"type": "redis", "url": "127.0.0.1", "port": 6379,
                                                       "key_prefix": "mirai_support"}


def test_endpoints_file_is_owner_only_and_complete(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_endpoints(tmp_path / "endpoints.yml", 5055, "postgresql://bot:pw@127.0.0.1/support",
                           "redis://127.0.0.1:6379/0")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the database password
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["action_endpoint"] == {"url": "http://127.0.0.1:5055/webhook"}
    assert doc["tracker_store"]["dialect"] == "postgresql" and doc["lock_store"]["type"] == "redis"
