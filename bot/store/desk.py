"""The agent desk: roles, concurrent-chat caps, status and skills; offers of waiting tickets.

Each agent has a role (``agent`` / ``supervisor`` / ``admin``; supervisors and admins take
escalations and see every chat, bot/store/escalation.py), a cap on concurrent chats (同時対応数), a
status (対応可能 / 離席 / オフライン) and skills (knowledge categories; none = every
category). :meth:`Desk.assign` offers each waiting ticket, high priority first, to the
available agent with a free slot and the ticket's category who has waited longest since
their last claim or offer; an offer not accepted within ``offer_seconds`` goes to the next
agent. A claim (manual, or accepting an offer) stays within the cap
(:meth:`Desk.slot_guard`).

Several bot servers run :meth:`Desk.assign` at once on one database, so every change is
safe against another server's: an agent's load is counted after an UPDATE of the agent's
row (a row lock on PostgreSQL, the write lock on SQLite), so two offers or claims for one
agent are counted one after the other; a ticket is offered by a conditional UPDATE (only
while nobody has it), as :meth:`bot.store.queue.Queue.claim` does.

Load = claimed live chats + offers not expired yet; tickets filed outside staffed hours
(contact forms) count for no one.

A waiting customer's queue position and wait estimate follow the same rules (:meth:`Desk.place`,
bot/store/queue_place.py): only the available agents who take the ticket's category count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import wording
from bot.store.audit import record_audit
from bot.store.desk_settings import DeskSettings
from bot.store.models import Agent, Ticket, as_utc
from bot.store.queue import QueueError, SlotGuard, ahead_of
from bot.store.queue_place import (DEFAULT_HANDLING, QueuePlace, WaitingTicket, place_of, places_of,
                                   serving_agents)

ROLES = {"agent": "担当者", "supervisor": "責任者", "admin": "管理者"}
# Roles that take escalations, watch every chat and whisper (an admin can do all a supervisor can).
SUPERVISING_ROLES = ("supervisor", "admin")
STATUSES = {"available": "対応可能", "away": "離席", "offline": "オフライン"}
DEFAULT_MAX_CHATS = 3
MAX_CHATS_LIMIT = 20  # beyond this no one answers chats well; a typo (30 for 3) is refused
ASSIGN_BATCH = 100  # waiting tickets looked at per round (highest priority, oldest first)
OVERDUE_PAGE = 50
PLACES_LIMIT = 1000  # waiting tickets ranked per round for the customers' positions
HANDLING_SAMPLE = 50  # latest chats whose median handling time makes the wait estimate

TEXT = wording.DESK_TEXT
Clock = Callable[[], float]
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class DeskError(ValueError):
    """A desk setting refused; the message says why (Japanese), ``status`` is for the API."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class _Refused(Exception):
    """An offer found impossible inside its transaction: roll it back."""


@dataclass(frozen=True)
class DeskAgent:
    """An agent as the desk sees them.

    Attributes:
        username: User name.
        display_name: Display name.
        role: ``agent``, ``supervisor`` or ``admin``.
        max_chats: Cap on concurrent chats (同時対応数).
        status: ``available``, ``away`` or ``offline``.
        skills: Categories they take; empty: every category.
        chats: Claimed live chats now.
        offers: Offers to them not expired yet.
        last_assigned_at: Their latest claim or offer (``None``: never).
    """

    username: str
    display_name: str
    role: str
    max_chats: int
    status: str
    skills: tuple[str, ...]
    chats: int = 0
    offers: int = 0
    last_assigned_at: dt.datetime | None = None

    @property
    def load(self) -> int:
        """Chats plus pending offers: what counts against the cap."""
        return self.chats + self.offers

    def takes(self, category: str | None) -> bool:
        """Whether a ticket of ``category`` may be offered to them (no category: anyone)."""
        return not self.skills or category is None or category in self.skills

    def json(self) -> dict[str, Any]:
        """The API shape (labels in Japanese)."""
        return {"username": self.username, "display_name": self.display_name, "role": self.role,
                "role_label": ROLES.get(self.role, self.role), "max_chats": self.max_chats,
                "status": self.status, "status_label": STATUSES.get(self.status, self.status),
                "skills": list(self.skills), "chats": self.chats, "offers": self.offers, "load": self.load}


@dataclass
class AssignmentRound:
    """What one :meth:`Desk.assign` changed: ids of tickets offered now, and of offers that ran out."""

    offered: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


def parse_max_chats(value: Any) -> int:
    """A cap from the CLI or the API (a whole number, or its digits).

    Raises:
        DeskError: Not a whole number from 1 to :data:`MAX_CHATS_LIMIT` (0, negative, absurd, text).
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 1 <= number <= MAX_CHATS_LIMIT:
        raise DeskError(TEXT["bad_max_chats"].format(low=1, high=MAX_CHATS_LIMIT, value=str(value)[:40]))
    return number


def check_role(value: Any) -> str:
    """``agent``, ``supervisor`` or ``admin``.

    Raises:
        DeskError: Anything else.
    """
    if value not in ROLES:
        raise DeskError(TEXT["bad_role"].format(value=str(value)[:40]))
    return str(value)


def check_status(value: Any) -> str:
    """``available``, ``away`` or ``offline``.

    Raises:
        DeskError: Anything else.
    """
    if value not in STATUSES:
        raise DeskError(TEXT["bad_status"].format(value=str(value)[:40]))
    return str(value)


def check_skills(skills: Any, categories: Sequence[str]) -> tuple[str, ...]:
    """Skills as stored: known categories, each once, in the knowledge's order.

    Args:
        skills: A list of category names (empty: every category).
        categories: The categories of ``knowledge/`` (:attr:`KnowledgeBase.categories`).

    Raises:
        DeskError: Not a list of strings, or a name that is no category (all such names
            and the known categories are listed).
    """
    if not isinstance(skills, (list, tuple)) or not all(isinstance(s, str) for s in skills):
        raise DeskError(TEXT["bad_skills"])
    wanted = {s.strip() for s in skills if s.strip()}
    unknown = sorted(wanted - set(categories))
    if unknown:
        raise DeskError(TEXT["unknown_skills"].format(skills="」「".join(s[:40] for s in unknown[:10]),
                                                      known="、".join(categories)))
    return tuple(c for c in categories if c in wanted)


class Desk:
    """Desk settings of the agents and the offers of waiting tickets, on one database.

    Attributes:
        offer_seconds: An offer not accepted within this many seconds goes to the next agent
            (0: no automatic offers).
        reply_overdue_minutes: A claimed ticket whose customer waits this long for a reply is
            flagged (0: never).
        clock: ``time.time`` by default; tests move it.
    """

    def __init__(self, engine: Engine, offer_seconds: int | None = None, reply_overdue_minutes: int | None = None,
                 clock: Clock = time.time) -> None:
        """Use ``engine``; ``None`` settings are read from :func:`bot.settings.get_settings`."""
        if offer_seconds is None or reply_overdue_minutes is None:
            from bot.settings import get_settings

            settings = get_settings()
            offer_seconds = settings.offer_seconds if offer_seconds is None else offer_seconds
            if reply_overdue_minutes is None:
                reply_overdue_minutes = settings.reply_overdue_minutes
        self._db = sessionmaker(engine, expire_on_commit=False, future=True)
        self.start_offer_seconds = offer_seconds
        self.start_reply_overdue_minutes = reply_overdue_minutes
        self.clock = clock
        # Admins' values set in the console (Stores attaches them); without: the start values.
        self.settings: DeskSettings | None = None

    @property
    def offer_seconds(self) -> int:
        """The offer timeout in force: an admin's value (:mod:`bot.store.desk_settings`) or the start value."""
        return int(self.settings.value("offer_seconds")) if self.settings is not None else self.start_offer_seconds

    @property
    def reply_overdue_minutes(self) -> int:
        """The late-reply flag in force: an admin's value or the start value."""
        if self.settings is not None:
            return int(self.settings.value("reply_overdue_minutes"))
        return self.start_reply_overdue_minutes

    def now(self) -> dt.datetime:
        """The desk's current time (UTC)."""
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    # ---- conditions --------------------------------------------------------------------

    def _offer_cutoff(self, now: dt.datetime) -> dt.datetime:
        return now - dt.timedelta(seconds=self.offer_seconds)

    def _live_offer(self, now: dt.datetime) -> Any:
        return and_(Ticket.status == "waiting", Ticket.offered_to.is_not(None),
                    Ticket.offered_at > self._offer_cutoff(now))

    @staticmethod
    def _live_chat() -> Any:
        return and_(Ticket.status == "claimed", Ticket.offline.is_(False))

    def offer_expires_at(self, ticket: Ticket) -> dt.datetime | None:
        """When the offer of ``ticket`` runs out (``None``: not offered)."""
        if ticket.status != "waiting" or not ticket.offered_to or ticket.offered_at is None:
            return None
        return as_utc(ticket.offered_at) + dt.timedelta(seconds=self.offer_seconds)

    def is_overdue(self, ticket: Ticket, now: dt.datetime | None = None) -> bool:
        """Whether the customer of a claimed ticket has waited too long for the agent's reply."""
        if not self.reply_overdue_minutes or ticket.status != "claimed" or ticket.awaiting_reply_since is None:
            return False
        waited = (now or self.now()) - as_utc(ticket.awaiting_reply_since)
        return waited >= dt.timedelta(minutes=self.reply_overdue_minutes)

    # ---- agents ------------------------------------------------------------------------

    def _loads(self, session: Session, now: dt.datetime) -> dict[str, tuple[int, int]]:
        """User name → (chats, live offers), two grouped COUNTs."""
        chats = dict(session.execute(select(Ticket.claimed_by, func.count()).where(self._live_chat())
                                     .group_by(Ticket.claimed_by)).all())
        offers = dict(session.execute(select(Ticket.offered_to, func.count()).where(self._live_offer(now))
                                      .group_by(Ticket.offered_to)).all())
        return {name: (int(chats.get(name, 0)), int(offers.get(name, 0))) for name in {*chats, *offers}}

    @staticmethod
    def _agent(row: Agent, load: tuple[int, int]) -> DeskAgent:
        return DeskAgent(row.username, row.display_name, row.role, int(row.max_chats), row.status,
                         tuple(row.skills or ()), load[0], load[1],
                         as_utc(row.last_assigned_at) if row.last_assigned_at else None)

    def agents(self) -> list[DeskAgent]:
        """Every agent with their load, by user name."""
        now = self.now()
        with self._db() as session:
            loads = self._loads(session, now)
            rows = session.execute(select(Agent).order_by(Agent.username)).scalars().all()
        return [self._agent(row, loads.get(row.username, (0, 0))) for row in rows]

    def agent(self, username: str) -> DeskAgent | None:
        """One agent with their load, or ``None``."""
        now = self.now()
        with self._db() as session:
            row = session.execute(select(Agent).where(Agent.username == username)).scalar_one_or_none()
            if row is None:
                return None
            return self._agent(row, self._load_of(session, username, now))

    def _load_of(self, session: Session, username: str, now: dt.datetime, besides: int | None = None) -> tuple[int, int]:
        """(chats, live offers) of one agent, leaving out ticket ``besides``."""
        other = [Ticket.id != besides] if besides is not None else []
        chats = session.execute(select(func.count()).select_from(Ticket)
                                .where(self._live_chat(), Ticket.claimed_by == username, *other)).scalar_one()
        offers = session.execute(select(func.count()).select_from(Ticket)
                                 .where(self._live_offer(now), Ticket.offered_to == username, *other)).scalar_one()
        return int(chats), int(offers)

    def role_of(self, username: str) -> str | None:
        """The agent's role (``None``: no such agent)."""
        with self._db() as session:
            return session.execute(select(Agent.role).where(Agent.username == username)).scalar()

    def is_admin(self, username: str) -> bool:
        """Whether ``username`` is an admin."""
        return self.role_of(username) == "admin"

    def is_supervisor(self, username: str) -> bool:
        """Whether ``username`` takes escalations and watches every chat (a supervisor or an admin)."""
        return self.role_of(username) in SUPERVISING_ROLES

    def update(self, username: str, role: str | None = None, max_chats: int | None = None,
               status: str | None = None, skills: Iterable[str] | None = None,
               changed_by: str | None = None) -> DeskAgent:
        """Change an agent's desk settings (values already checked: :func:`check_role` …).

        Going away or offline hands back the offers the agent had (to the next agent).
        ``changed_by``: an admin (or ``cli:…``) changing another's settings; what changed goes
        into the audit log in the same transaction (an agent's own status is not logged).

        Raises:
            DeskError: 404 no such agent; 409 the last admin would stop being one.
        """
        now = self.now()
        with self._db() as session, session.begin():
            # Admins' rows first, in one order: two admins demoting each other wait, not both win.
            admins = session.execute(select(Agent.username).where(Agent.role == "admin").order_by(Agent.id)
                                     .with_for_update()).scalars().all()
            row = session.execute(select(Agent).where(Agent.username == username)
                                  .with_for_update()).scalar_one_or_none()
            if row is None:
                raise DeskError(wording.STORE_AGENT_TEXT["unknown_agent"].format(username=username), status=404)
            if role is not None and role != "admin" and row.role == "admin" and list(admins) == [username]:
                raise DeskError(TEXT["last_admin"].format(username=username), status=409)
            before = {"role": row.role, "max_chats": row.max_chats, "status": row.status, "skills": list(row.skills or [])}
            if role is not None:
                row.role = role
            if max_chats is not None:
                row.max_chats = max_chats
            if skills is not None:
                row.skills = list(skills)
            after = {"role": row.role, "max_chats": row.max_chats, "status": status or row.status,
                     "skills": list(row.skills or [])}
            changes = {name: [before[name], after[name]] for name in before if before[name] != after[name]}
            if changed_by is not None and changes:
                record_audit(session, "agent.changed", changed_by, username, {"changes": changes})
            if status is not None:
                row.status = status
                if status != "available":
                    self._release_offers(session, username, now)
        found = self.agent(username)
        assert found is not None  # just updated
        return found

    def _release_offers(self, session: Session, username: str, now: dt.datetime) -> list[int]:
        """End ``username``'s offers (declined, expired, gone away); the agent is skipped next time."""
        rows = session.execute(select(Ticket.id, Ticket.offer_skipped).where(
            Ticket.status == "waiting", Ticket.offered_to == username)).all()
        return [ticket_id for ticket_id, skipped in rows
                if self._release_offers_of(session, ticket_id, username, skipped)]

    # ---- claims within the cap ---------------------------------------------------------

    def slot_guard(self, username: str) -> SlotGuard:
        """The check a claim or take-over runs first in its transaction (see :meth:`Queue.claim`).

        It updates the agent's row (``last_assigned_at``): that locks it, so claims and
        offers for one agent are counted one at a time on every bot server. A ticket filed
        outside staffed hours (a contact form) is no chat and needs no slot; an unknown
        user name has no cap.

        Raises (from the guard):
            QueueError: 409 the agent's chats and pending offers (other than this ticket's)
                reach the cap.
        """
        def guard(session: Session, ticket_id: int) -> None:
            if session.execute(select(Ticket.offline).where(Ticket.id == ticket_id)).scalar():
                return
            if self.take_slot(session, username, ticket_id) == "full":
                cap = int(session.execute(select(Agent.max_chats).where(Agent.username == username)).scalar_one())
                raise QueueError(TEXT["full"].format(cap=cap, ticket_id=ticket_id), status=409)

        return guard

    def take_slot(self, session: Session, username: str, ticket_id: int, available_only: bool = False) -> str | None:
        """Lock the agent's row (``last_assigned_at``) and see whether ticket ``ticket_id`` fits their cap.

        Runs in the caller's transaction, before the ticket is locked (claims, take-overs and
        transfers lock in this order, so they wait for each other instead of deadlocking).

        Args:
            session: The caller's transaction.
            username: The agent who would get the chat.
            ticket_id: The ticket (not counted in their load).
            available_only: Refuse an agent who is not 対応可能 (a transfer to a colleague).

        Returns:
            ``None`` when the chat fits; ``"unknown"`` (no such agent), ``"unavailable"``
            (away or offline, with ``available_only``) or ``"full"`` (cap reached).
        """
        now = self.now()
        available = [Agent.status == "available"] if available_only else []
        touched = session.execute(update(Agent).where(Agent.username == username, *available)
                                  .values(last_assigned_at=now)
                                  .execution_options(synchronize_session=False)).rowcount
        if not touched:
            known = session.execute(select(Agent.id).where(Agent.username == username)).first() is not None
            return "unavailable" if known else "unknown"
        cap = int(session.execute(select(Agent.max_chats).where(Agent.username == username)).scalar_one())
        return "full" if sum(self._load_of(session, username, now, besides=ticket_id)) >= cap else None

    # ---- offers ------------------------------------------------------------------------

    def decline(self, ticket_id: int, username: str) -> None:
        """The agent lets an offer go: the next round offers it to someone else.

        Raises:
            QueueError: 409 the ticket is not offered to ``username`` (any more).
        """
        now = self.now()
        with self._db() as session, session.begin():
            skipped = session.execute(select(Ticket.offer_skipped).where(
                Ticket.id == ticket_id, self._live_offer(now), Ticket.offered_to == username)).first()
            if skipped is None or not self._release_offers_of(session, ticket_id, username, skipped[0]):
                raise QueueError(TEXT["not_offered"].format(ticket_id=ticket_id), status=409)

    @staticmethod
    def _release_offers_of(session: Session, ticket_id: int, username: str, skipped: list[str] | None) -> bool:
        """End the offer of one ticket to ``username`` (skipped next time); False if it had ended."""
        return bool(session.execute(update(Ticket).where(Ticket.id == ticket_id, Ticket.status == "waiting",
                                                         Ticket.offered_to == username)
                                    .values(offered_to=None, offered_at=None,
                                            offer_skipped=[*(skipped or []), username])
                                    .execution_options(synchronize_session=False)).rowcount)

    def offers_for(self, username: str) -> list[Ticket]:
        """Tickets offered to ``username`` now, oldest offer first."""
        now = self.now()
        with self._db() as session:
            return list(session.execute(select(Ticket).where(self._live_offer(now), Ticket.offered_to == username)
                                        .order_by(Ticket.offered_at, Ticket.id)).scalars())

    def overdue(self, limit: int = OVERDUE_PAGE) -> list[Ticket]:
        """Claimed tickets whose customer has waited too long for a reply, longest first."""
        if not self.reply_overdue_minutes:
            return []
        since = self.now() - dt.timedelta(minutes=self.reply_overdue_minutes)
        with self._db() as session:
            return list(session.execute(select(Ticket).where(Ticket.status == "claimed",
                                                             Ticket.awaiting_reply_since <= since)
                                        .order_by(Ticket.awaiting_reply_since, Ticket.id).limit(limit)).scalars())

    # ---- customers' places ----------------------------------------------------------------

    def _available(self, session: Session, now: dt.datetime) -> list[DeskAgent]:
        """The available agents with their load (no query beyond the agents when there are none)."""
        rows = session.execute(select(Agent).where(Agent.status == "available")).scalars().all()
        if not rows:
            return []
        loads = self._loads(session, now)
        return [self._agent(row, loads.get(row.username, (0, 0))) for row in rows]

    def _waiting(self, session: Session, now: dt.datetime, *conditions: Any,
                 limit: int = PLACES_LIMIT) -> list[WaitingTicket]:
        """Waiting live tickets (and ``conditions``) in the desk's order; offers that ran out are no offers."""
        cutoff = self._offer_cutoff(now)
        rows = session.execute(select(Ticket.id, Ticket.conversation_id, Ticket.priority, Ticket.created_at,
                                      Ticket.category, Ticket.offered_to, Ticket.offered_at)
                               .where(Ticket.status == "waiting", Ticket.offline.is_(False), *conditions)
                               .order_by(Ticket.priority, Ticket.created_at, Ticket.id).limit(limit)).all()
        return [WaitingTicket(ticket_id, conversation_id, priority, as_utc(created_at), category,
                              offered_to if offered_to and offered_at and as_utc(offered_at) > cutoff else None)
                for ticket_id, conversation_id, priority, created_at, category, offered_to, offered_at in rows]

    @staticmethod
    def _handling(session: Session, usernames: Iterable[str]) -> dt.timedelta:
        """Median handling time (claim to resolve) of the latest chats of ``usernames``.

        Their own chats first; when they resolved none yet, every agent's; else
        :data:`DEFAULT_HANDLING`.
        """
        names = sorted(usernames)
        for whose in ([Ticket.claimed_by.in_(names)], []):
            rows = session.execute(select(Ticket.claimed_at, Ticket.resolved_at).where(
                Ticket.resolution == "resolved", Ticket.offline.is_(False), Ticket.claimed_at.is_not(None),
                Ticket.resolved_at.is_not(None), *whose)
                .order_by(Ticket.resolved_at.desc()).limit(HANDLING_SAMPLE)).all()
            times = sorted(as_utc(resolved) - as_utc(claimed) for claimed, resolved in rows)
            if times:
                return times[len(times) // 2]
        return DEFAULT_HANDLING

    def place(self, ticket_id: int) -> QueuePlace | None:
        """The queue position and wait estimate of a waiting ticket (bot/store/queue_place.py).

        Returns:
            ``None`` when the ticket is not waiting (claimed, resolved, unknown) or is a
            contact form filed outside staffed hours.
        """
        now = self.now()
        with self._db() as session:
            mine = session.execute(select(Ticket).where(Ticket.id == ticket_id, Ticket.status == "waiting",
                                                        Ticket.offline.is_(False))).scalar_one_or_none()
            if mine is None:
                return None
            serving = serving_agents(self._available(session, now), mine.category)
            if not serving:
                return QueuePlace(None, None, 0)
            me = self._waiting(session, now, Ticket.id == ticket_id)[0]
            before = self._waiting(session, now, or_(ahead_of(mine), self._live_offer(now)))
            return place_of(me, before, serving, self._handling(session, [a.username for a in serving]))

    def places(self, limit: int = PLACES_LIMIT) -> dict[int, tuple[str, QueuePlace]]:
        """:meth:`place` of the first ``limit`` waiting live tickets at once (a few queries in all).

        Returns:
            Ticket id → (conversation id, place).
        """
        now = self.now()
        with self._db() as session:
            waiting = self._waiting(session, now, limit=limit)
            if not waiting:
                return {}
            ranked = places_of(waiting, self._available(session, now), lambda names: self._handling(session, names))
        return {ticket.id: (ticket.conversation_id, ranked[ticket.id]) for ticket in waiting}

    # ---- offers (continued) ------------------------------------------------------------

    def assign(self) -> AssignmentRound:
        """One round: end expired offers, then offer waiting tickets to free agents.

        Tickets go high priority first, then oldest first; each to the available agent
        with a free slot and the ticket's category (or no skills) whose latest claim or
        offer is the oldest, skipping the agents who let this ticket go. When every such
        agent let it go, the round starts again without them but the latest one.

        Returns:
            The tickets offered and the offers that ran out in this round.
        """
        done = AssignmentRound()
        if self.offer_seconds <= 0:
            return done
        now = self.now()
        cutoff = self._offer_cutoff(now)
        with self._db() as session, session.begin():
            expired = session.execute(select(Ticket.id, Ticket.offered_to, Ticket.offer_skipped).where(
                Ticket.status == "waiting", Ticket.offered_to.is_not(None), Ticket.offered_at <= cutoff)).all()
            for ticket_id, username, skipped in expired:
                if self._release_offers_of(session, ticket_id, username, skipped):
                    done.expired.append(ticket_id)
        with self._db() as session:
            agents = self._available(session, now)
            if not agents:  # nobody to offer to: no more queries this round
                return done
            tickets = session.execute(select(Ticket.id, Ticket.category, Ticket.offer_skipped).where(
                Ticket.status == "waiting", Ticket.offline.is_(False),
                or_(Ticket.offered_to.is_(None), Ticket.offered_at <= cutoff))
                .order_by(Ticket.priority, Ticket.created_at, Ticket.id).limit(ASSIGN_BATCH)).all()
        free = {a.username: a for a in agents if a.load < a.max_chats}
        for ticket_id, category, skipped in tickets:
            if not free:
                break
            matching = [a for a in free.values() if a.takes(category)]
            skipped = list(skipped or [])
            fresh = [a for a in matching if a.username not in skipped]
            if not fresh and matching and skipped:  # everyone let it go: start again, the latest last
                skipped = skipped[-1:]
                fresh = [a for a in matching if a.username not in skipped]
            if not fresh:
                continue
            chosen = min(fresh, key=lambda a: (a.last_assigned_at or _EPOCH, a.username))
            refused = self._offer(ticket_id, chosen.username, skipped, now)
            if refused == "agent":
                free.pop(chosen.username)  # its load or status changed meanwhile: counted again next round
            if refused:
                continue  # or the ticket was claimed or offered meanwhile (another server)
            done.offered.append(ticket_id)
            chosen = dataclasses.replace(chosen, offers=chosen.offers + 1, last_assigned_at=now)
            free[chosen.username] = chosen
            if chosen.load >= chosen.max_chats:
                free.pop(chosen.username)
        return done

    def _offer(self, ticket_id: int, username: str, skipped: list[str], now: dt.datetime) -> str | None:
        """Offer one ticket to one agent, atomically.

        Returns:
            ``None`` when offered; ``"agent"`` when the agent can take no more (or went away),
            ``"ticket"`` when the ticket was claimed or offered meanwhile.
        """
        try:
            with self._db() as session, session.begin():
                touched = session.execute(update(Agent).where(Agent.username == username, Agent.status == "available")
                                          .values(last_assigned_at=now)
                                          .execution_options(synchronize_session=False)).rowcount
                if not touched:
                    raise _Refused("agent")
                row = session.execute(select(Agent).where(Agent.username == username)).scalar_one()
                category = session.execute(select(Ticket.category).where(Ticket.id == ticket_id)).scalar()
                if not self._agent(row, (0, 0)).takes(category) \
                        or sum(self._load_of(session, username, now)) >= int(row.max_chats):
                    raise _Refused("agent")
                offered = session.execute(update(Ticket).where(
                    Ticket.id == ticket_id, Ticket.status == "waiting", Ticket.offline.is_(False),
                    or_(Ticket.offered_to.is_(None), Ticket.offered_at <= self._offer_cutoff(now)))
                    .values(offered_to=username, offered_at=now, offer_skipped=skipped)
                    .execution_options(synchronize_session=False)).rowcount
                if offered != 1:
                    raise _Refused("ticket")
        except _Refused as refused:
            return str(refused)
        return None
