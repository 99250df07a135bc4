"""After an agent resolves a chat: the satisfaction survey (CSAT) and the transcript by e-mail.

Both are offered through the conversation's state (``survey`` and ``transcript`` of
``<State>``, docs/server-api.md), computed from the database, so a reload, another tab or
another bot server shows the same: the survey while the conversation's latest ticket was
resolved by an agent and is not rated yet; the e-mail button while that is so and a mail
server is configured (``BOT_SMTP_HOST``; without it the button is hidden and nothing is
sent). When the ticket's customer left an e-mail address (widget details or the offline
contact form) the transcript is mailed on resolve without asking. Sending happens in the
background (:class:`bot.mail.sender.TranscriptMailer`): a mail server that is down is
tried again later and never fails the agent's resolve or the customer's request; after
the last try the customer is told in the chat.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from typing import Any

from bot import wording
from bot.handoff.contact import EMAIL
from bot.knowledge.csat import csat_texts
from bot.mail.sender import TranscriptMailer
from bot.server.gateway_base import CustomerError, GatewayBase
from bot.settings import SmtpSettings
from bot.store.csat import Surveys
from bot.store.models import Ticket, TranscriptMail
from bot.store.queue import QueueError
from bot.store.transcript_mails import RETRY_WAITS, TranscriptMails

logger = logging.getLogger(__name__)

RESOLVED_BY_AGENT = "resolved"
MAX_ADDRESS_CHARS = 254
MAIL_TEXT = wording.TRANSCRIPT_TEXT


def clean_address(value: Any) -> str:
    """An e-mail address from the widget (NFKC: full-width ＠ and letters are accepted).

    Raises:
        CustomerError: Not text, too long, malformed, or with characters a header cannot hold.
    """
    text = unicodedata.normalize("NFKC", value).strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_ADDRESS_CHARS or not EMAIL.match(text) or re.search(r"[\s<>,;\"()\\]", text) \
            or not text.isascii():
        raise CustomerError(MAIL_TEXT["bad_address"])
    return text


def _rated_by_agent(ticket: Ticket | None) -> bool:
    return ticket is not None and ticket.status == "resolved" and ticket.resolution == RESOLVED_BY_AGENT \
        and not ticket.offline


class AfterChatSide(GatewayBase):
    """Survey and transcript mail of the conversation's latest resolved ticket."""

    _surveys: Surveys | None = None
    mailer: TranscriptMailer | None = None

    @property
    def surveys(self) -> Surveys:
        """The CSAT store (on the gateway's database)."""
        if self._surveys is None:
            self._surveys = Surveys(self._stores.engine)
        return self._surveys

    def configure_mail(self, settings: SmtpSettings, retry_waits: tuple[dt.timedelta, ...] = RETRY_WAITS,
                       poll_seconds: float = 5.0) -> None:
        """Mail transcripts through ``settings``' server (nothing happens when it is not configured).

        The caller runs :meth:`TranscriptMailer.run` (the app's lifespan does).
        """
        if not settings.enabled:
            self.mailer = None
            return
        mails = TranscriptMails(self._stores.engine, retry_waits)
        self.mailer = TranscriptMailer(settings, mails, self._stores.queue, self._mail_given_up, poll_seconds)

    async def after_chat_state(self, latest: Ticket | None) -> dict[str, Any]:
        """``survey`` and ``transcript`` of the state for the conversation's latest ticket."""
        if not _rated_by_agent(latest):
            return {}
        assert latest is not None
        found: dict[str, Any] = {}
        if self.mailer is not None:
            found["transcript"] = {"ticket_id": latest.id}
        if await self._db(self.surveys.for_ticket, latest.id) is None:
            texts = await self._db(csat_texts)
            found["survey"] = {"ticket_id": latest.id, "texts": texts.as_dict()}
        return found

    async def rate(self, conversation_id: str, ticket_id: Any, rating: Any, comment: Any = None,
                   channel: str = "web") -> None:
        """Store the customer's rating of a ticket; every tab is told (``survey_saved``).

        Raises:
            QueueError: 422 bad rating / comment; 404 not this conversation's ticket; 409 not
                resolved by an agent, or rated already. Nothing is stored then.
        """
        if not isinstance(ticket_id, int) or isinstance(ticket_id, bool) or not 0 < ticket_id < 2**63:
            raise QueueError(wording.CSAT_TEXT["no_ticket"], status=404)
        await self._db(self.surveys.record, conversation_id, ticket_id, rating, comment, channel)
        texts = await self._db(csat_texts)
        self._hub.publish_conversation(conversation_id, {"type": "survey_saved", "ticket_id": ticket_id,
                                                         "thanks": texts.thanks})

    async def request_transcript(self, conversation_id: str, ticket_id: Any, address: Any) -> None:
        """Queue the transcript of a resolved ticket of this conversation for ``address``.

        Raises:
            CustomerError: No mail server, a malformed address, or not this conversation's
                resolved ticket.
            QueueError: 429 after :data:`bot.store.transcript_mails.MAX_PER_TICKET` requests.
        """
        if self.mailer is None:
            raise CustomerError(MAIL_TEXT["off"])
        email = clean_address(address)
        ticket = None
        if isinstance(ticket_id, int) and not isinstance(ticket_id, bool) and 0 < ticket_id < 2**63:
            try:
                ticket = await self._db(self._stores.queue.get, ticket_id, False)
            except QueueError:
                ticket = None
        if ticket is None or ticket.conversation_id != conversation_id or not _rated_by_agent(ticket):
            raise CustomerError(MAIL_TEXT["no_ticket"])
        await self._db(self.mailer.mails.enqueue, ticket.id, conversation_id, email, "request")
        self.mailer.wake()
        self._hub.publish_conversation(conversation_id, {"type": "transcript_queued", "ticket_id": ticket.id,
                                                         "message": MAIL_TEXT["queued"].format(address=email)})

    async def _after_resolved(self, ticket: Ticket) -> None:
        """On resolve by an agent: ask for a rating (``survey`` frame, for LINE; the widget reads
        the state) and mail the transcript when the customer left an address."""
        if _rated_by_agent(ticket):
            texts = await self._db(csat_texts)
            self._hub.publish_conversation(ticket.conversation_id, {
                "type": "survey", "survey": {"ticket_id": ticket.id, "texts": texts.as_dict()}})
        if self.mailer is None or ticket.resolution != RESOLVED_BY_AGENT:
            return
        given = (ticket.customer or {}).get("email")
        try:
            email = clean_address(given)
        except CustomerError:
            return
        if email.startswith("*"):  # masked by the editors' setting: not an address any more
            return
        try:
            await self._db(self.mailer.mails.enqueue, ticket.id, ticket.conversation_id, email, "auto")
        except Exception:  # noqa: BLE001 - the resolve itself has happened; the mail is extra
            logger.exception("could not queue the transcript mail of ticket %s", ticket.id)
            return
        self.mailer.wake()

    async def _mail_given_up(self, mail: TranscriptMail) -> None:
        """Tell the customer the transcript could not be mailed (after the last try)."""
        await self._system(mail.conversation_id, MAIL_TEXT["failed"].format(address=mail.address,
                                                                            contact=wording.fallback_contact()))
