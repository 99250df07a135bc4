"""What the customer saw in the widget: every message of every conversation.

The widget restores its history from here after a reload, and editors' analytics read
it. Customer messages carry the widget's ``client_id``; storing the same one twice
returns the first row, so a resend after a reconnect or a double click is kept once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from bot.handoff.masking import mask_sensitive
from bot.handoff.masking_settings import current_masking_settings
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
    """The ``<Message>`` shape of docs/server-api.md."""
    return {
        "id": message.id, "sender": message.sender, "text": message.text, "at": as_utc(message.created_at).isoformat(),
        "buttons": message.buttons or [], "agent_name": message.agent_name, "faq_id": message.faq_id,
        "feedback": message.feedback, "client_id": message.client_id,
    }


class ChatLog:
    """Conversation messages on one database."""

    def __init__(self, engine: Engine) -> None:
        """Use ``engine`` (see :func:`bot.store.queue.make_engine`)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)

    def add(self, new: NewMessage) -> tuple[ChatMessage, bool]:
        """Store ``new`` (masked).

        Returns:
            The stored message and whether it is new (``False``: a known ``client_id``).
        """
        row = ChatMessage(conversation_id=new.conversation_id, sender=new.sender, text=current_masking_settings().mask(new.text),
                          buttons=list(new.buttons), intent=new.intent, confidence=new.confidence,
                          faq_id=new.faq_id, route=new.route, agent_name=new.agent_name,
                          client_id=new.client_id)
        with self._sessions() as session:
            session.add(row)
            try:
                session.commit()
                return row, True
            except IntegrityError:
                session.rollback()
            existing = session.execute(select(ChatMessage).where(
                ChatMessage.conversation_id == new.conversation_id,
                ChatMessage.client_id == new.client_id)).scalar_one()
            return existing, False

    def start_conversation(self, conversation_id: str, customer: dict[str, Any]) -> None:
        """Record a new conversation with the customer details the widget passed (masked)."""
        with self._sessions() as session, session.begin():
            session.add(Conversation(id=conversation_id,
                                     customer={k: mask_sensitive(str(v))[:500] for k, v in customer.items()}))

    def customer_of(self, conversation_id: str) -> dict[str, Any]:
        """Customer details given when the conversation started (empty when unknown)."""
        with self._sessions() as session:
            row = session.get(Conversation, conversation_id)
            return dict(row.customer) if row else {}

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
                raise QueueError(f"メッセージ {message_id} への評価はできません。", status=404)
            recorded = session.execute(update(ChatMessage).where(ChatMessage.id == message_id,
                                                                 ChatMessage.feedback.is_(None))
                                       .values(feedback=helpful).execution_options(synchronize_session=False))
        with self._sessions() as session:
            return session.get(ChatMessage, message_id), bool(recorded.rowcount)
