"""Customers' queue positions and wait estimates follow the real assignment (#14 item 1).

On SQLite and PostgreSQL (the desk tests' fixtures): only the available agents who take the
ticket's category count; complaints overtake; a category nobody available takes gets no
made-up figures; positions move when an agent's status or skills change, and the assigner
tells the customers whose place moved.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from typing import Any

from pathlib import Path

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.server.assigner import Assigner
from bot.server.gateway_base import TEXT
from bot.store.desk import Desk, DeskAgent
from bot.store.models import Ticket
from bot.store.queue import Queue
from bot.store.queue_place import DEFAULT_HANDLING, QueuePlace, WaitingTicket, place_of, places_of, serving_agents
from test_desk import Clock, add_agent, clock, database, desk, engine, file_ticket, queue  # noqa: F401 - fixtures
from test_desk_api import admin_and_agent
from test_server import frames_until, open_chat

REG, SERVICE, OTHER = "登録情報の変更", "サービスについて", "対応内容について"


def places(desk: Desk, *ticket_ids: int) -> list[tuple[int | None, int | None]]:
    """(position, estimate) of each ticket; :meth:`Desk.places` must agree with :meth:`Desk.place`."""
    ranked = desk.places()
    found = []
    for ticket_id in ticket_ids:
        place = desk.place(ticket_id)
        assert place is not None and ranked[ticket_id][1] == place
        found.append((place.position, place.estimate_minutes))
    return found


def handled(engine: Engine, queue: Queue, agent: str, minutes: int, category: str = REG) -> None:
    """A chat ``agent`` resolved after ``minutes`` (their handling time)."""
    ticket_id = file_ticket(queue, f"done-{agent}-{minutes}", category)
    queue.claim(ticket_id, agent)
    queue.resolve(ticket_id, agent=agent)
    with Session(engine) as session, session.begin():
        resolved = dt.datetime.now(dt.timezone.utc)
        session.execute(update(Ticket).where(Ticket.id == ticket_id)
                        .values(claimed_at=resolved - dt.timedelta(minutes=minutes), resolved_at=resolved))


def filed_earlier(engine: Engine, ticket_id: int) -> None:
    """Move a ticket's filing an hour back (ticket times are the database's, not the desk's clock)."""
    with Session(engine) as session, session.begin():
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))


def busy(queue: Queue, agent: str, chats: int) -> None:
    """``agent`` holds ``chats`` live chats (their slots are taken)."""
    for n in range(chats):
        queue.claim(file_ticket(queue, f"busy-{agent}-{n}"), agent)


def test_a_complaint_filed_later_overtakes_and_the_estimate_uses_the_agents_slots(
        engine: Engine, desk: Desk, queue: Queue, clock: Clock) -> None:
    add_agent(engine, "sato", max_chats=2)
    handled(engine, queue, "sato", 10)
    busy(queue, "sato", 2)  # no free slot: each waiting customer needs a chat to end
    first = file_ticket(queue, "c-first")
    clock.offset += 1
    second = file_ticket(queue, "c-second")
    # One chat ends every 10 min / 2 slots = 5 min.
    assert places(desk, first, second) == [(1, 5), (2, 10)]
    clock.offset += 1
    complaint = file_ticket(queue, "c-complaint", reasons=["complaint"])
    assert places(desk, complaint, first, second) == [(1, 5), (2, 10), (3, 15)]
    # A free slot: the first in line is served at once (within the offer), the others still wait.
    chat = queue.open_ticket_for("busy-sato-0")
    assert chat is not None
    queue.resolve(chat.id, agent="sato")
    assert places(desk, complaint, first, second) == [(1, 1), (2, 5), (3, 10)]


def test_only_agents_who_take_the_category_count_with_their_own_handling_time(
        engine: Engine, desk: Desk, queue: Queue, clock: Clock) -> None:
    add_agent(engine, "reg", max_chats=1, skills=[REG])
    add_agent(engine, "svc", max_chats=3, skills=[SERVICE])
    handled(engine, queue, "reg", 4)
    handled(engine, queue, "svc", 30, SERVICE)
    busy(queue, "reg", 1)
    busy(queue, "svc", 3)
    older_services = [file_ticket(queue, f"c-svc-{n}", SERVICE) for n in range(3)]
    clock.offset += 1
    mine = file_ticket(queue, "c-reg", REG)
    # The older サービスについて tickets are for svc only: they do not hold this customer up, and
    # the estimate is reg's pace (4 min, one slot), not an average over every agent.
    assert places(desk, mine) == [(1, 4)]
    assert places(desk, *older_services) == [(1, 10), (2, 20), (3, 30)]
    # An older ticket without a category may go to anyone: it holds up both queues. Its own
    # estimate counts both agents: 4 slots, median handling time of reg's and svc's chats (30 min).
    anyone = file_ticket(queue, "c-any", None)
    filed_earlier(engine, anyone)
    assert places(desk, anyone, mine) == [(1, 8), (2, 8)]
    # An agent who takes every category: the サービスについて tickets now compete with this one too.
    add_agent(engine, "all", max_chats=1)
    busy(queue, "all", 1)
    assert desk.place(mine) == QueuePlace(5, 10, 2)  # 4 before it, 2 slots, reg's 4 min (all resolved none)


def test_a_category_no_available_agent_takes_gets_no_made_up_figures(engine: Engine, desk: Desk, queue: Queue,
                                                                    clock: Clock) -> None:
    add_agent(engine, "reg", skills=[REG])
    add_agent(engine, "svc-away", skills=[SERVICE], status="away")
    nobody = file_ticket(queue, "c-other", OTHER)  # nobody's skill
    away = file_ticket(queue, "c-svc", SERVICE)  # its only agent is away
    for ticket_id in (nobody, away):
        place = desk.place(ticket_id)
        assert place == QueuePlace(None, None, 0) and place.unstaffed
    assert desk.places()[nobody][1].unstaffed
    assert places(desk, file_ticket(queue, "c-reg", REG)) == [(1, 1)]  # reg is free
    # Claimed, resolved or unknown tickets have no place; a contact form filed after hours neither.
    assert desk.place(999) is None
    assert desk.place(file_ticket(queue, "c-form", REG, offline=True)) is None


def test_positions_follow_status_and_skill_changes(engine: Engine, desk: Desk, queue: Queue, clock: Clock) -> None:
    add_agent(engine, "reg", max_chats=1, skills=[REG])
    add_agent(engine, "svc", max_chats=1, skills=[SERVICE], status="offline")
    busy(queue, "reg", 1)
    service = file_ticket(queue, "c-svc", SERVICE)
    clock.offset += 1
    registration = file_ticket(queue, "c-reg", REG)
    assert desk.place(service) == QueuePlace(None, None, 0)
    assert places(desk, registration) == [(1, DEFAULT_HANDLING.seconds // 60)]
    # svc comes in: the サービスについて customer gets a place and an estimate.
    desk.update("svc", status="available")
    assert places(desk, service, registration) == [(1, 1), (1, 10)]
    # reg also takes サービスについて now: the older service ticket comes first for reg too.
    desk.update("reg", skills=[REG, SERVICE])
    assert places(desk, registration) == [(2, 20)]  # reg's one slot must free up twice
    # reg goes away: only svc (no 登録情報の変更) is left for the registration customer.
    desk.update("reg", status="away")
    assert desk.place(registration) == QueuePlace(None, None, 0)


def test_an_offered_ticket_is_next_and_offers_to_the_same_agents_come_first(
        engine: Engine, desk: Desk, queue: Queue, clock: Clock) -> None:
    add_agent(engine, "sato", max_chats=2)
    first = file_ticket(queue, "c-first")
    clock.offset += 1
    second = file_ticket(queue, "c-second")
    clock.offset += 1
    third = file_ticket(queue, "c-third")
    assert sorted(desk.assign().offered) == [first, second]  # sato's two slots
    # Both offers hold sato's slots: the third waits for one of the two chats to end (10 min / 2).
    assert places(desk, first, second, third) == [(1, 1), (1, 1), (3, 5)]
    # The offers run out (30 s): back in the queue's order, two free slots for the first two.
    clock.offset += 31
    assert places(desk, first, second, third) == [(1, 1), (2, 1), (3, 5)]


def test_an_offer_to_an_agent_who_does_not_take_the_category_holds_nobody_up(
        engine: Engine, desk: Desk, queue: Queue) -> None:
    add_agent(engine, "reg", max_chats=1, skills=[REG])
    add_agent(engine, "svc", max_chats=1, skills=[SERVICE])
    busy(queue, "reg", 1)
    service = file_ticket(queue, "c-svc", SERVICE)
    registration = file_ticket(queue, "c-reg", REG)
    assert desk.assign().offered == [service]  # to svc; reg is full
    assert places(desk, service, registration) == [(1, 1), (1, 10)]


def test_the_assigner_tells_the_customers_whose_place_moved(engine: Engine, desk: Desk, queue: Queue,
                                                            clock: Clock) -> None:
    add_agent(engine, "reg", skills=[REG], status="away")
    registration = file_ticket(queue, "c-reg", REG)
    service = file_ticket(queue, "c-svc", SERVICE)
    told: list[tuple[list[int], dict[int, Any]]] = []
    offered: list[int] = []

    async def moved(ranked: Any, ticket_ids: list[int]) -> None:
        told.append((ticket_ids, dict(ranked)))

    async def changed(ticket_ids: Any) -> None:
        offered.extend(ticket_ids)

    assigner = Assigner(desk, changed, on_moved=moved)
    asyncio.run(assigner.round())
    assert sorted(told[-1][0]) == sorted([registration, service])  # first round: everyone
    asyncio.run(assigner.round())
    assert len(told) == 1  # nothing moved: nobody is told again
    desk.update("reg", skills=[REG, SERVICE])  # away still: no place changes
    asyncio.run(assigner.round())
    assert len(told) == 1
    desk.update("reg", status="available")  # both are offered to reg: told through the offers
    asyncio.run(assigner.round())
    assert sorted(offered) == sorted([registration, service]) and len(told) == 1
    desk.update("reg", status="away")  # the offers go back; nobody is available for either
    asyncio.run(assigner.round())
    ids, ranked = told[-1]
    assert sorted(ids) == sorted([registration, service])
    assert ranked[service] == ("c-svc", QueuePlace(None, None, 0))


def until_my_echo(ws: Any, text: str) -> list[dict[str, Any]]:
    """The states pushed before the echo of a message the customer sends now (never blocks forever)."""
    time.sleep(1)  # the assigner ranks every 0.05 s
    ws.send_json({"type": "message", "text": text, "client_id": text})
    frames = frames_until(ws, lambda f: f["type"] == "message" and f["message"]["text"] == text)
    return [f["state"] for f in frames if f["type"] == "state"]


def test_the_customers_banner_follows_the_agents_status_with_an_honest_note(tmp_path: Path) -> None:
    with admin_and_agent(tmp_path / "bot.db") as (admin, agent, services):  # both agents offline
        with open_chat(admin) as (_, ws):
            ws.send_json({"type": "message", "text": "何度言ってもわからないのか、ふざけるな", "client_id": "1"})
            state = frames_until(ws, lambda f: f["type"] == "state")[-1]["state"]
            assert (state["mode"], state["position"], state["estimate_minutes"]) == ("waiting", None, None)
            assert state["wait_note"] == TEXT["no_agent_for_category"] and "目安" in state["wait_note"]
            assert agent.post("/api/desk/status", json={"status": "available"}).status_code == 200
            states = until_my_echo(ws, "まだですか")
            assert states, "no state was pushed"
            state = states[-1]
            assert (state["position"], state["estimate_minutes"], state["wait_note"]) == (1, 1, None)
            # Going away hands the offer back outside any assignment round's offers: the
            # assigner's ranking still tells the customer.
            assert agent.post("/api/desk/status", json={"status": "away"}).status_code == 200
            states = until_my_echo(ws, "まだでしょうか")
            assert states, "no state was pushed"
            state = states[-1]
            assert (state["mode"], state["position"], state["estimate_minutes"]) == ("waiting", None, None)
            assert state["wait_note"] == TEXT["no_agent_for_category"]


def test_ranking_the_whole_queue_at_once_agrees_with_ranking_one_ticket() -> None:
    """:func:`places_of` (the assigner's, one walk per set of agents) = :func:`place_of` (one customer's)."""
    rng = random.Random(14)
    categories = [REG, SERVICE, OTHER, "料金・請求", None]
    agents = [DeskAgent(f"a{n}", "A", "agent", rng.randint(1, 4), rng.choice(["available", "available", "away"]),
                        tuple(rng.sample(categories[:3], rng.randint(1, 2))), rng.randint(0, 2)) for n in range(12)]
    agents.append(DeskAgent("any", "A", "agent", 2, "away", (), 0))  # every category, but away
    start = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    waiting = [WaitingTicket(n, f"c{n}", rng.choice([0, 1, 2, 2]), start + dt.timedelta(seconds=rng.randint(0, 50)),
                             rng.choice(categories), rng.choice([None] * 8 + ["a1", "a2"])) for n in range(300)]
    handling = {}

    def typical(names: frozenset[str]) -> dt.timedelta:
        return handling.setdefault(names, dt.timedelta(minutes=rng.randint(3, 30)))

    ranked = places_of(waiting, agents, typical)
    assert len(ranked) == len(waiting)
    for ticket in waiting:
        serving = serving_agents(agents, ticket.category)
        names = frozenset(a.username for a in serving)
        assert ranked[ticket.id] == place_of(ticket, waiting, serving, handling.get(names, DEFAULT_HANDLING))
    assert {p.unstaffed for p in ranked.values()} == {True, False}  # 料金・請求: nobody available takes it
