"""Escalation and transfers in the store (#15 items 1 and 2) on SQLite and PostgreSQL (127.0.0.1:5432).

Transfers to a colleague or back to the queue, escalation and a supervisor's join, whispers,
the ticket's history and the automatic escalation of complaint and anger tickets; every
refusal leaves the ticket as it was. Two supervisors joining one escalation at once, two
transfers of one ticket at once, two escalations at once (two clicks, or a click and the
automatic escalation): exactly one wins, the other gets a 409 that says why. Agents are
written straight into the table and the desk's clock is moved instead of waiting
(tests/test_desk.py's helpers).
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from bot import wording
from bot.store.desk import Desk
from bot.store.escalation import Escalations, Transfer
from bot.store.models import PRIORITY_ESCALATED, PRIORITY_HIGH, Ticket
from bot.store.queue import Queue, QueueError
from bot.store.webhooks import WebhookDeliveries, WebhookOutbox
from test_desk import Clock, add_agent, clock, database, desk, engine, file_ticket  # noqa: F401 - fixtures

TEXT = wording.ESCALATION_TEXT
AFTER = dt.timedelta(minutes=10)


@pytest.fixture()
def queue(engine: Engine) -> Queue:  # noqa: F811 - records the two new webhook events
    return Queue(engine, webhooks=WebhookOutbox({"ticket.transferred": ["crm"], "ticket.escalated": ["crm"]}))


@pytest.fixture()
def escalations(queue: Queue, desk: Desk) -> Escalations:  # noqa: F811
    for name, role in (("sato", "agent"), ("suzuki", "agent"), ("tanaka", "agent"), ("boss", "supervisor"),
                       ("chief", "admin")):
        add_agent(queue.engine, name, role=role)
    return Escalations(queue, desk)


def name(username: str) -> str:
    return username.upper()


def kinds(escalations: Escalations, ticket_id: int, viewer: str = "boss", supervisor: bool = True) -> list[str]:
    return [e.kind for e in escalations.history(ticket_id, viewer, supervisor)]


def claimed(queue: Queue, desk: Desk, key: str, agent: str = "sato", reasons: list[str] | None = None) -> int:  # noqa: F811
    ticket_id = file_ticket(queue, key, reasons=reasons)
    queue.claim(ticket_id, agent, desk.slot_guard(agent))
    return ticket_id


def test_transfer_to_a_colleague_then_back_to_the_queue_with_every_step_recorded(
        queue: Queue, desk: Desk, escalations: Escalations) -> None:  # noqa: F811
    ticket_id = claimed(queue, desk, "c1")
    ticket, previous = escalations.transfer(ticket_id, "sato", Transfer("解約の件は鈴木さんが詳しい", agent="suzuki"), name)
    assert (ticket.status, ticket.claimed_by, previous) == ("claimed", "suzuki", "sato")
    assert desk.agent("suzuki").chats == 1 and desk.agent("sato").chats == 0  # type: ignore[union-attr]
    ticket, _ = escalations.transfer(ticket_id, "suzuki", Transfer("<b>請求</b>の担当へ", category="サービスについて"), name)
    assert (ticket.status, ticket.claimed_by, ticket.category) == ("waiting", None, "サービスについて")
    events = escalations.history(ticket_id, "tanaka", supervisor=False)
    assert [(e.kind, e.actor, e.target, e.note) for e in events] == [
        ("claimed", "sato", None, None), ("transferred", "sato", "suzuki", "解約の件は鈴木さんが詳しい"),
        ("requeued", "suzuki", "サービスについて", "<b>請求</b>の担当へ")]
    lines = [e.text for e in queue.get(ticket_id).entries if e.sender == "system"]
    assert lines == [TEXT["record_transferred"].format(old="SATO", new="SUZUKI"),
                     TEXT["record_requeued"].format(old="SUZUKI", category="サービスについて")]
    # The round offers it to another available agent, never straight back to suzuki.
    desk.update("suzuki", status="available")
    desk.update("tanaka", status="available")
    for name_ in ("sato", "boss", "chief"):
        desk.update(name_, status="offline")
    desk.assign()
    assert queue.get(ticket_id, False).offered_to == "tanaka"
    sent = [d.event_type for d in WebhookDeliveries(queue.engine).for_ticket(ticket_id)]
    assert sent == ["ticket.transferred", "ticket.transferred"]


@pytest.mark.parametrize("case", ["unknown agent", "offline agent", "away agent", "full agent", "to the owner",
                                  "not the owner", "unknown ticket"])
def test_a_refused_transfer_says_why_in_japanese_and_changes_nothing(
        case: str, queue: Queue, desk: Desk, escalations: Escalations, clock: Clock) -> None:  # noqa: F811
    ticket_id = claimed(queue, desk, "c1")
    desk.update("tanaka", status="offline")
    desk.update("suzuki", status="away")
    desk.update("boss", max_chats=1)
    claimed(queue, desk, "c2", agent="boss")  # boss is at the cap
    username, to, status, message = {
        "unknown agent": ("sato", "ghost", 404, TEXT["unknown_agent"].format(username="ghost")),
        "offline agent": ("sato", "tanaka", 409, TEXT["unavailable"].format(name="TANAKA", status="オフライン")),
        "away agent": ("sato", "suzuki", 409, TEXT["unavailable"].format(name="SUZUKI", status="離席")),
        "full agent": ("sato", "boss", 409, TEXT["full"].format(name="BOSS", cap=1)),
        "to the owner": ("chief", "sato", 409, TEXT["to_self"].format(name="SATO")),
        "not the owner": ("tanaka", "chief", 409, TEXT["not_owner"].format(
            ticket_id=ticket_id, action="転送", status_ja="対応中")),
        "unknown ticket": ("sato", "chief", 404, wording.STORE_AGENT_TEXT["not_found"].format(ticket_id=99999)),
    }[case]
    target = 99999 if case == "unknown ticket" else ticket_id
    with pytest.raises(QueueError) as info:
        escalations.transfer(target, username, Transfer("理由", agent=to), name, supervisor=username == "chief")
    assert (info.value.status, str(info.value)) == (status, message)
    assert queue.get(ticket_id, False).claimed_by == "sato"
    assert kinds(escalations, ticket_id) == ["claimed"]
    assert WebhookDeliveries(queue.engine).for_ticket(ticket_id) == []


def test_escalate_then_one_supervisor_joins(queue: Queue, desk: Desk, escalations: Escalations) -> None:  # noqa: F811
    ticket_id = claimed(queue, desk, "c1")
    with pytest.raises(QueueError) as info:
        escalations.escalate(ticket_id, "suzuki", None, name)
    assert str(info.value) == TEXT["not_owner"].format(ticket_id=ticket_id, action="エスカレーション", status_ja="対応中")
    ticket = escalations.escalate(ticket_id, "sato", "暴言が続いています", name)
    assert (ticket.escalation, ticket.priority, ticket.claimed_by, ticket.escalated_by) == \
        ("requested", PRIORITY_ESCALATED, "sato", "sato")  # the agent stays in the chat
    assert queue.open_tickets()[0].id == ticket_id  # before every other ticket
    with pytest.raises(QueueError) as info:
        escalations.escalate(ticket_id, "sato", None, name)
    assert str(info.value) == TEXT["already_escalated"].format(ticket_id=ticket_id)
    ticket, previous = escalations.join(ticket_id, "boss", name)
    assert (ticket.status, ticket.claimed_by, ticket.escalation, ticket.joined_by, previous) == \
        ("claimed", "boss", "joined", "boss", "sato")
    for again, message in (("chief", TEXT["already_joined"].format(ticket_id=ticket_id, name="BOSS")),
                           ("boss", TEXT["already_yours"].format(ticket_id=ticket_id))):
        with pytest.raises(QueueError) as info:
            escalations.join(ticket_id, again, name)
        assert (info.value.status, str(info.value)) == (409, message)
    queue.resolve(ticket_id, agent="boss")
    for attempt in (lambda: escalations.escalate(ticket_id, "boss", None, name),
                    lambda: escalations.join(ticket_id, "chief", name)):
        with pytest.raises(QueueError) as info:
            attempt()
        assert "解決済みのため" in str(info.value)
    assert kinds(escalations, ticket_id) == ["claimed", "escalated", "joined", "resolved"]
    assert [d.event_type for d in WebhookDeliveries(queue.engine).for_ticket(ticket_id)] == ["ticket.escalated"]


def test_two_supervisors_joining_one_escalation_at_once_exactly_one_wins(
        queue: Queue, desk: Desk, escalations: Escalations) -> None:  # noqa: F811
    queue.webhooks = WebhookOutbox({"ticket.claimed": ["crm"], "ticket.escalated": ["crm"]})
    for round_ in range(4):
        ticket_id = claimed(queue, desk, f"c{round_}")
        escalations.escalate(ticket_id, "sato", None, name)
        start = threading.Barrier(2, timeout=10)

        def join(supervisor: str) -> Any:
            start.wait()
            try:
                return escalations.join(ticket_id, supervisor, name)[0].claimed_by
            except QueueError as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(join, ["boss", "chief"]))
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if isinstance(r, QueueError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert losers[0].status == 409
        assert str(losers[0]) == TEXT["already_joined"].format(ticket_id=ticket_id, name=winners[0].upper())
        assert queue.get(ticket_id, False).claimed_by == winners[0]
        assert kinds(escalations, ticket_id).count("joined") == 1
        # The winner's join, and only it, told the receivers who owns the chat now (same transaction).
        sent = WebhookDeliveries(queue.engine).for_ticket(ticket_id)
        assert [(d.event_type, d.data["claimed_by"]) for d in sent] == [
            ("ticket.claimed", "sato"), ("ticket.escalated", "sato"), ("ticket.claimed", winners[0])]
        queue.resolve(ticket_id, agent=winners[0])


def at_once(engine: Engine, ticket_id: int, *steps: Callable[[], Any]) -> list[Any]:
    """Run ``steps`` on threads so that every one has passed its checks before any of them commits.

    A third connection holds the ticket's row (PostgreSQL: ``SELECT … FOR UPDATE``) or the
    database's write lock (SQLite: ``BEGIN IMMEDIATE``) until each step has sent its first write
    or row lock (an engine listener sees it); each step waits there, so the race is decided by
    the steps' conditional UPDATEs and never by which thread happened to start first.

    Returns:
        Each step's result, or the :class:`QueueError` it raised.
    """
    workers: set[int] = set()
    writers: set[int] = set()
    all_there = threading.Event()
    start = threading.Barrier(len(steps))

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        locks = statement.lstrip().upper().startswith(("UPDATE", "INSERT")) or "FOR UPDATE" in statement.upper()
        if locks and threading.get_ident() in workers:
            writers.add(threading.get_ident())
            if len(writers) == len(steps):
                all_there.set()

    def run(step: Callable[[], Any]) -> Any:
        workers.add(threading.get_ident())
        start.wait()
        try:
            return step()
        except QueueError as exc:
            return exc

    holder = engine.connect()
    if engine.dialect.name == "sqlite":
        holder.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        holder.execute(select(Ticket.id).where(Ticket.id == ticket_id).with_for_update())
    event.listen(engine, "before_cursor_execute", seen)
    try:
        with ThreadPoolExecutor(len(steps)) as pool:
            running = [pool.submit(run, step) for step in steps]
            held = all_there.wait(10)
            holder.commit()  # let them go
            results = [future.result() for future in running]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
        holder.close()
    assert held, f"not every step got to its write: {results}"
    return results


def one_winner(results: list[Any]) -> tuple[int, QueueError]:
    """The index of the one step that succeeded, and the other's refusal (a 409)."""
    refused = [r for r in results if isinstance(r, QueueError)]
    assert len(refused) == len(results) - 1, results
    assert refused[0].status == 409, refused[0]
    return next(i for i, r in enumerate(results) if not isinstance(r, QueueError)), refused[0]


def test_two_transfers_of_one_ticket_at_once_exactly_one_wins_the_other_gets_a_clear_409(
        engine: Engine, queue: Queue, desk: Desk, escalations: Escalations) -> None:  # noqa: F811
    races = [  # (who, where, as a supervisor) twice
        (("sato", Transfer("解約の件", agent="suzuki"), False), ("sato", Transfer("解約の件", agent="tanaka"), False)),
        (("sato", Transfer("解約の件", agent="suzuki"), False), ("chief", Transfer("一覧に戻す"), True)),
    ]
    for round_, race in enumerate(races):
        ticket_id = claimed(queue, desk, f"t{round_}")
        results = at_once(engine, ticket_id, *(
            lambda who=who, to=to, boss=boss: escalations.transfer(ticket_id, who, to, name, supervisor=boss)
            for who, to, boss in race))
        won, refusal = one_winner(results)
        winner, loser = race[won], race[1 - won]
        ticket = queue.get(ticket_id, False)
        assert (ticket.claimed_by, ticket.status) == \
            (winner[1].agent, "claimed" if winner[1].agent else "waiting"), round_
        # The loser reads what a later click would: not theirs any more; a supervisor (who may transfer
        # anyone's claimed chat) that the chat changed meanwhile.
        if loser[2] and ticket.status == "claimed":
            expected = wording.STORE_AGENT_TEXT["changed_meanwhile"].format(ticket_id=ticket_id)
        else:
            expected = TEXT["not_owner"].format(ticket_id=ticket_id, action="転送",
                                                status_ja=wording.TICKET_STATUS_JA[ticket.status])
        assert str(refusal) == expected, round_
        assert kinds(escalations, ticket_id) == ["claimed", "transferred" if winner[1].agent else "requeued"]
        deliveries = WebhookDeliveries(queue.engine).for_ticket(ticket_id)
        assert [d.event_type for d in deliveries] == ["ticket.transferred"]
        if loser[1].agent is not None:  # the slot the loser reserved went back with its transaction
            assert desk.agent(loser[1].agent).chats == 0  # type: ignore[union-attr]
        queue.resolve(ticket_id, agent=ticket.claimed_by)


def test_two_escalations_of_one_ticket_at_once_exactly_one_wins_the_other_gets_a_clear_409(
        engine: Engine, queue: Queue, desk: Desk, escalations: Escalations, clock: Clock) -> None:  # noqa: F811
    # One agent, two tabs: one escalation; the other click is told it is escalated already.
    ticket_id = claimed(queue, desk, "e1")
    results = at_once(engine, ticket_id, *(lambda note=note: escalations.escalate(ticket_id, "sato", note, name)
                                           for note in ("一つ目", "二つ目")))
    won, refusal = one_winner(results)
    assert str(refusal) == TEXT["already_escalated"].format(ticket_id=ticket_id)
    assert [(e.kind, e.note) for e in escalations.history(ticket_id, "boss", True)][1:] == \
        [("escalated", ("一つ目", "二つ目")[won])]
    assert [d.event_type for d in WebhookDeliveries(queue.engine).for_ticket(ticket_id)] == ["ticket.escalated"]
    # The agent and the automatic escalation at the same moment: still one escalation.
    angry = claimed(queue, desk, "e2", reasons=["complaint"])
    clock.offset = AFTER.total_seconds() + 1
    manual, automatic = at_once(engine, angry, lambda: escalations.escalate(angry, "sato", None, name),
                                lambda: escalations.auto_escalate(AFTER, "理由", "記録"))
    if isinstance(manual, QueueError):
        assert (manual.status, str(manual)) == (409, TEXT["already_escalated"].format(ticket_id=angry))
        assert [t.id for t in automatic] == [angry]
    else:
        assert automatic == []
    assert [k for k in kinds(escalations, angry) if k.endswith("escalated")] in (["escalated"], ["auto_escalated"])
    assert [d.event_type for d in WebhookDeliveries(queue.engine).for_ticket(angry)] == ["ticket.escalated"]
    assert queue.get(angry, False).priority == PRIORITY_ESCALATED


def test_complaint_and_anger_tickets_are_escalated_once_after_the_wait(
        queue: Queue, desk: Desk, escalations: Escalations, clock: Clock) -> None:  # noqa: F811
    waiting_anger = file_ticket(queue, "w-anger", reasons=["anger"])
    waiting_normal = file_ticket(queue, "w-normal")
    claimed_silent = claimed(queue, desk, "c-silent", reasons=["complaint"])
    claimed_answered = claimed(queue, desk, "c-answered", reasons=["complaint"])
    queue.add_entry(claimed_answered, "agent", "お待たせいたしました。", "SATO")
    assert queue.get(waiting_anger, False).priority == PRIORITY_HIGH
    assert escalations.auto_escalate(AFTER, "理由", "記録") == []  # nobody has waited yet
    clock.offset = AFTER.total_seconds() + 1
    done = escalations.auto_escalate(AFTER, "理由", "記録")
    assert sorted(t.id for t in done) == sorted([waiting_anger, claimed_silent])
    assert all((t.escalation, t.escalated_by, t.priority) == ("requested", None, PRIORITY_ESCALATED) for t in done)
    assert escalations.auto_escalate(AFTER, "理由", "記録") == []  # once
    events = escalations.history(claimed_silent, "sato", supervisor=False)
    assert [(e.kind, e.actor, e.note) for e in events][-1] == ("auto_escalated", None, "理由")
    assert queue.get(claimed_silent).entries[-1].text == "記録"
    for ticket_id in (waiting_normal, claimed_answered):
        assert queue.get(ticket_id, False).escalation is None
    # The customer writes again (now, on the real clock) and waits a full period: escalated then.
    queue.add_entry(claimed_answered, "customer", "まだですか")
    clock.offset = AFTER.total_seconds() - 5
    assert escalations.auto_escalate(AFTER, "理由", "記録") == []
    clock.offset = AFTER.total_seconds() + 5
    assert [t.id for t in escalations.auto_escalate(AFTER, "理由", "記録")] == [claimed_answered]


def test_a_whisper_is_in_the_history_of_its_agent_and_supervisors_only(
        queue: Queue, desk: Desk, escalations: Escalations) -> None:  # noqa: F811
    ticket_id = claimed(queue, desk, "c1")
    escalations.whisper(ticket_id, "boss", '<script>alert(1)</script>まず謝罪を')
    assert [e.sender for e in queue.get(ticket_id).entries] == ["customer"]  # never in the transcript
    assert kinds(escalations, ticket_id, "sato", supervisor=False) == ["claimed", "whisper"]
    assert kinds(escalations, ticket_id, "chief", supervisor=True) == ["claimed", "whisper"]
    assert kinds(escalations, ticket_id, "tanaka", supervisor=False) == ["claimed"]
    event = escalations.history(ticket_id, "sato", supervisor=False)[-1]
    assert (event.actor, event.target, event.note) == ("boss", "sato", '<script>alert(1)</script>まず謝罪を')
    waiting = file_ticket(queue, "c2")
    with pytest.raises(QueueError) as info:
        escalations.whisper(waiting, "boss", "x")
    assert str(info.value) == TEXT["no_agent"].format(ticket_id=waiting)
    escalations.transfer(ticket_id, "sato", Transfer("責任者へ", agent="boss"), name)
    with pytest.raises(QueueError) as info:  # one's own chat: a note, not a whisper
        escalations.whisper(ticket_id, "boss", "x")
    assert str(info.value) == TEXT["whisper_self"].format(ticket_id=ticket_id)
