"""What the customer saw in the widget: every message of every conversation.

The widget restores its history from here after a reload, and editors' analytics read
it. Customer messages carry the widget's ``client_id``; storing the same one twice
returns the first row, so a resend after a reconnect or a double click is kept once.

Conversations also hold what the customer limits need: when each was last used (the
token expires after an idle period), whether the customer ended it, and a keyed hash of
the address that started it (new conversations per address).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bot import wording
from bot.text.masking import mask_sensitive
from bot.text.masking_settings import current_masking_settings
from bot.store.models import ChatMessage, Conversation, as_utc, utcnow
from bot.store.queue import QueueError


@dataclass(frozen=True)
class NewMessage:
    """A message to store (see :class:`bot.store.models.ChatMessage` for the fields)."""

    conversation_id: str
    sender: str
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    intent: str | None = None
    confidence: float | None = None
    faq_id: str | None = None
    route: str | None = None
    agent_name: str | None = None
    client_id: str | None = None


def message_json(message: ChatMessage) -> dict[str, Any]:
    """The ``<Message>`` shape of docs/server-api.md.

    ``client_id`` only for customer messages: a handoff reply keeps its handoff's key there
    (bot/store/pending.py), which is the bot server's business, not the widget's.
    """
    return {
        "id": message.id, "sender": message.sender, "text": message.text, "at": as_utc(message.created_at).isoformat(),
        "buttons": message.buttons or [], "agent_name": message.agent_name, "faq_id": message.faq_id,
        "feedback": message.feedback, "client_id": message.client_id if message.sender == "customer" else None,
    }


class ChatLog:
    """Conversation messages on one database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`bot.store.queue.make_engine`).

        ``clock`` (public) gives the current time: tests set it to travel in time.
        """
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)
        self.clock: Callable[[], dt.datetime] = utcnow

    def _row(self, new: NewMessage, now: dt.datetime) -> ChatMessage:
        return ChatMessage(conversation_id=new.conversation_id, sender=new.sender,
                           text=current_masking_settings().mask(new.text), buttons=list(new.buttons),
                           intent=new.intent, confidence=new.confidence, faq_id=new.faq_id, route=new.route,
                           agent_name=new.agent_name, client_id=new.client_id, created_at=now)

    def add(self, new: NewMessage) -> tuple[ChatMessage, bool]:
        """Store ``new`` (masked); a customer message counts as use of the conversation.

        Returns:
            The stored message and whether it is new (``False``: a known ``client_id``).
        """
        now = self.clock()
        row = self._row(new, now)
        with self._sessions() as session:
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
            else:
                if new.sender == "customer":
                    session.execute(update(Conversation).where(Conversation.id == new.conversation_id)
                                    .values(last_active_at=now).execution_options(synchronize_session=False))
                session.commit()
                return row, True
            existing = session.execute(select(ChatMessage).where(
                ChatMessage.conversation_id == new.conversation_id,
                ChatMessage.client_id == new.client_id)).scalar_one()
            return existing, False

    def add_replies(self, news: Sequence[NewMessage], routed: int | None = None) -> list[ChatMessage]:
        """Store the bot's replies (masked, in order) and mark the message they answer routed: one commit.

        Args:
            news: Replies without a ``client_id`` (nothing to recognise a resend by).
            routed: The customer message they answer (:meth:`mark_routed`), if any.

        Returns:
            The stored messages, in order.
        """
        now = self.clock()
        rows = [self._row(new, now) for new in news]
        with self._sessions() as session, session.begin():
            session.add_all(rows)  # inserted in this order: ids in the order the customer reads them
            session.flush()
            if routed is not None:
                session.execute(update(ChatMessage).where(ChatMessage.id == routed).values(routed_at=utcnow()))
        return rows

    def start_conversation(self, conversation_id: str, customer: dict[str, Any],
                           address_key: str | None = None) -> None:
        """Record a new conversation with the customer details the widget passed (masked).

        Args:
            conversation_id: The new conversation.
            customer: Name, e-mail, page URL as the widget gave them.
            address_key: Keyed hash of the client address (see
                :meth:`bot.server.tokens.ConversationTokens.address_key`).
        """
        now = self.clock()
        with self._sessions() as session, session.begin():
            session.add(Conversation(id=conversation_id,
                                     customer={k: mask_sensitive(str(v))[:500] for k, v in customer.items()},
                                     address_key=address_key, created_at=now, last_active_at=now))

    def started_from(self, address_key: str, window: dt.timedelta) -> tuple[int, dt.datetime | None]:
        """Conversations started from one address within ``window``, and the oldest one's start."""
        with self._sessions() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(Conversation.created_at))
                .where(Conversation.address_key == address_key,
                       Conversation.created_at >= self.clock() - window)).one()
        return int(count), as_utc(oldest) if oldest else None

    def use_conversation(self, conversation_id: str, idle: dt.timedelta) -> bool:
        """Whether the conversation's token still works; if so, note that it was used now.

        A token works while the customer has not ended the conversation and it was used
        within ``idle`` (one conditional UPDATE: the check and the touch are one step).
        """
        now = self.clock()
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.ended_at.is_(None),
                       func.coalesce(Conversation.last_active_at, Conversation.created_at) >= now - idle)
                .values(last_active_at=now).execution_options(synchronize_session=False))
            return bool(result.rowcount)

    def end_conversation(self, conversation_id: str) -> bool:
        """The customer ended the conversation: its token stops working (False: ended already)."""
        with self._sessions() as session, session.begin():
            result = session.execute(update(Conversation)
                                     .where(Conversation.id == conversation_id, Conversation.ended_at.is_(None))
                                     .values(ended_at=self.clock()).execution_options(synchronize_session=False))
            return bool(result.rowcount)

    def recent_customer_messages(self, conversation_id: str,
                                 window: dt.timedelta) -> tuple[int, dt.datetime | None]:
        """Customer messages of the conversation within ``window``, and the oldest one's time."""
        with self._sessions() as session:
            count, oldest = session.execute(
                select(func.count(), func.min(ChatMessage.created_at))
                .where(ChatMessage.conversation_id == conversation_id, ChatMessage.sender == "customer",
                       ChatMessage.created_at >= self.clock() - window)).one()
        return int(count), as_utc(oldest) if oldest else None

    def has_client_id(self, conversation_id: str, client_id: str) -> bool:
        """Whether a message with this ``client_id`` is stored (a resend, not a new message)."""
        with self._sessions() as session:
            return session.execute(select(ChatMessage.id).where(ChatMessage.conversation_id == conversation_id,
                                                                ChatMessage.client_id == client_id)).first() \
                is not None

    def customer_of(self, conversation_id: str) -> dict[str, Any]:
        """Customer details given when the conversation started (empty when unknown)."""
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            return dict(row.customer) if row else {}

    def add_contact(self, conversation_id: str, contact: dict[str, str]) -> bool:
        """Keep contact details the customer left with the conversation's details (masked).

        The next handoff carries them (the bot server passes the details to Rasa), so
        they are not lost when the ticket they were meant for is closed already.

        Returns:
            False when the conversation is unknown.
        """
        with self._sessions() as session, session.begin():
            row = session.get(Conversation, conversation_id, with_for_update=True)
            if row is None:
                return False
            row.customer = {**(row.customer or {}),
                            **{k: mask_sensitive(str(v))[:500] for k, v in contact.items() if v}}
            return True

    def mark_routed(self, message_id: int) -> None:
        """Record that a customer message reached the bot or the agent."""
        with self._sessions() as session, session.begin():
            session.execute(update(ChatMessage).where(ChatMessage.id == message_id).values(routed_at=utcnow()))

    def history(self, conversation_id: str, limit: int = 500) -> list[ChatMessage]:
        """The conversation's latest ``limit`` messages, oldest first."""
        with self._sessions() as session:
            rows = session.execute(select(ChatMessage).where(ChatMessage.conversation_id == conversation_id)
                                   .order_by(ChatMessage.id.desc()).limit(limit)).scalars()
            return list(reversed(list(rows)))

    def last_bot_buttons(self, conversation_id: str) -> list[dict[str, str]]:
        """Quick replies of the latest bot message (the only ones a customer may click)."""
        with self._sessions() as session:
            buttons = session.execute(select(ChatMessage.buttons).where(
                ChatMessage.conversation_id == conversation_id, ChatMessage.sender == "bot")
                .order_by(ChatMessage.id.desc()).limit(1)).scalar()
            return list(buttons or [])

    def set_feedback(self, conversation_id: str, message_id: int, helpful: bool) -> tuple[ChatMessage, bool]:
        """Record 役に立ちましたか？ for an FAQ answer of this conversation (first answer counts).

        Returns:
            The message and whether this call recorded the answer (``False``: it had one;
            a conditional UPDATE, so two tabs answering at once record it once).

        Raises:
            QueueError: 404 when the message is not an FAQ answer in this conversation.
        """
        with self._sessions() as session, session.begin():
            row = session.get(ChatMessage, message_id)
            if row is None or row.conversation_id != conversation_id or not row.faq_id:
                raise QueueError(wording.STORE_CUSTOMER_TEXT["feedback_refused"], status=404)
            recorded = session.execute(update(ChatMessage).where(ChatMessage.id == message_id,
                                                                 ChatMessage.feedback.is_(None))
                                       .values(feedback=helpful).execution_options(synchronize_session=False))
        with self._sessions() as session:
            return session.get(ChatMessage, message_id), bool(recorded.rowcount)
