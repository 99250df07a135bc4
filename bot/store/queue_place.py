"""Where a waiting customer stands: queue position and wait estimate from the real assignment.

The desk (bot/store/desk.py) offers waiting tickets high priority first (escalations, then
complaints and anger), then oldest first, each only to an available agent whose skills take
the ticket's category. A customer's place follows the same rules:

- the agents who can serve the ticket are the available ones who take its category (no
  skills: every category);
- the position is 1 + the waiting tickets those agents will serve before it: the tickets
  offered to one of them now, and the tickets not offered yet that come first in the order
  and that one of them can take (a ticket of a category none of them takes does not hold the
  customer up, however old it is);
- the estimate is how long until one of those agents has a slot for it: at once when their
  free slots outnumber the tickets before it, else one chat must end per ticket left over,
  and their slots free up at ``slots / handling time`` (the median handling time of their
  recent chats, :data:`DEFAULT_HANDLING` when they have none).

When no available agent takes the category, nobody will serve the ticket until an agent
comes back or their skills change: there is no position nor estimate, and the customer is
told so (:attr:`QueuePlace.unstaffed`), rather than shown a figure made up from other agents.

Everything here is computed from plain values (no database): the desk reads them.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

DEFAULT_HANDLING = dt.timedelta(minutes=10)  # no chat of these agents was resolved yet


class ServingAgent(Protocol):
    """An agent as the ranking needs them (e.g. :class:`bot.store.desk.DeskAgent`)."""

    @property
    def username(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def max_chats(self) -> int: ...
    @property
    def load(self) -> int: ...

    def takes(self, category: str | None) -> bool: ...


@dataclass(frozen=True)
class WaitingTicket:
    """One waiting live ticket as the ranking sees it.

    Attributes:
        id: Ticket id.
        conversation_id: Its conversation.
        priority: Lower comes first.
        created_at: When it was filed (UTC).
        category: Its knowledge category (``None``: any agent takes it).
        offered_to: The agent it is offered to now (``None``: no offer, or it ran out).
    """

    id: int
    conversation_id: str
    priority: int
    created_at: dt.datetime
    category: str | None
    offered_to: str | None = None

    @property
    def order(self) -> tuple[int, dt.datetime, int]:
        """The desk's order: priority, then age, then id."""
        return self.priority, self.created_at, self.id


@dataclass(frozen=True)
class QueuePlace:
    """A waiting customer's place.

    Attributes:
        position: 1-based; ``None`` when no available agent takes the category.
        estimate_minutes: Whole minutes, at least 1; ``None`` likewise.
        agents: Available agents who take the ticket's category.
    """

    position: int | None
    estimate_minutes: int | None
    agents: int

    @property
    def unstaffed(self) -> bool:
        """No available agent takes the ticket's category: nobody will serve it for now."""
        return self.agents == 0


def serving_agents(agents: Iterable[ServingAgent], category: str | None) -> list[ServingAgent]:
    """The available agents who take ``category``."""
    return [a for a in agents if a.status == "available" and a.takes(category)]


def place_of(ticket: WaitingTicket, waiting: Iterable[WaitingTicket], serving: Sequence[ServingAgent],
             handling: dt.timedelta) -> QueuePlace:
    """The place of ``ticket`` among ``waiting`` (see the module's docstring).

    Args:
        ticket: The customer's ticket.
        waiting: Waiting live tickets (``ticket`` among them or not); at least those ahead
            of it and those offered now.
        serving: :func:`serving_agents` of its category, with their load now.
        handling: Typical handling time of a chat of these agents.
    """
    if not serving:
        return QueuePlace(None, None, 0)
    if ticket.offered_to is not None:  # next in line, whatever the order
        return QueuePlace(1, 1, len(serving))
    names = {a.username for a in serving}
    others = [other for other in waiting if other.id != ticket.id]
    offered = sum(other.offered_to in names for other in others)  # an offer to someone else takes none of their slots
    queued = sum(other.offered_to is None and other.order < ticket.order and _competes(other.category, serving)
                 for other in others)
    return _place(queued, offered, serving, handling)


def places_of(waiting: Sequence[WaitingTicket], agents: Sequence[ServingAgent],
              handling: Callable[[frozenset[str]], dt.timedelta]) -> dict[int, QueuePlace]:
    """:func:`place_of` of every ticket of ``waiting`` (all waiting live tickets, or the first ones in order).

    One walk of the queue per set of agents serving a category (a handful), not one per ticket.

    Args:
        waiting: Waiting live tickets.
        agents: The agents with their load now (those not available are left out).
        handling: Typical handling time of the chats of a set of user names (asked once per set).
    """
    ordered = sorted(waiting, key=lambda t: t.order)
    serving_of = {category: serving_agents(agents, category) for category in {t.category for t in ordered}}
    groups: dict[frozenset[str], list[WaitingTicket]] = {}
    found: dict[int, QueuePlace] = {}
    for ticket in ordered:
        serving = serving_of[ticket.category]
        if not serving:
            found[ticket.id] = QueuePlace(None, None, 0)
        elif ticket.offered_to is not None:
            found[ticket.id] = QueuePlace(1, 1, len(serving))
        else:
            groups.setdefault(frozenset(a.username for a in serving), []).append(ticket)
    for names, members in groups.items():
        serving = serving_of[members[0].category]
        typical = handling(names)
        offered = sum(t.offered_to in names for t in ordered)
        queued = 0
        mine = {t.id for t in members}
        for ticket in ordered:  # in order: the tickets before one are those walked before it
            if ticket.id in mine:
                found[ticket.id] = _place(queued, offered, serving, typical)
            if ticket.offered_to is None and _competes(ticket.category, serving):
                queued += 1
    return found


def _competes(category: str | None, serving: Sequence[ServingAgent]) -> bool:
    """Whether one of ``serving`` may take a ticket of ``category`` (then it may come first)."""
    return any(a.takes(category) for a in serving)


def _place(queued: int, offered: int, serving: Sequence[ServingAgent], handling: dt.timedelta) -> QueuePlace:
    """The place behind ``queued`` tickets not offered yet and ``offered`` offers to ``serving``."""
    free = sum(max(0, a.max_chats - a.load) for a in serving)  # offers count against the cap
    slots = max(1, sum(a.max_chats for a in serving))
    # Fewer tickets before it than free slots: at once (≤ 0 here), else one chat ends per ticket left over.
    minutes = max(1, math.ceil((queued - free + 1) * handling.total_seconds() / slots / 60))
    return QueuePlace(1 + offered + queued, minutes, len(serving))
