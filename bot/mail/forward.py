"""The e-mail that hands a ticket to a department (#15 item 4; bot/store/forwarding.py).

Plain text, UTF-8, Japanese subject (RFC 2047 by the standard library's SMTP policy), to
the department's address of ``knowledge/departments.yml``. It carries what the department
needs to contact the customer: the agent's note (internal: the customer never saw it),
the promise the customer was given, the customer's contact details and the conversation
the customer saw (their messages, the AI chat's and the agents' replies; no internal notes,
no console lines), everything masked with the configured rules.
"""

from __future__ import annotations

import datetime as dt
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Iterable

from bot import wording
from bot.knowledge.departments import Department
from bot.mail.transcript import CUSTOMER_SENDERS, JST
from bot.store.models import Ticket, TicketEvent, TranscriptEntry, as_utc
from bot.text.masking_settings import current_masking_settings

TEXT = wording.FORWARD_TEXT
SPEAKERS = {"customer": "お客さま", "bot": "AIチャット", "agent": "担当者"}


def _when(moment: dt.datetime) -> str:
    return wording.format_time(as_utc(moment).astimezone(JST))


def forward_body(ticket: Ticket, entries: Iterable[TranscriptEntry], department: Department, step: TicketEvent,
                 agent_name: str) -> str:
    """The mail's text: intro, the note, the promise, the customer, the ticket, the conversation."""
    masking = current_masking_settings()
    service = wording.fact("service.name", default="サポート")
    lines = [TEXT["mail_intro"].format(department=department.name, service=service, agent=agent_name), "",
             TEXT["mail_note"]]
    lines += ["  " + line for line in masking.mask(step.note or "").splitlines()] + ["", TEXT["mail_promise"],
                                                                                   "  " + department.promise, "",
                                                                                   TEXT["mail_customer"]]
    details = [(label, (ticket.customer or {}).get(key)) for key, label in TEXT["customer_fields"].items()]
    shown = [f"  {label}: {masking.mask(str(value))}" for label, value in details if value]
    lines += shown or ["  " + TEXT["no_customer_details"]]
    lines += ["", TEXT["mail_ticket"], f"  番号: {ticket.id}", f"  受付: {_when(ticket.created_at)}"]
    if ticket.category:
        lines.append(f"  カテゴリ: {ticket.category}")
    if ticket.summary:
        lines.append(f"  要約: {masking.mask(ticket.summary)}")
    lines += ["", TEXT["mail_transcript"], "─" * 30]
    for entry in entries:
        if entry.sender not in CUSTOMER_SENDERS or not entry.text.strip():
            continue
        who = SPEAKERS[entry.sender] + (f"（{entry.author}）" if entry.sender == "agent" and entry.author else "")
        lines.append(f"[{_when(entry.at)}] {who}")
        lines.extend("  " + line for line in masking.mask(entry.text).splitlines())
        lines.append("")
    lines += ["─" * 30, TEXT["mail_footer"].format(service=service)]
    return "\n".join(lines).rstrip() + "\n"


def forward_message(ticket: Ticket, entries: Iterable[TranscriptEntry], department: Department, step: TicketEvent,
                    agent_name: str, to: str, sender: str) -> EmailMessage:
    """The mail of a forward for ``to`` (the department), from ``sender`` (``BOT_SMTP_FROM``).

    Args:
        ticket: The forwarded ticket.
        entries: Its transcript (notes and console lines are left out here).
        department: The department.
        step: The ticket's ``forwarded`` step (its note).
        agent_name: The forwarding agent's display name.
        to: The department's address.
        sender: ``support@example.jp`` or ``名前 <support@example.jp>``.
    """
    message = EmailMessage(policy=SMTP)
    message["Subject"] = TEXT["mail_subject"].format(ticket_id=ticket.id, department=department.name)
    display, address = parseaddr(sender)
    message["From"] = Address(display_name=display, addr_spec=address) if display else address
    message["To"] = to
    message["Date"] = formatdate(dt.datetime.now(dt.timezone.utc).timestamp(), usegmt=True)
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(forward_body(ticket, entries, department, step, agent_name), subtype="plain",
                        charset="utf-8")
    return message
