"""Sending one message through the configured SMTP server (standard library ``smtplib``).

``smtplib`` blocks, so :func:`send_async` runs it in a worker thread: a slow or dead mail
server never holds up the event loop, and every failure arrives as :class:`MailError`
with a short reason for the log and the mail queue (no password, no message body).
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from email.message import EmailMessage

from bot.settings import SmtpSettings


class MailError(RuntimeError):
    """The mail server did not accept the message (reason in English, for logs)."""


def send(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver ``message`` to the SMTP server of ``settings``.

    Raises:
        MailError: Not configured, unreachable, TLS or login refused, recipient refused.
    """
    if not settings.enabled:
        raise MailError("SMTP is not configured (BOT_SMTP_HOST / BOT_SMTP_FROM)")
    try:
        if settings.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.username:
                client.login(settings.username, settings.password)
            refused = client.send_message(message)
        if refused:
            raise MailError(f"recipients refused: {sorted(refused)}")
    except smtplib.SMTPResponseException as exc:
        raise MailError(f"SMTP {exc.smtp_code}: {exc.smtp_error[:200]!r}") from exc
    except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
        raise MailError(f"{type(exc).__name__}: {str(exc)[:200]}") from exc


async def send_async(settings: SmtpSettings, message: EmailMessage) -> None:
    """:func:`send` in a worker thread."""
    await asyncio.to_thread(send, settings, message)
