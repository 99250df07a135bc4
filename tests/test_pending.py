"""Pending handoffs in the database (bot/store/pending.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from bot.store.database import make_engine
from bot.store.pending import PendingHandoffs
from conftest import temporary_database


@pytest.fixture(params=["sqlite", "postgresql"])
def pending(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PendingHandoffs]:
    with temporary_database(request.param, tmp_path) as url:
        engine = make_engine(url)
        yield PendingHandoffs(engine)
        engine.dispose()


def test_a_mark_is_shared_cancelled_and_taken_once(pending: PendingHandoffs) -> None:
    assert pending.waiting("c") is None and pending.take("c") is None
    mark = pending.mark("c", 7)
    assert pending.waiting("c") == mark and mark.message_id == 7 and not mark.cancelled
    assert pending.cancel("c") and not pending.cancel("c")  # cancelled once
    assert pending.waiting("c") is None and pending.get("c").cancelled  # type: ignore[union-attr]
    taken = pending.take("c")
    assert taken is not None and taken.cancelled and taken.message_id == 7
    assert pending.take("c") is None  # of two servers, one takes it


def test_a_new_handoff_replaces_an_older_mark(pending: PendingHandoffs) -> None:
    pending.mark("c", 1)
    pending.cancel("c")
    pending.mark("c", 9)
    assert pending.waiting("c").message_id == 9  # type: ignore[union-attr]
