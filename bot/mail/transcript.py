"""The transcript of a ticket as a plain-text e-mail to the customer.

What the customer saw, nothing more: their messages, the AI chat's and the agents'
replies, in order, with times in Japan time. Internal notes and the console's system
lines are left out, card numbers and マイナンバー are masked (again: masking is idempotent,
and the editors' optional phone / e-mail masking applies too). The body is
``text/plain; charset=utf-8``: nothing the customer or an agent wrote can become markup
or a link a mail client would build from HTML. The Japanese subject is RFC 2047 encoded
by the standard library's SMTP policy.
"""

from __future__ import annotations

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Callable, Iterable

from bot import wording
from bot.store.models import Ticket, TranscriptEntry, as_utc
from bot.text.masking_settings import current_masking_settings

JST = dt.timezone(dt.timedelta(hours=9), "JST")
CUSTOMER_SENDERS = ("customer", "bot", "agent")  # never "note" (internal) or "system" (console lines)
TEXT = wording.TRANSCRIPT_TEXT


def _when(moment: dt.datetime) -> str:
    return wording.format_time(as_utc(moment).astimezone(JST))


def _speaker(entry: TranscriptEntry) -> str:
    if entry.sender == "customer":
        return TEXT["sender_customer"]
    if entry.sender == "bot":
        return TEXT["sender_bot"]
    return TEXT["sender_agent"].format(name=entry.author) if entry.author else TEXT["sender_agent_unnamed"]


def transcript_body(ticket: Ticket, entries: Iterable[TranscriptEntry], customer_name: str | None = None) -> str:
    """The mail's text: greeting, the conversation (masked, no notes), footer."""
    masking = current_masking_settings()
    shown = [e for e in entries if e.sender in CUSTOMER_SENDERS and e.text.strip()]
    service = wording.fact("service.name", default="サポート")
    name = (customer_name or "").strip()
    lines = [TEXT["intro"].format(customer=f"{name} さま" if name else "お客さまへ", service=service), ""]
    if shown:
        lines.append(TEXT["header"].format(start=_when(shown[0].at), end=_when(shown[-1].at)))
    lines.append("─" * 30)
    for entry in shown:
        lines.append(f"[{_when(entry.at)}] {_speaker(entry)}")
        lines.extend("  " + line for line in masking.mask(entry.text).splitlines())
        lines.append("")
    lines += ["─" * 30, TEXT["masked_note"], "", TEXT["footer"].format(contact=wording.fallback_contact())]
    return "\n".join(lines).rstrip() + "\n"


def transcript_message(ticket: Ticket, entries: Iterable[TranscriptEntry], to: str, sender: str,
                       customer_name: str | None = None, now: Callable[[], dt.datetime] | None = None) -> EmailMessage:
    """The e-mail with ``ticket``'s transcript for ``to``, from ``sender`` (``BOT_SMTP_FROM``).

    Args:
        ticket: The ticket.
        entries: Its transcript (all of it; notes and system lines are left out here).
        to: The customer's address.
        sender: ``support@example.jp`` or ``名前 <support@example.jp>``.
        customer_name: For the greeting (「山田 太郎 さま」); none: 「お客さまへ」.
        now: Clock for the Date header (tests).
    """
    message = EmailMessage(policy=SMTP)
    message["Subject"] = TEXT["subject"].format(service=wording.fact("service.name", default="サポート"))
    display, address = parseaddr(sender)
    message["From"] = Address(display_name=display, addr_spec=address) if display else address
    message["To"] = to
    message["Date"] = formatdate((now() if now else dt.datetime.now(dt.timezone.utc)).timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(transcript_body(ticket, entries, customer_name), subtype="plain", charset="utf-8")
    return message
