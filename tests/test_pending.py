"""Pending handoffs in the database (bot/store/pending.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import Engine

from bot.store.chat_log import ChatLog, NewMessage, message_json
from bot.store.database import make_engine
from bot.store.pending import PendingHandoffs
from conftest import temporary_database


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with temporary_database(request.param, tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture()
def pending(engine: Engine) -> PendingHandoffs:
    return PendingHandoffs(engine)


def test_a_mark_is_shared_cancelled_and_taken_once(pending: PendingHandoffs) -> None:
    assert pending.waiting("c") is None and pending.take("c") is None
    mark = pending.mark("c", 7)
    assert pending.waiting("c") == mark and mark.message_id == 7 and not mark.cancelled
    assert pending.cancel("c") and not pending.cancel("c")  # cancelled once
    assert pending.waiting("c") is None and pending.get("c").cancelled  # type: ignore[union-attr]
    taken = pending.take("c")
    assert taken is not None and taken.cancelled and taken.message_id == 7
    assert pending.take("c") is None  # of two servers, one takes it


def test_a_mark_knows_its_handoff_and_leaves_another_handoffs_ticket_alone(pending: PendingHandoffs,
                                                                          engine: Engine) -> None:
    chat_log = ChatLog(engine)
    reply, _ = chat_log.add(NewMessage("c", "bot", "担当者におつなぎします。", route="handoff"))
    mark = pending.mark("c", reply.id, "c:m:new")
    assert mark.handoff_key == "c:m:new" and pending.get("c").handoff_key == "c:m:new"  # type: ignore[union-attr]
    assert mark.is_for("c:m:new") and not mark.is_for("c:m:old")
    assert pending.take("c", "c:m:old") is None and pending.waiting("c") == mark  # a late, cancelled handoff's
    assert pending.take("c", "c:m:new") == mark
    assert message_json(chat_log.history("c")[-1])["client_id"] is None  # the key stays on the server
    unknown = pending.mark("c", 999)  # no key (an older action server): any ticket is its own
    assert unknown.handoff_key is None and unknown.is_for("c:m:old")


def test_a_new_handoff_replaces_an_older_mark(pending: PendingHandoffs) -> None:
    pending.mark("c", 1)
    pending.cancel("c")
    pending.mark("c", 9)
    assert pending.waiting("c").message_id == 9  # type: ignore[union-attr]
