"""Erasure of one customer's data on request (#14 item 5, `bot data delete`).

A customer is named by a conversation id or by an e-mail address. An address finds every
conversation it appears in: the conversation's details (widget form, contact left later),
a ticket's customer details, a transcript mail to it (a department's forward mail goes to
the department, not to the customer, and does not count), or an undelivered packet's
customer details. Then, for those conversations, everything is deleted — rows, not just
their texts (:data:`KINDS`): chat messages, the conversation, tickets with their transcript
entries, history steps (transfers, escalations, whispers, forwards), CSAT ratings,
transcript mails, webhook deliveries (their payload is the ticket), a pending handoff,
undelivered packets (by conversation, or an unreadable line that contains the id or
address), and Rasa's tracker store events (bot/store/rasa_trackers.py).

All of it is one transaction of the bot database, with the audit line ``data.deleted``
(who, when, counts per kind and the SHA-256 of the id or address asked for; never the
content nor the conversation ids). Rasa's events are deleted in that transaction on
PostgreSQL, and just before it on SQLite (their own file): if the bot database then
fails, nothing there is lost and running the command again finishes the job.

A customer with an open ticket (waiting or being answered) is refused: the agent resolves
it first, so no agent's chat disappears under their hands. An unknown customer is an
error (:class:`ErasureError`) and nothing is deleted.

Admins do the same from the console (bot/server/erasure_api.py): their dry run also lists
the conversations found with the customer's name (:meth:`Erasure.describe`), so they can
tell it is the right person before they type the id or address again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from sqlalchemy import delete, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.store.audit import record_audit
from bot.store.forwarding import FORWARD_TRIGGER
from bot.store.models import (ChatMessage, Conversation, CsatRating, PendingHandoff, Ticket, TicketEvent,
                              TranscriptEntry, TranscriptMail, UndeliveredHandoff, WebhookDelivery, as_utc)
from bot.store.rasa_trackers import RasaTrackers, count_events, delete_events

BY_CONVERSATION = "conversation"
BY_EMAIL = "email"
ACTION = "data.deleted"
SHOWN = 20  # conversations described before an admin confirms (the console's 個人情報の削除)

# Kind -> what `bot data delete` prints (Japanese), in the order rows are deleted.
KINDS: dict[str, str] = {
    "transcript_entries": "お問い合わせの記録（発言・内部メモ）",
    "ticket_events": "お問い合わせの履歴（転送・エスカレーション・部署への引き継ぎ・ささやき）",
    "csat_ratings": "満足度アンケート（評価・コメント）",
    "transcript_mails": "会話記録のメール（宛先）",
    "webhook_deliveries": "Webhook の配信（送る内容）",
    "tickets": "お問い合わせ（要約・お客さまの連絡先）",
    "chat_messages": "チャットの発言",
    "pending_handoffs": "担当者への引き継ぎ待ち",
    "undelivered_handoffs": "配信できなかった引き継ぎ",
    "conversations": "会話（名前・メールアドレス・ページ）",
    "rasa_events": "Rasa の会話の記録（イベント）",
}
TEXT = {
    "by_conversation": "会話 ID",
    "by_email": "メールアドレス",
    "empty": "{by}が空です。削除するお客さまの{by}を指定してください。",
    "not_email": "「{value}」はメールアドレスの形ではありません（@ がありません）。例: --email taro@example.jp",
    "unknown": "{by}「{value}」のお客さまのデータは見つかりません。何も削除していません。"
               "ID やアドレスの書き間違い、または削除済みでないかを確かめてください。",
    "open": "対応中のお問い合わせ（{tickets}）があるため削除できません。何も削除していません。"
            "担当者がコンソールで解決してから、もう一度実行してください。",
    "head_dry": "削除の対象（--dry-run: まだ何も削除していません）",
    "head": "削除しました（監査ログに記録しました。削除した内容は記録していません）",
    "found": "{by}「{value}」: 会話 {count} 件",
    "total": "合計 {total} 件。",
}


class ErasureError(ValueError):
    """A request that cannot be carried out; the message (Japanese) says why and what to do.

    Attributes:
        reason: ``input`` (a blank id or an address without @), ``unknown`` (no data of
            this customer) or ``open`` (an open ticket).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ErasureResult:
    """What an erasure deleted (``dry_run``: would delete), rows per kind of :data:`KINDS`."""

    by: str
    value: str
    dry_run: bool
    conversations: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Rows in all."""
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """The result in Japanese, one line per kind (for `bot data delete`)."""
        lines = [TEXT["found"].format(by=TEXT[f"by_{self.by}"], value=self.value, count=len(self.conversations)),
                 f"{TEXT['head_dry'] if self.dry_run else TEXT['head']}:"]
        lines += [f"  {label}: {self.counts.get(kind, 0)} 件" for kind, label in KINDS.items()]
        lines.append(TEXT["total"].format(total=self.total))
        return lines


@dataclass(frozen=True)
class FoundConversation:
    """One conversation an erasure would delete, so an admin can tell it is the right customer.

    ``name`` is the customer's as stored (masked, customer-provided: render it as text);
    ``started_at`` the conversation's start, or its first ticket's for a LINE conversation.
    """

    conversation_id: str
    name: str | None
    started_at: dt.datetime | None
    tickets: int


def request_hash(by: str, value: str) -> str:
    """The audit log's reference to a request: SHA-256 of ``<by>:<value>`` (the value normalised).

    Whoever knows the id or address can check that it was erased; the log never holds it.
    """
    return hashlib.sha256(f"{by}:{value}".encode("utf-8")).hexdigest()


def normalise(by: str, value: str) -> str:
    """The id as given (trimmed), an address in lower case.

    Raises:
        ErasureError: ``by`` is neither kind, the value is blank, or an address has no @.
    """
    if by not in (BY_CONVERSATION, BY_EMAIL):
        raise ValueError(f"unknown erasure key {by!r}; fix: use {BY_CONVERSATION!r} or {BY_EMAIL!r}")
    cleaned = (value or "").strip()
    if not cleaned:
        raise ErasureError(TEXT["empty"].format(by=TEXT[f"by_{by}"]), "input")
    if by == BY_EMAIL:
        if "@" not in cleaned:
            raise ErasureError(TEXT["not_email"].format(value=cleaned), "input")
        cleaned = cleaned.lower()
    return cleaned


def _lower_text(column: Any) -> Any:
    return func.lower(column.as_string())


def conversations_of_email(session: Session, email: str) -> set[str]:
    """Every conversation the (lower-case) address appears in (see the module's docstring)."""
    queries = (
        select(Conversation.id).where(_lower_text(Conversation.customer["email"]) == email),
        select(Ticket.conversation_id).where(_lower_text(Ticket.customer["email"]) == email),
        select(TranscriptMail.conversation_id).where(func.lower(TranscriptMail.address) == email,
                                                     TranscriptMail.trigger != FORWARD_TRIGGER),
        select(UndeliveredHandoff.conversation_id).where(
            UndeliveredHandoff.conversation_id.is_not(None),
            _lower_text(UndeliveredHandoff.packet[("customer", "email")]) == email),
    )
    return {cid for query in queries for cid in session.execute(query).scalars() if cid}


def _known_conversation(session: Session, conversation_id: str) -> bool:
    """Whether the bot database holds anything of the conversation."""
    return any(session.execute(select(column).where(column == conversation_id).limit(1)).first() is not None
               for column in (Conversation.id, ChatMessage.conversation_id, Ticket.conversation_id,
                              PendingHandoff.conversation_id, UndeliveredHandoff.conversation_id))


def _undelivered_of(conversations: Sequence[str], mentioned: Iterable[str]) -> Any:
    """Undelivered packets of the conversations, and unreadable lines mentioning an id or the address."""
    mentions = [func.lower(UndeliveredHandoff.excerpt).contains(word.lower(), autoescape=True) for word in mentioned]
    return or_(UndeliveredHandoff.conversation_id.in_(conversations), *mentions)


def _targets(conversations: Sequence[str], mentioned: Sequence[str]) -> dict[str, Any]:
    """Kind -> the WHERE condition of its rows (:data:`KINDS` but Rasa's events)."""
    tickets = select(Ticket.id).where(Ticket.conversation_id.in_(conversations)).scalar_subquery()
    return {
        "transcript_entries": TranscriptEntry.ticket_id.in_(tickets),
        "ticket_events": TicketEvent.ticket_id.in_(tickets),
        "csat_ratings": or_(CsatRating.ticket_id.in_(tickets), CsatRating.conversation_id.in_(conversations)),
        "transcript_mails": or_(TranscriptMail.ticket_id.in_(tickets),
                                TranscriptMail.conversation_id.in_(conversations)),
        "webhook_deliveries": WebhookDelivery.ticket_id.in_(tickets),
        "tickets": Ticket.conversation_id.in_(conversations),
        "chat_messages": ChatMessage.conversation_id.in_(conversations),
        "pending_handoffs": PendingHandoff.conversation_id.in_(conversations),
        "undelivered_handoffs": _undelivered_of(conversations, mentioned),
        "conversations": Conversation.id.in_(conversations),
    }


def _found(conversation_id: str, conversation: Conversation | None, tickets: list[Ticket]) -> FoundConversation:
    """The widget form's name and start; a LINE conversation has only its tickets' (newest name wins)."""
    details = [conversation.customer] if conversation is not None else []
    details += [ticket.customer for ticket in reversed(tickets)]
    name = next((d["name"] for d in details if isinstance(d, dict) and isinstance(d.get("name"), str) and d["name"]),
                None)
    start = conversation.created_at if conversation is not None else (tickets[0].created_at if tickets else None)
    return FoundConversation(conversation_id, name, as_utc(start) if start is not None else None, len(tickets))


MODELS: dict[str, Any] = {"transcript_entries": TranscriptEntry, "ticket_events": TicketEvent,
                          "csat_ratings": CsatRating, "transcript_mails": TranscriptMail,
                          "webhook_deliveries": WebhookDelivery, "tickets": Ticket, "chat_messages": ChatMessage,
                          "pending_handoffs": PendingHandoff, "undelivered_handoffs": UndeliveredHandoff,
                          "conversations": Conversation}


class Erasure:
    """Erases one customer's data from the bot database and Rasa's tracker store."""

    def __init__(self, engine: Engine, trackers: RasaTrackers | None = None) -> None:
        """Use ``engine`` (migrated); ``trackers``: Rasa's store (default: the one `bot run` configures)."""
        self._sessions = sessionmaker(bind=engine, future=True, expire_on_commit=False)
        self.trackers = trackers if trackers is not None else RasaTrackers.for_engine(engine)

    def erase(self, by: str, value: str, dry_run: bool = False, actor: str | None = None,
              address: str | None = None) -> ErasureResult:
        """Delete (``dry_run``: count) every row of the customer; a real erasure is audited.

        Args:
            by: :data:`BY_CONVERSATION` or :data:`BY_EMAIL`.
            value: The conversation id or the e-mail address.
            dry_run: Only count; nothing is changed and nothing is logged.
            actor: Who asked for it (``cli:<user>`` from the command line).
            address: The client address, when asked through an API.

        Raises:
            ErasureError: Bad input, an unknown customer or an open ticket; nothing was deleted.
        """
        value = normalise(by, value)
        with self._sessions() as session, session.begin():
            shared = session.connection() if self.trackers.shared else None
            with self.trackers.begin(shared) as events:
                conversations = self._conversations(session, by, value, events)
                self._refuse_open(session, conversations)
                mentioned = [*conversations, *([value] if by == BY_EMAIL else [])]
                targets = _targets(conversations, mentioned)
                result = ErasureResult(by, value, dry_run, tuple(conversations))
                if dry_run:
                    result.counts = {kind: self._count(session, MODELS[kind], where) for kind, where in targets.items()}
                    result.counts["rasa_events"] = count_events(events, conversations)
                    return result
                # Rasa's events first: on SQLite their file commits when this block ends,
                # before the bot database (see the module's docstring).
                result.counts["rasa_events"] = delete_events(events, conversations)
            for kind, where in targets.items():
                result.counts[kind] = int(session.execute(delete(MODELS[kind]).where(where).execution_options(
                    synchronize_session=False)).rowcount or 0)
            result.counts = {kind: result.counts.get(kind, 0) for kind in KINDS}
            record_audit(session, ACTION, actor, f"{by}:sha256:{request_hash(by, value)}",
                         {"by": by, "conversations": len(conversations),
                          "counts": {k: v for k, v in result.counts.items() if v}}, address)
        return result

    def describe(self, conversations: Sequence[str], limit: int = SHOWN) -> list[FoundConversation]:
        """The first ``limit`` of ``conversations`` (an erasure's result) with name, start and tickets."""
        shown = list(conversations[:limit])
        with self._sessions() as session:
            widget = {row.id: row for row in session.execute(select(Conversation).where(
                Conversation.id.in_(shown))).scalars()}
            tickets: dict[str, list[Ticket]] = {}
            for ticket in session.execute(select(Ticket).where(Ticket.conversation_id.in_(shown))
                                          .order_by(Ticket.id)).scalars():
                tickets.setdefault(ticket.conversation_id, []).append(ticket)
        return [_found(cid, widget.get(cid), tickets.get(cid, [])) for cid in shown]

    def _conversations(self, session: Session, by: str, value: str, events: Any) -> list[str]:
        """The customer's conversations, sorted.

        Raises:
            ErasureError: None found (an address may still be in an unreadable packet:
                then that is what is deleted).
        """
        if by == BY_EMAIL:
            found = conversations_of_email(session, value)
            if found or self._count(session, UndeliveredHandoff, _undelivered_of([], [value])):
                return sorted(found)
        elif _known_conversation(session, value) or count_events(events, [value]):
            return [value]
        raise ErasureError(TEXT["unknown"].format(by=TEXT[f"by_{by}"], value=value), "unknown")

    @staticmethod
    def _refuse_open(session: Session, conversations: Sequence[str]) -> None:
        open_ids = session.execute(select(Ticket.id).where(Ticket.conversation_id.in_(conversations),
                                                           Ticket.status != "resolved").order_by(Ticket.id)).scalars()
        numbers = "、".join(f"#{ticket_id}" for ticket_id in open_ids)
        if numbers:
            raise ErasureError(TEXT["open"].format(tickets=numbers), "open")

    @staticmethod
    def _count(session: Session, model: Any, where: Any) -> int:
        return int(session.execute(select(func.count()).select_from(model).where(where)).scalar_one())
