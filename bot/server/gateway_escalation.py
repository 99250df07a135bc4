"""The gateway's part of escalation and transfers (bot/store/escalation.py): what the customer
and the consoles are told.

The customer reads one polite line per step that changes who answers: 「担当者が交代します…」
when the chat goes to a colleague or back to the queue, 「責任者が対応します…」 when a
supervisor joins. An escalation itself changes nobody in the chat (the agent stays until
a supervisor joins), so the customer reads nothing then; notes and whispers never reach
them. Every step is a ``ticket`` event on the consoles' feed (``transferred``, ``requeued``,
``escalated``, ``joined``, ``whisper``): supervisors' consoles ring for ``escalated``, the
agent's for a ``whisper`` to them (the feed carries the ticket, never the whisper's text).
"""

from __future__ import annotations

import datetime as dt

from bot import wording
from bot.server.gateway_base import TEXT, GatewayBase
from bot.store.escalation import Transfer
from bot.store.models import Ticket

ESCALATION_TEXT = wording.ESCALATION_TEXT


def wait_words(seconds: float) -> str:
    """「10分」「45秒」「1時間30分」: how long, as the history and the transcript say it."""
    whole = max(0, int(round(seconds)))
    if whole < 60:
        return f"{whole}秒"
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours}時間{minutes}分" if hours and minutes else f"{hours}時間" if hours else f"{minutes}分"


class EscalationSide(GatewayBase):
    """Transfers, escalations, supervisors' joins and whispers (consoles and the background loop)."""

    async def transfer(self, ticket_id: int, username: str, to: Transfer, supervisor: bool = False) -> Ticket:
        """Hand a claimed chat to a colleague or back to the queue (see :meth:`Escalations.transfer`).

        Raises:
            QueueError: 404 unknown ticket or agent; 409 refused (the message says why).
        """
        ticket, _ = await self._db(self._stores.escalations.transfer, ticket_id, username, to, self.display_name,
                                   supervisor)
        self._publish_ticket("transferred" if to.agent else "requeued", ticket)
        line = TEXT["agent_changed"].format(name=self.display_name(to.agent)) if to.agent else TEXT["requeued"]
        await self._system(ticket.conversation_id, line)
        await self._publish_state(ticket.conversation_id)
        return ticket

    async def escalate(self, ticket_id: int, username: str, note: str | None) -> Ticket:
        """The agent asks the supervisors to step in; every console hears it at once.

        Raises:
            QueueError: 404 unknown; 409 refused (resolved, not theirs, escalated already).
        """
        ticket = await self._db(self._stores.escalations.escalate, ticket_id, username, note, self.display_name)
        self._publish_ticket("escalated", ticket)
        return ticket

    async def join(self, ticket_id: int, supervisor: str) -> Ticket:
        """A supervisor takes the chat; the customer reads 「責任者が対応します…」 once.

        Raises:
            QueueError: 404 unknown; 409 refused (another supervisor joined first, resolved …).
        """
        ticket, _ = await self._db(self._stores.escalations.join, ticket_id, supervisor, self.display_name)
        self._publish_ticket("joined", ticket)
        await self._system(ticket.conversation_id,
                           TEXT["supervisor_joined"].format(name=self.display_name(supervisor)))
        await self._publish_state(ticket.conversation_id)
        return ticket

    async def whisper(self, ticket_id: int, supervisor: str, text: str) -> Ticket:
        """A supervisor's ささやき: the agent's console is told there is one (not what it says).

        Raises:
            QueueError: 404 unknown; 409 nobody's chat now, or the supervisor's own.
        """
        ticket = await self._db(self._stores.escalations.whisper, ticket_id, supervisor, text)
        self._publish_ticket("whisper", ticket)
        return ticket

    def escalate_after(self) -> float:
        """Seconds before automatic escalation in force (0: none): an admin's value in the console,
        else the start value (``BOT_ESCALATE_AFTER_SECONDS``, bot/store/desk_settings.py)."""
        return float(self._stores.desk_settings.value("escalate_after_seconds"))

    async def auto_escalate(self) -> list[int]:
        """Escalate the complaint and anger tickets that waited too long (a round of the background loop)."""
        after = await self._db(self.escalate_after)
        if after <= 0:
            return []
        wait = wait_words(after)
        tickets = await self._db(self._stores.escalations.auto_escalate,
                                 dt.timedelta(seconds=after),
                                 ESCALATION_TEXT["auto_note"].format(wait=wait),
                                 ESCALATION_TEXT["record_auto_escalated"].format(wait=wait))
        for ticket in tickets:
            self._publish_ticket("escalated", ticket)
        return [t.id for t in tickets]
