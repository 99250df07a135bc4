"""Rasa's tracker store across a database outage: a real PostgreSQL behind a TCP proxy we cut.

Stopping the proxy (the handoff benchmark's, on its own thread: psycopg2 blocks the caller's event
loop, as it blocks Rasa's) closes every pooled connection and refuses new ones, as a PostgreSQL
restart does (the scaled fault run, README issue #12), without restarting the machine's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from benchmarks.handoff_load import TcpProxy
from bot.store.rasa_endpoints import tracker_store
from bot.store.rasa_tracker_retry import RetryingSQLTrackerStore
from conftest import temporary_database


@contextlib.asynccontextmanager
async def proxied_store(kind: type[SQLTrackerStore], database: str, **extra: Any) -> AsyncIterator[
        tuple[SQLTrackerStore, TcpProxy]]:
    proxy = TcpProxy(5432)
    proxy.start()
    section = tracker_store(database)
    section.pop("type")
    host = section.pop("url")
    assert host == "127.0.0.1"
    section["port"] = proxy.port
    # Rasa builds a custom tracker store as cls(host=url, domain=…, event_broker=…, **rest).
    store = await asyncio.to_thread(kind, host=host, domain=Domain.empty(), event_broker=None, **section, **extra)
    try:
        yield store, proxy
    finally:
        store.engine.dispose()
        proxy.close()


def turn(sender_id: str, text: str) -> list[Any]:
    return [UserUttered(text, {"name": "faq", "confidence": 0.9}), ActionExecuted("action_faq"),
            BotUttered(f"answer to {text}")]


def test_endpoints_name_the_retrying_store() -> None:
    assert tracker_store("postgresql://postgres@127.0.0.1/test")["type"] == \
        "bot.store.rasa_tracker_retry.RetryingSQLTrackerStore"


def test_a_turn_saved_during_a_database_outage_is_kept(tmp_path: Path) -> None:
    async def scenario(database: str) -> None:
        async with proxied_store(RetryingSQLTrackerStore, database, retry_seconds=15) as (store, proxy):
            tracker = DialogueStateTracker.from_events("c-outage", turn("c-outage", "住所を変えたい"))
            await store.save(tracker)
            proxy.stop()  # the pooled connection dies, new ones are refused
            tracker.update_with_events(turn("c-outage", "電話番号も"), None)

            back = threading.Timer(1.0, proxy.start)
            back.start()
            await store.save(tracker)  # waits for the database instead of failing
            back.join()
            stored = await store.retrieve("c-outage")
        assert stored is not None
        assert [e.text for e in stored.events if isinstance(e, UserUttered)] == ["住所を変えたい", "電話番号も"]

    with temporary_database("postgresql", tmp_path) as database:
        asyncio.run(scenario(database))


def test_rasas_own_store_fails_the_same_turn(tmp_path: Path) -> None:
    """The control: without the retries the turn's save raises (and Rasa's fail-safe keeps it in memory)."""
    async def scenario(database: str) -> None:
        async with proxied_store(SQLTrackerStore, database) as (store, proxy):
            tracker = DialogueStateTracker.from_events("c-control", turn("c-control", "住所を変えたい"))
            await store.save(tracker)
            proxy.stop()
            tracker.update_with_events(turn("c-control", "電話番号も"), None)
            with pytest.raises((sa.exc.OperationalError, sa.exc.InterfaceError)):
                await store.save(tracker)

    with temporary_database("postgresql", tmp_path) as database:
        asyncio.run(scenario(database))


def test_the_retries_end_after_retry_seconds(tmp_path: Path) -> None:
    """A database that stays away: the error comes back after about retry_seconds, not never."""
    async def scenario(database: str) -> float:
        async with proxied_store(RetryingSQLTrackerStore, database, retry_seconds=1.5) as (store, proxy):
            tracker = DialogueStateTracker.from_events("c-away", turn("c-away", "住所を変えたい"))
            await store.save(tracker)
            proxy.stop()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises((sa.exc.OperationalError, sa.exc.InterfaceError)):
                await store.save(tracker)
            return loop.time() - started

    with temporary_database("postgresql", tmp_path) as database:
        waited = asyncio.run(scenario(database))
    assert 0.5 < waited < 5
