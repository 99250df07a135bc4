"""The agent desk (#14 item 1) on SQLite and PostgreSQL (127.0.0.1:5432): caps, status, skills, offers.

Agents are written straight into the table (no bcrypt: these tests are about assignment);
the desk's clock is moved instead of waiting.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.store.agents import AgentDirectory
from bot.store.database import make_engine
from bot.store.desk import (MAX_CHATS_LIMIT, Desk, DeskError, check_role, check_skills, check_status,
                            parse_max_chats)
from bot.store.models import Agent
from bot.store.queue import Queue, QueueError
from conftest import temporary_database

CATEGORIES = ["登録情報の変更", "サービスについて", "対応内容について"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


class Clock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture()
def engine(database: str) -> Iterator[Engine]:
    engine = make_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def desk(engine: Engine, clock: Clock) -> Desk:
    return Desk(engine, offer_seconds=30, reply_overdue_minutes=5, clock=clock)


@pytest.fixture()
def queue(engine: Engine) -> Queue:
    return Queue(engine)


def add_agent(engine: Engine, username: str, status: str = "available", max_chats: int = 3,
              skills: list[str] | None = None, role: str = "agent") -> None:
    with Session(engine) as session:
        session.add(Agent(username=username, display_name=username.upper(), password_hash="-", role=role,
                          status=status, max_chats=max_chats, skills=skills or []))
        session.commit()


def file_ticket(queue: Queue, key: str, category: str | None = "登録情報の変更", reasons: list[str] | None = None,
                offline: bool = False) -> int:
    packet = HandoffPacket(idempotency_key=f"{key}:1", conversation_id=key, reasons=reasons or ["human_request"],
                           transcript=[Turn("customer", "担当者と話したい")], category=category, offline=offline)
    return queue.enqueue(packet)[0].id


def offered(queue: Queue, ticket_id: int) -> str | None:
    return queue.get(ticket_id, False).offered_to


# ---- settings ------------------------------------------------------------------------------------------


def test_first_agent_is_admin_and_new_agents_start_offline_with_three_slots(engine: Engine, desk: Desk) -> None:
    agents = AgentDirectory(engine)
    agents.add("sato", "佐藤", "password-1")
    agents.add("suzuki", "鈴木", "password-2")
    first, second = desk.agents()
    assert (first.username, first.role, second.role) == ("sato", "admin", "agent")
    assert (second.max_chats, second.status, second.skills, second.load) == (3, "offline", (), 0)
    assert desk.is_admin("sato") and not desk.is_admin("suzuki") and not desk.is_admin("nobody")


@pytest.mark.parametrize("value", [0, -1, 999, MAX_CHATS_LIMIT + 1, "abc", "３", "", None, True, 2.5])
def test_a_cap_of_zero_negative_absurd_or_not_a_number_is_refused_clearly(value: Any) -> None:
    with pytest.raises(DeskError) as info:
        parse_max_chats(value)
    assert f"1 から {MAX_CHATS_LIMIT} までの整数" in str(info.value)
    assert parse_max_chats("5") == 5 and parse_max_chats(1) == 1


def test_unknown_skills_roles_and_statuses_are_refused_with_what_is_allowed() -> None:
    with pytest.raises(DeskError) as info:
        check_skills(["料金・請求", "登録情報の変更", "<script>"], CATEGORIES)
    message = str(info.value)
    assert "「<script>」「料金・請求」" in message and "使えるカテゴリ: 登録情報の変更、サービスについて" in message
    with pytest.raises(DeskError):
        check_skills("登録情報の変更", CATEGORIES)  # a string, not a list
    # Known names keep the knowledge's order, each once; blanks are dropped.
    assert check_skills(["対応内容について", "登録情報の変更", "登録情報の変更", " "], CATEGORIES) == \
        ("登録情報の変更", "対応内容について")
    for check, bad in ((check_role, "root"), (check_status, "busy")):
        with pytest.raises(DeskError) as info:
            check(bad)
        assert bad in str(info.value)


def test_the_last_admin_stays_admin_and_unknown_agents_are_404(engine: Engine, desk: Desk) -> None:
    add_agent(engine, "boss", role="admin")
    add_agent(engine, "sato")
    with pytest.raises(DeskError) as info:
        desk.update("boss", role="agent")
    assert info.value.status == 409 and "管理者が1人もいなくなる" in str(info.value)
    desk.update("sato", role="admin")
    assert desk.update("boss", role="agent").role == "agent"
    with pytest.raises(DeskError) as info:
        desk.update("ghost", max_chats=2)
    assert info.value.status == 404


# ---- assignment ----------------------------------------------------------------------------------------


def test_priority_first_to_the_longest_idle_agent_with_the_category(engine: Engine, desk: Desk, queue: Queue,
                                                                    clock: Clock) -> None:
    add_agent(engine, "reg", skills=["登録情報の変更"])
    add_agent(engine, "any")
    add_agent(engine, "away", status="away")
    add_agent(engine, "offline", status="offline")
    normal = file_ticket(queue, "c-normal", "登録情報の変更")
    clock.offset += 1
    angry = file_ticket(queue, "c-angry", "サービスについて", ["anger"])
    contact = file_ticket(queue, "c-offline", offline=True)
    result = desk.assign()
    # The complaint goes first, to the only agent whose skills take it; the other ticket to the
    # one left. Away / offline agents and the contact form get nothing.
    assert offered(queue, angry) == "any" and offered(queue, normal) == "reg"
    assert sorted(result.offered) == sorted([angry, normal]) and offered(queue, contact) is None
    assert {a.username: a.offers for a in desk.agents()} == {"any": 1, "away": 0, "offline": 0, "reg": 1}
    # Longest idle: the next ticket both could take goes to the one whose latest offer is older.
    desk.decline(normal, "reg")
    clock.offset += 1
    desk.assign()
    assert offered(queue, normal) == "any"  # "reg" let it go


def test_caps_hold_for_offers_and_manual_claims_with_a_japanese_409(engine: Engine, desk: Desk,
                                                                    queue: Queue) -> None:
    add_agent(engine, "sato", max_chats=2)
    first, second, third = (file_ticket(queue, f"c{i}") for i in range(3))
    desk.assign()
    assert [offered(queue, t) for t in (first, second, third)] == ["sato", "sato", None]
    queue.claim(first, "sato", desk.slot_guard("sato"))  # accepting an offer uses its own slot
    with pytest.raises(QueueError) as info:
        queue.claim(third, "sato", desk.slot_guard("sato"))  # one chat + one offer = 2
    assert info.value.status == 409
    assert str(info.value) == wording.DESK_TEXT["full"].format(cap=2, ticket_id=third)
    desk.decline(second, "sato")
    queue.claim(third, "sato", desk.slot_guard("sato"))
    assert desk.agent("sato").chats == 2  # type: ignore[union-attr]
    # A contact form (offline ticket) is no chat: it needs no slot.
    contact = file_ticket(queue, "c-form", offline=True)
    assert queue.claim(contact, "sato", desk.slot_guard("sato")).status == "claimed"
    # A take-over is within the cap too.
    add_agent(engine, "suzuki", max_chats=1)
    desk.assign()
    assert offered(queue, second) == "suzuki"
    with pytest.raises(QueueError) as info:
        queue.take_over(first, "suzuki", "引き継ぎ", None, desk.slot_guard("suzuki"))
    assert info.value.status == 409 and queue.get(first, False).claimed_by == "sato"
    with pytest.raises(QueueError):
        desk.decline(first, "suzuki")  # not offered to them


def test_an_offer_not_accepted_in_time_goes_to_the_next_agent(engine: Engine, desk: Desk, queue: Queue,
                                                              clock: Clock) -> None:
    add_agent(engine, "sato")
    ticket = file_ticket(queue, "c1")
    desk.assign()
    assert offered(queue, ticket) == "sato"
    add_agent(engine, "suzuki")
    clock.offset += 29
    assert desk.assign().expired == [] and offered(queue, ticket) == "sato"
    clock.offset += 2
    result = desk.assign()
    assert result.expired == [ticket] and result.offered == [ticket] and offered(queue, ticket) == "suzuki"
    # Nobody else: the round starts again, leaving out the latest agent who let it go.
    clock.offset += 31
    desk.assign()
    assert offered(queue, ticket) == "sato"
    # Going away hands an offer back at once.
    desk.update("sato", status="away")
    assert offered(queue, ticket) is None
    desk.assign()
    assert offered(queue, ticket) == "suzuki"


def test_a_late_reply_is_flagged_and_cleared_by_the_reply(engine: Engine, desk: Desk, queue: Queue,
                                                          clock: Clock) -> None:
    add_agent(engine, "sato")
    ticket = file_ticket(queue, "c1")
    queue.claim(ticket, "sato", desk.slot_guard("sato"))
    assert not desk.is_overdue(queue.get(ticket, False)) and desk.overdue() == []
    clock.offset += 5 * 60 + 1
    assert desk.is_overdue(queue.get(ticket, False)) and [t.id for t in desk.overdue()] == [ticket]
    queue.add_entry(ticket, "agent", "お待たせしました", "SATO")
    assert desk.overdue() == []
    clock.offset = 0  # the queue stamps messages with the real time
    queue.add_entry(ticket, "customer", "まだですか")
    queue.add_entry(ticket, "customer", "もしもし")
    assert desk.overdue() == []
    clock.offset += 5 * 60 + 1
    assert [t.id for t in desk.overdue()] == [ticket]


def test_two_servers_offering_and_claiming_at_once_never_exceed_a_cap(database: str, engine: Engine,
                                                                      queue: Queue) -> None:
    """Like two bot servers: each its own engine and desk, rounds and claims at the same moment."""
    for name in ("a", "b", "c"):
        add_agent(engine, name, max_chats=2)
    tickets = [file_ticket(queue, f"c{i}") for i in range(10)]
    engines = [make_engine(database) for _ in range(2)]
    desks = [Desk(e, offer_seconds=30, reply_overdue_minutes=5) for e in engines]
    start = threading.Barrier(8)

    def round_(i: int) -> None:
        start.wait()
        desks[i % 2].assign()

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(round_, range(8)))
        loads = {a.username: a.load for a in desks[0].agents()}
        assert loads == {"a": 2, "b": 2, "c": 2}
        owners = [offered(queue, t) for t in tickets]
        assert sorted(o for o in owners if o) == ["a", "a", "b", "b", "c", "c"]
        # One agent claiming four free tickets at once, on two servers: two (their cap) win, with
        # their two offers declined first.
        for ticket in tickets:
            if offered(queue, ticket) == "a":
                desks[0].decline(ticket, "a")
        free = [t for t in tickets if offered(queue, t) is None][:4]
        queues = [Queue(e) for e in engines]
        claim_start = threading.Barrier(len(free))

        def claim(i: int) -> bool:
            claim_start.wait()
            try:
                queues[i % 2].claim(free[i], "a", desks[i % 2].slot_guard("a"))
                return True
            except QueueError:
                return False

        with ThreadPoolExecutor(max_workers=len(free)) as pool:
            won = list(pool.map(claim, range(len(free))))
        assert won.count(True) == 2, won
        assert desks[0].agent("a").chats == 2  # type: ignore[union-attr]
    finally:
        for e in engines:
            e.dispose()


def test_migration_0009_makes_the_earliest_agent_admin_and_goes_back(database: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from bot.store.migrate import alembic_config, upgrade

    engine = create_engine(database, future=True)
    try:
        upgrade(engine, "0008")
        with engine.begin() as connection:
            for username in ("old", "newer"):
                connection.execute(text("INSERT INTO agents (username, display_name, password_hash, created_at) "
                                        f"VALUES ('{username}', '{username}', '-', '2026-01-01 00:00:00')"))
        upgrade(engine)
        desk = Desk(engine, offer_seconds=30, reply_overdue_minutes=5)
        assert [(a.username, a.role, a.max_chats, a.status, a.skills) for a in desk.agents()] == \
            [("newer", "agent", 3, "offline", ()), ("old", "admin", 3, "offline", ())]
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0008")
            assert "role" not in {c["name"] for c in inspect(connection).get_columns("agents")}
            assert "offered_to" not in {c["name"] for c in inspect(connection).get_columns("tickets")}
    finally:
        engine.dispose()
