"""The agent desk under load (#14 Proof): 20 agents with a cap of 3, 200 customers handing off in 60 s.

Usage::

    flock /tmp/bench.lock .venv/bin/python -m benchmarks.desk_load [--database postgresql|sqlite]
        [--agents 20] [--cap 3] [--customers 200] [--seconds 60] [--offer-seconds 30]

What one run does:

1. A fresh database (a new PostgreSQL database on 127.0.0.1:5432, dropped afterwards, or a
   SQLite file), ``--agents`` agents 対応可能 with a cap of ``--cap``: half take every category,
   the others one category of ``knowledge/`` each.
2. Two assigners (:class:`bot.server.assigner.Assigner`, one round a second, each on its own
   :class:`bot.store.desk.Desk` and engine: two bot servers) offer the waiting tickets.
3. ``--customers`` customers hand off at random moments within ``--seconds`` through
   :meth:`bot.store.queue.Queue.enqueue`, as the action server does: a random category (or
   none), one in ten a complaint (high priority), one in ten sends its handoff twice (the
   action server's retry).
4. Each agent is a thread doing what the console does: it polls its offers and accepts each
   after 0.5–3 s (the "slow" fifth of the agents let a third of their offers run out), writes
   a reply and resolves the chat after 5–25 s; a quarter of the agents also claim the oldest
   waiting ticket by hand now and then (refused at the cap, or when someone was quicker).
   One agent goes 離席 for 15 s in the middle (its offers go to the next agent).
5. A monitor reads one snapshot every 0.2 s (PostgreSQL: one REPEATABLE READ transaction):
   every agent's chats and live offers against the cap, and every waiting ticket without a
   live offer while an eligible agent — 対応可能, the ticket's category, a free slot, and not
   one who let this ticket go (unless all did: then all but the latest, as the desk does) —
   exists: how long in a row it waits so. It also records the longest time a ticket waited
   while *another* matching agent had a free slot even though it was offered (an offer a slow
   agent lets run out), for comparison with the offer timeout.

When every ticket is resolved (or after ``--drain`` s more) the database is checked: one ticket
per customer, every ticket claimed by one agent and resolved by that agent.

``--no-guard`` is a control run: claims skip the cap check (manual claims then go over the
cap), and the run must fail on it; it shows the monitor sees what it is meant to see.

Pass (exit code 0): no agent ever above the cap, no ticket left unoffered while an eligible
agent had a free slot for longer than ``--offer-seconds``, 0 tickets lost. Results: a table on
stdout with the commit and date, and ``results/bench/desk_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

from sqlalchemy import create_engine, select  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from benchmarks.provenance import run_provenance  # noqa: E402
from bot.handoff.packet import HandoffPacket, Turn  # noqa: E402
from bot.server.assigner import Assigner  # noqa: E402
from bot.settings import PROJECT_ROOT  # noqa: E402
from bot.store.database import make_engine  # noqa: E402
from bot.store.desk import Desk  # noqa: E402
from bot.store.models import Agent, Ticket, as_utc  # noqa: E402
from bot.settings import Limits  # noqa: E402
from bot.store.queue import Queue, QueueError  # noqa: E402
from bot.store.webhooks import WebhookOutbox  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from conftest import temporary_database  # noqa: E402 - the tests' throwaway databases

RESULTS = PROJECT_ROOT / "results" / "bench" / "desk_load.json"
ASSIGN_INTERVAL = 1.0
SNAPSHOT_SECONDS = 0.2
POLL_SECONDS = 0.3


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A SQLite file in a temporary folder, or a new PostgreSQL database dropped afterwards (as the tests make)."""
    with tempfile.TemporaryDirectory(prefix="bench-desk-") as folder, temporary_database(kind, Path(folder)) as url:
        yield url


def load_engine(url: str) -> Engine:
    """An engine with a connection for every thread of the run (the bot's own pool is smaller)."""
    if url.startswith("sqlite"):
        return create_engine(url, future=True, connect_args={"timeout": 30})
    return create_engine(url, future=True, pool_size=40, max_overflow=10)


@dataclass
class Tally:
    """What the threads saw (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: int = 0
    manual: int = 0
    refused: Counter = field(default_factory=Counter)  # why a claim was refused
    let_run_out: int = 0
    offered: int = 0
    expired: int = 0
    filed: dict[str, int] = field(default_factory=dict)  # customer -> ticket id
    errors: list[str] = field(default_factory=list)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, count in counts.items():
                setattr(self, name, getattr(self, name) + count)


class AgentBot(threading.Thread):
    """One agent at the console (see the module's docstring, step 4)."""

    def __init__(self, username: str, engine: Engine, desk: Desk, tally: Tally, stop: threading.Event,
                 seed: int, slow: bool, manual: bool, guarded: bool = True) -> None:
        super().__init__(name=f"agent-{username}", daemon=True)
        self.username, self.desk, self.tally, self.stop = username, desk, tally, stop
        self.queue = Queue(engine, limits=Limits(), webhooks=WebhookOutbox())
        self.random = random.Random(seed)
        self.slow, self.manual, self.guarded = slow, manual, guarded
        self.seen: set[tuple[int, float]] = set()
        self.accept_at: dict[int, float] = {}
        self.chats: dict[int, float] = {}

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step(time.monotonic())
                time.sleep(POLL_SECONDS)
        except Exception as exc:  # noqa: BLE001 - reported, the run fails
            self.tally.errors.append(f"{self.username}: {type(exc).__name__}: {exc}")

    def step(self, now: float) -> None:
        for ticket in self.desk.offers_for(self.username):
            key = (ticket.id, as_utc(ticket.offered_at).timestamp())
            if key in self.seen:
                continue
            self.seen.add(key)
            if self.slow and self.random.random() < 1 / 3:
                self.tally.add(let_run_out=1)
            else:
                self.accept_at[ticket.id] = now + self.random.uniform(0.5, 3.0)
        for ticket_id, moment in list(self.accept_at.items()):
            if now >= moment:
                del self.accept_at[ticket_id]
                self.claim(ticket_id, now, "accepted")
        if self.manual and self.random.random() < 0.05:
            waiting = [t for t in self.queue.open_tickets(limit=50) if t.status == "waiting"]
            if waiting:
                self.claim(waiting[0].id, now, "manual")
        for ticket_id, end in list(self.chats.items()):
            if now >= end:
                self.queue.resolve(ticket_id, agent=self.username)
                del self.chats[ticket_id]

    def claim(self, ticket_id: int, now: float, how: str) -> None:
        try:
            self.queue.claim(ticket_id, self.username,
                             guard=self.desk.slot_guard(self.username) if self.guarded else None)
        except QueueError as exc:
            with self.tally.lock:
                self.tally.refused["cap" if "同時対応数" in str(exc) else "taken"] += 1
            return
        self.tally.add(**{how: 1})
        self.queue.add_entry(ticket_id, "agent", "担当の者です。確認いたします。", self.username, self.username)
        self.chats[ticket_id] = now + self.random.uniform(5.0, 25.0)


@dataclass
class Watch:
    """The monitor's findings (see the module's docstring, step 5)."""

    max_chats: int = 0
    max_load: int = 0
    over_cap: list[str] = field(default_factory=list)
    snapshots: int = 0
    unoffered_since: dict[int, float] = field(default_factory=dict)
    longest_unoffered: float = 0.0
    passed_over_since: dict[int, float] = field(default_factory=dict)
    longest_passed_over: float = 0.0


def _eligible(agents: list[Any], load: Counter, ticket: Any, offered_to: str | None) -> list[str]:
    """Agents who could take ``ticket`` now: available, its category, a free slot, not its offer's agent."""
    return [a.username for a in agents if a.status == "available" and load[a.username] < a.max_chats
            and (not a.skills or ticket.category in a.skills) and a.username != offered_to]


def watch(engine: Engine, offer_seconds: int, stop: threading.Event, found: Watch, tally: Tally) -> None:
    """Snapshot the desk until ``stop`` (see the module's docstring, step 5); a failure fails the run."""
    try:
        _watch(engine, offer_seconds, stop, found)
    except Exception as exc:  # noqa: BLE001 - reported, the run fails
        tally.errors.append(f"monitor: {type(exc).__name__}: {exc}")


def _watch(engine: Engine, offer_seconds: int, stop: threading.Event, found: Watch) -> None:
    postgres = engine.dialect.name == "postgresql"
    while not stop.is_set():
        with engine.connect() as connection:
            if postgres:
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                agents = session.execute(select(Agent)).scalars().all()
                tickets = session.execute(select(Ticket).where(Ticket.status != "resolved")).scalars().all()
                moment = time.time()
        found.snapshots += 1
        live = {t.id for t in tickets if t.status == "waiting" and t.offered_to
                and moment - as_utc(t.offered_at).timestamp() < offer_seconds}
        chats = Counter(t.claimed_by for t in tickets if t.status == "claimed" and not t.offline)
        load = chats + Counter(t.offered_to for t in tickets if t.id in live)
        for agent in agents:
            found.max_chats, found.max_load = max(found.max_chats, chats[agent.username]), \
                max(found.max_load, load[agent.username])
            if load[agent.username] > agent.max_chats:
                found.over_cap.append(f"{agent.username}: {chats[agent.username]} chats + "
                                      f"{load[agent.username] - chats[agent.username]} offers > {agent.max_chats}")
        waiting = [t for t in tickets if t.status == "waiting" and not t.offline]
        for ticket in waiting:
            offered_to = ticket.offered_to if ticket.id in live else None
            free = _eligible(agents, load, ticket, offered_to)
            skipped = list(ticket.offer_skipped or [])
            fresh = [name for name in free if name not in skipped] or [name for name in free if skipped[-1:] != [name]]
            _track(found.unoffered_since, ticket.id, moment, bool(fresh) and offered_to is None)
            _track(found.passed_over_since, ticket.id, moment, bool(free))
        gone = {t.id for t in waiting}
        for since in (found.unoffered_since, found.passed_over_since):
            for ticket_id in [i for i in since if i not in gone]:
                since.pop(ticket_id)
        found.longest_unoffered = max([found.longest_unoffered, *(moment - s for s in found.unoffered_since.values())])
        found.longest_passed_over = max([found.longest_passed_over,
                                         *(moment - s for s in found.passed_over_since.values())])
        time.sleep(SNAPSHOT_SECONDS)


def _track(since: dict[int, float], ticket_id: int, moment: float, waiting_so: bool) -> None:
    """Start or end a ticket's run of snapshots in one condition."""
    if waiting_so:
        since.setdefault(ticket_id, moment)
    else:
        since.pop(ticket_id, None)


def assign(url: str, offer_seconds: int, tally: Tally, stop: threading.Event) -> None:
    """Two assigners (two bot servers), one round a second each, until ``stop``; a failure fails the run."""
    try:
        asyncio.run(_assign(url, offer_seconds, tally, stop))
    except Exception as exc:  # noqa: BLE001 - reported, the run fails
        tally.errors.append(f"assigner: {type(exc).__name__}: {exc}")


async def _assign(url: str, offer_seconds: int, tally: Tally, stop: threading.Event) -> None:
    async def server(desk: Desk) -> None:
        assigner = Assigner(desk, lambda changed: asyncio.sleep(0), ASSIGN_INTERVAL)
        while not stop.is_set():
            result = await assigner.round()
            tally.add(offered=len(result.offered), expired=len(result.expired))
            await asyncio.sleep(ASSIGN_INTERVAL)

    await asyncio.gather(*(server(Desk(load_engine(url), offer_seconds, 5)) for _ in range(2)))


def customers(engine: Engine, count: int, seconds: float, categories: list[str], tally: Tally, seed: int) -> None:
    """File ``count`` handoffs at random moments within ``seconds`` (see the module's docstring, step 3)."""
    rng = random.Random(seed)
    queue = Queue(engine, limits=Limits(), webhooks=WebhookOutbox())
    start = time.monotonic()
    for number, moment in enumerate(sorted(rng.uniform(0, seconds) for _ in range(count))):
        time.sleep(max(0.0, start + moment - time.monotonic()))
        complaint = rng.random() < 0.1
        packet = HandoffPacket(idempotency_key=f"desk-{number}:1", conversation_id=f"c-desk-{number}",
                               reasons=["complaint" if complaint else "human_request"],
                               transcript=[Turn("customer", "担当者と話したいです")],
                               category=rng.choice([*categories, None]))
        ticket, _ = queue.enqueue(packet)
        if rng.random() < 0.1:  # the action server's retry: the same ticket, not a second one
            again, created = queue.enqueue(packet)
            if created or again.id != ticket.id:
                tally.errors.append(f"retry of customer {number} filed ticket {again.id}")
        tally.filed[packet.conversation_id] = ticket.id


def check_tickets(engine: Engine, tally: Tally) -> dict[str, Any]:
    """Every customer's ticket, once, claimed and resolved by one agent."""
    with Session(engine) as session:
        rows = session.execute(select(Ticket)).scalars().all()
    per_customer = Counter(t.conversation_id for t in rows)
    lost = [c for c, ticket_id in tally.filed.items() if ticket_id not in {t.id for t in rows}]
    duplicated = [c for c, n in per_customer.items() if n > 1]
    unresolved = [t.id for t in rows if t.status != "resolved"]
    wrong = [t.id for t in rows if t.status == "resolved" and (not t.claimed_by or t.resolved_by != t.claimed_by)]
    waits = sorted((as_utc(t.claimed_at) - as_utc(t.created_at)).total_seconds() for t in rows if t.claimed_at)
    return {"tickets": len(rows), "lost": lost, "duplicated": duplicated, "unresolved": unresolved,
            "resolved_by_other": wrong,
            "wait_to_claim_s": {"p50": round(statistics.median(waits), 1) if waits else None,
                                "p95": round(waits[int(0.95 * (len(waits) - 1))], 1) if waits else None,
                                "max": round(waits[-1], 1) if waits else None}}


def add_agents(engine: Engine, count: int, cap: int, categories: list[str]) -> list[str]:
    """Half take every category, the others one each."""
    names = [f"agent{i:02d}" for i in range(count)]
    with Session(engine) as session, session.begin():
        for i, name in enumerate(names):
            skills = [] if i % 2 == 0 else [categories[(i // 2) % len(categories)]]
            session.add(Agent(username=name, display_name=name, password_hash="-", role="agent",
                              status="available", max_chats=cap, skills=skills))
    return names


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.server.desk_api import knowledge_categories

    categories = list(knowledge_categories())
    with fresh_database(args.database) as url:
        make_engine(url).dispose()  # migrated
        engine = load_engine(url)
        names = add_agents(engine, args.agents, args.cap, categories)
        tally, found, stop, done = Tally(), Watch(), threading.Event(), threading.Event()
        desk = Desk(engine, args.offer_seconds, 5)
        agents = [AgentBot(name, engine, desk, tally, stop, seed=i, slow=i % 5 == 4, manual=i % 4 == 1,
                           guarded=not args.no_guard) for i, name in enumerate(names)]
        background = [threading.Thread(target=assign, args=(url, args.offer_seconds, tally, stop), daemon=True),
                      threading.Thread(target=watch, args=(engine, args.offer_seconds, done, found, tally),
                                       daemon=True)]
        for thread in [*background, *agents]:
            thread.start()
        started = time.monotonic()
        arrivals = threading.Thread(target=customers, args=(engine, args.customers, args.seconds, categories, tally,
                                                            args.seed), daemon=True)
        arrivals.start()
        time.sleep(args.seconds / 2)
        desk.update(names[0], status="away")
        time.sleep(15)
        desk.update(names[0], status="available")
        arrivals.join()
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline and not tally.errors:
            with Session(engine) as session:
                if not session.execute(select(Ticket.id).where(Ticket.status != "resolved").limit(1)).first():
                    break
            time.sleep(1)
        elapsed = time.monotonic() - started
        done.set()
        time.sleep(1)  # the monitor's last snapshot
        stop.set()
        for thread in [*background, *agents]:
            thread.join(timeout=30)
        checked = check_tickets(engine, tally)
        engine.dispose()
    return {"database": args.database, "no_guard": args.no_guard, "agents": args.agents, "cap": args.cap, "customers": args.customers,
            "arrival_seconds": args.seconds, "offer_seconds": args.offer_seconds, "elapsed_s": round(elapsed, 1),
            "max_chats_per_agent": found.max_chats, "max_load_per_agent": found.max_load,
            "over_cap": found.over_cap[:10], "snapshots": found.snapshots,
            "longest_unoffered_with_free_agent_s": round(found.longest_unoffered, 1),
            "longest_offered_while_another_was_free_s": round(found.longest_passed_over, 1),
            "offers": tally.offered, "offers_expired": tally.expired, "offers_let_run_out": tally.let_run_out,
            "accepted": tally.accepted, "manual_claims": tally.manual, "claims_refused": dict(tally.refused),
            "errors": tally.errors[:10], **checked, "lost": len(checked["lost"])}


def passed(result: dict[str, Any]) -> bool:
    """The issue's three conditions (and no thread failed)."""
    return (result["snapshots"] >= result["elapsed_s"] and not result["over_cap"] and result["max_load_per_agent"] <= result["cap"]
            and result["longest_unoffered_with_free_agent_s"] <= result["offer_seconds"]
            and result["lost"] == 0 and not result["duplicated"] and not result["unresolved"]
            and not result["resolved_by_other"] and result["tickets"] == result["customers"] and not result["errors"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--cap", type=int, default=3)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0, help="the customers hand off within this time")
    parser.add_argument("--offer-seconds", type=int, default=30, help="BOT_DESK_OFFER_SECONDS (default 30)")
    parser.add_argument("--drain", type=float, default=180.0, help="time allowed after the last handoff")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--no-guard", action="store_true",
                        help="control run: claims skip the cap check, so the monitor must report agents over the cap")
    args = parser.parse_args(argv)
    result = {**run_provenance(PROJECT_ROOT / "models" / "current.tar.gz"), **run(args)}
    result["passed"] = passed(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    key = args.database + ("-no-guard" if args.no_guard else "")
    RESULTS.write_text(json.dumps({**earlier, key: result}, ensure_ascii=False, indent=1), encoding="utf-8")
    for name, value in result.items():
        print(f"{name:45} {value}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
