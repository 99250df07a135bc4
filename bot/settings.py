"""Settings read from the environment in one place, with local defaults that need no secrets."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def _port(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"environment variable {name}={value!r} is not a port number; "
                         f"fix: set it to a number between 1 and 65535 (default {default})")
    return int(value)


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"environment variable {name}={value!r} is not a flag; fix: set it to 1 or 0")
    return value in ("1", "true", "yes")


def _whole(name: str, default: int, low: int, high: int, what: str, fix: str) -> int:
    """A whole number from ``low`` to ``high``; the error names ``what`` it should be and the ``fix``."""
    value = os.environ.get(name, str(default)).strip()
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(f"environment variable {name}={value!r} is not {what}; fix: {fix}")
    return int(value)


def _count(name: str, default: int) -> int:
    return _whole(name, default, 0, 1_000_000, "a limit",
                  f"set it to a whole number (default {default}; 0 turns the limit off)")


def _days(name: str, default: int) -> int:
    return _whole(name, default, 1, 3650, "a number of days",
                  f"set it to a whole number from 1 to 3650 (default {default})")


def _keep_days(name: str, default: int) -> int:
    return _whole(name, default, 0, 36500, "a retention period",
                  f"set it to a number of days from 1 to 36500, or 0 to keep forever (default {default})")


@dataclass(frozen=True)
class RetentionSettings:
    """How long conversation content and the audit log are kept (bot/store/retention.py).

    Attributes:
        days: ``BOT_RETENTION_DAYS`` (default 365; 0 keeps forever): resolved tickets'
            transcripts, notes and customer details, chat messages' texts, conversations'
            customer details and CSAT comments older than this are removed (the rows and
            their counts stay for analytics); transcript mails, handled undelivered packets
            and sent or dead webhook deliveries are deleted. Open tickets are never touched.
        audit_days: ``BOT_AUDIT_RETENTION_DAYS`` (default 730; 0 keeps forever): audit log
            lines older than this are deleted. Not shorter than ``days`` (unless one is 0).
        interval_hours: ``BOT_RETENTION_INTERVAL_HOURS`` (default 24): how often one of the
            bot servers runs it (0: only ``bot retention run``).
    """

    days: int = 365
    audit_days: int = 730
    interval_hours: int = 24

    @classmethod
    def from_env(cls) -> "RetentionSettings":
        """The retention settings of the environment.

        Raises:
            ValueError: A bad number, or an audit log kept for less time than the content.
        """
        days = _keep_days("BOT_RETENTION_DAYS", cls.days)
        audit_days = _keep_days("BOT_AUDIT_RETENTION_DAYS", cls.audit_days)
        if days and audit_days and audit_days < days:
            raise ValueError(f"BOT_AUDIT_RETENTION_DAYS={audit_days} is shorter than BOT_RETENTION_DAYS={days}; "
                             "fix: keep the audit log at least as long as the conversations (or set it to 0: forever)")
        hours = _whole("BOT_RETENTION_INTERVAL_HOURS", cls.interval_hours, 0, 24 * 31, "a number of hours",
                       f"set it to a whole number from 1 to 744, or 0: only `bot retention run` (default {cls.interval_hours})")
        return cls(days=days, audit_days=audit_days, interval_hours=hours)


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, the form browsers send in ``Origin``.

    Raises:
        ValueError: Not an http(s) origin (a path, query, user name or ``*`` is refused).
    """
    from urllib.parse import urlsplit

    text = value.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query \
            or parts.fragment or parts.username or parts.password or "*" in text:
        raise ValueError(f"{value!r} is not an origin; fix: write it as https://www.example.jp "
                         f"(scheme, host and an optional port; no path, no wildcard)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has a bad port number") from None
    default_port = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


def _moment(name: str) -> dt.datetime | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not a date and time; "
                         f"fix: write it as 2026-11-24T10:00 (Japan time) or leave it unset for the real clock") from None


def _origins(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    try:
        return tuple(dict.fromkeys(normalize_origin(v) for v in raw.replace(",", " ").split()))
    except ValueError as exc:
        raise ValueError(f"environment variable {name}: {exc}") from None


@dataclass(frozen=True)
class Limits:
    """Limits for unauthenticated clients (customers' browsers); 0 turns one off.

    Attributes:
        sessions_per_address_per_hour: New conversations one client address may start per
            hour (``BOT_LIMIT_SESSIONS_PER_HOUR``, default 30; IPv6 counted per /64).
        sockets_per_conversation: Open WebSockets of one conversation on one bot server
            (``BOT_LIMIT_SOCKETS_PER_CONVERSATION``, default 5: tabs of one browser).
        messages_per_minute: Customer messages one conversation may send per minute
            (``BOT_LIMIT_MESSAGES_PER_MINUTE``, default 20).
        open_tickets_per_customer: Unresolved tickets of one customer: the conversation and
            every conversation started from the same address (``BOT_LIMIT_OPEN_TICKETS``,
            default 3). A handoff beyond it is refused politely and never reaches the queue.
        ticket_entries: Transcript entries of one ticket after which the customer's (and
            the bot's) messages are no longer added (``BOT_LIMIT_TICKET_ENTRIES``, default
            1000); agents' replies and notes always are.
    """

    sessions_per_address_per_hour: int = 30
    sockets_per_conversation: int = 5
    messages_per_minute: int = 20
    open_tickets_per_customer: int = 3
    ticket_entries: int = 1000

    @classmethod
    def from_env(cls) -> "Limits":
        """The limits the environment sets (defaults for the variables not set)."""
        return cls(
            sessions_per_address_per_hour=_count("BOT_LIMIT_SESSIONS_PER_HOUR", cls.sessions_per_address_per_hour),
            sockets_per_conversation=_count("BOT_LIMIT_SOCKETS_PER_CONVERSATION", cls.sockets_per_conversation),
            messages_per_minute=_count("BOT_LIMIT_MESSAGES_PER_MINUTE", cls.messages_per_minute),
            open_tickets_per_customer=_count("BOT_LIMIT_OPEN_TICKETS", cls.open_tickets_per_customer),
            ticket_entries=_count("BOT_LIMIT_TICKET_ENTRIES", cls.ticket_entries),
        )


def _secret(name: str) -> str:
    """``NAME``, or the content of the file ``NAME_FILE`` names (stripped); empty when neither is set."""
    value = os.environ.get(name, "").strip()
    file_name = os.environ.get(f"{name}_FILE", "").strip()
    if value and file_name:
        raise ValueError(f"both {name} and {name}_FILE are set; fix: set only one of them")
    if file_name:
        try:
            return Path(file_name).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"environment variable {name}_FILE={file_name!r}: the file cannot be read "
                             f"({exc.strerror}); fix: point it at a readable file holding the value") from None
    return value


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name, str(default)).strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ValueError(f"environment variable {name}={value!r} is not a number of seconds; "
                         f"fix: set it to a number from 0 to 3600 (default {default})")
    return seconds


LINE_PUBLIC_API = "https://api.line.me"


@dataclass(frozen=True)
class LineSettings:
    """The LINE Messaging API channel (docs/line.md); off unless both secrets are set.

    Attributes:
        channel_secret: ``LINE_CHANNEL_SECRET`` (or ``LINE_CHANNEL_SECRET_FILE``): checks the
            webhook's ``X-Line-Signature``.
        access_token: ``LINE_CHANNEL_ACCESS_TOKEN`` (or ``..._FILE``): the long-lived channel
            access token for the Messaging API.
        api_url: ``LINE_API_URL`` (default LINE's public API host); tests point it at the
            local stand-in (tests/line_standin.py).
        reply_token_seconds: ``LINE_REPLY_TOKEN_SECONDS`` (default 50): how long after the
            webhook a reply token is still used; later messages go out by push.
        push_warning: ``LINE_PUSH_WARNING`` (default 1000): push messages per month above
            which the analytics page warns (push messages are billed); 0 turns it off.
        mark_as_read: ``LINE_MARK_AS_READ=1``: the customer's messages show 既読 when an
            agent opens or takes the conversation's ticket (off by default).
        groups: ``LINE_GROUPS=1``: also answer in group chats and rooms the account was
            invited to, one conversation per group or room (off by default: 1:1 chats only).
    """

    channel_secret: str = ""
    access_token: str = ""
    api_url: str = LINE_PUBLIC_API
    reply_token_seconds: float = 50.0
    push_warning: int = 1000
    mark_as_read: bool = False
    groups: bool = False

    @property
    def enabled(self) -> bool:
        """Whether the channel is on (both the secret and the access token are set)."""
        return bool(self.channel_secret and self.access_token)

    @classmethod
    def from_env(cls) -> "LineSettings":
        """The LINE settings of the environment."""
        return cls(
            channel_secret=_secret("LINE_CHANNEL_SECRET"),
            access_token=_secret("LINE_CHANNEL_ACCESS_TOKEN"),
            api_url=(os.environ.get("LINE_API_URL", "").strip() or LINE_PUBLIC_API).rstrip("/"),
            reply_token_seconds=_seconds("LINE_REPLY_TOKEN_SECONDS", cls.reply_token_seconds),
            push_warning=_count("LINE_PUSH_WARNING", cls.push_warning),
            mark_as_read=_flag("LINE_MARK_AS_READ"),
            groups=_flag("LINE_GROUPS"),
        )


@dataclass(frozen=True)
class SmtpSettings:
    """The mail server that sends transcripts to customers; off unless ``BOT_SMTP_HOST`` is set.

    Attributes:
        host: ``BOT_SMTP_HOST``: the SMTP server (empty by default: no mail is sent and the
            widget hides 「会話の記録をメールで受け取る」).
        port: ``BOT_SMTP_PORT`` (default 587).
        sender: ``BOT_SMTP_FROM``: the From address (required with a host), e.g.
            ``support@example.jp`` or ``みらいメンバーズ サポート <support@example.jp>``.
        username: ``BOT_SMTP_USER``: log in with it (empty: no login).
        password: ``BOT_SMTP_PASSWORD`` (or ``BOT_SMTP_PASSWORD_FILE``).
        security: ``BOT_SMTP_SECURITY``: ``starttls`` (default), ``ssl`` (TLS from the
            start, usually port 465) or ``none`` (plain; only for a relay on this host).
        timeout: ``BOT_SMTP_TIMEOUT`` seconds per attempt (default 20).
        attempts: ``BOT_SMTP_ATTEMPTS`` (default 5): tries of one mail before it is given up
            and reported; the waits between tries grow (10 s, 1 min, 5 min, 15 min, ...).
    """

    host: str = ""
    port: int = 587
    sender: str = ""
    username: str = ""
    password: str = ""
    security: str = "starttls"
    timeout: float = 20.0
    attempts: int = 5

    @property
    def enabled(self) -> bool:
        """Whether transcripts can be mailed (a host and a From address are set)."""
        return bool(self.host and self.sender)

    @classmethod
    def from_env(cls) -> "SmtpSettings":
        """The SMTP settings of the environment.

        Raises:
            ValueError: A host without a From address, an unknown security mode, a bad number.
        """
        host = os.environ.get("BOT_SMTP_HOST", "").strip()
        sender = os.environ.get("BOT_SMTP_FROM", "").strip()
        if host and not sender:
            raise ValueError("BOT_SMTP_HOST is set but BOT_SMTP_FROM is not; fix: set BOT_SMTP_FROM to the "
                             "address transcripts are sent from, e.g. support@example.jp")
        security = os.environ.get("BOT_SMTP_SECURITY", "starttls").strip().lower() or "starttls"
        if security not in ("starttls", "ssl", "none"):
            raise ValueError(f"environment variable BOT_SMTP_SECURITY={security!r} is unknown; "
                             "fix: set it to starttls (default), ssl or none")
        attempts = _count("BOT_SMTP_ATTEMPTS", cls.attempts)
        return cls(host=host, port=_port("BOT_SMTP_PORT", cls.port), sender=sender,
                   username=os.environ.get("BOT_SMTP_USER", "").strip(), password=_secret("BOT_SMTP_PASSWORD"),
                   security=security, timeout=_seconds("BOT_SMTP_TIMEOUT", cls.timeout) or cls.timeout,
                   attempts=max(1, attempts))


@dataclass(frozen=True)
class WebhookSettings:
    """Outbound webhooks to CRMs and ticketing tools (docs/webhooks.md); off without a file.

    Attributes:
        file: ``BOT_WEBHOOKS_FILE``: the YAML file naming each receiver's URL, events and
            secret (:mod:`bot.webhooks.config`). Unset by default: no event is queued.
        attempts: ``BOT_WEBHOOK_ATTEMPTS`` (default 10): tries of one delivery before it is
            dead-lettered (listed for admins, who can send it again).
        retry_seconds: ``BOT_WEBHOOK_RETRY_SECONDS`` (default 10): the wait after the first
            failed try; it doubles after each further one, up to an hour.
        timeout: ``BOT_WEBHOOK_TIMEOUT`` seconds for one POST, connection and answer (default 10).
    """

    file: Path | None = None
    attempts: int = 10
    retry_seconds: float = 10.0
    timeout: float = 10.0

    @classmethod
    def from_env(cls) -> "WebhookSettings":
        """The webhook settings of the environment.

        Raises:
            ValueError: A bad number.
        """
        value = os.environ.get("BOT_WEBHOOKS_FILE", "").strip()
        return cls(file=Path(value).expanduser().resolve() if value else None,
                   attempts=max(1, _count("BOT_WEBHOOK_ATTEMPTS", cls.attempts)),
                   retry_seconds=_seconds("BOT_WEBHOOK_RETRY_SECONDS", cls.retry_seconds),
                   timeout=_seconds("BOT_WEBHOOK_TIMEOUT", cls.timeout) or cls.timeout)


def _version(name: str) -> int:
    return _whole(name, 1, 1, 999_999, "a key version",
                  "set it to a whole number from 1 (default 1), one higher to rotate the key")


@dataclass(frozen=True)
class Settings:
    """Runtime settings.

    Attributes:
        knowledge_dir: FAQ source of truth (``BOT_KNOWLEDGE_DIR``, default ``knowledge/``).
        models_dir: Where ``rasa train`` writes models (``BOT_MODELS_DIR``, default ``models/``).
        rasa_port: Port of the Rasa server started by ``bot run`` (``BOT_RASA_PORT``).
        action_port: Port of the action server (``BOT_ACTION_PORT``).
        database_url: Handoff queue database (``DATABASE_URL``; default a SQLite file
            under ``var/``, no set-up needed; ``postgresql://...`` to scale out).
        outbox_file: Where handoffs wait while the database is unreachable (``BOT_OUTBOX``).
        server_port: Port of the bot server: widget, demo page, agent console (``BOT_SERVER_PORT``).
        rasa_url: Where the bot server reaches Rasa (``BOT_RASA_URL``; default the local
            Rasa server on ``rasa_port``). Several servers, separated by commas, share the
            conversations (:class:`bot.server.rasa_client.RasaClient`).
        secret_key_file: Signing key for agent sessions and conversation tokens
            (``BOT_SECRET_KEY_FILE``; created with a random key on first start).
        events_url: ``BOT_EVENTS_URL=redis://127.0.0.1:6379/0`` when several bot servers
            share one database (scale-out); empty by default (one server, no Redis).
        rasa_token_file: Token of Rasa's HTTP API (``BOT_RASA_TOKEN_FILE``, default
            ``var/rasa.token``): ``bot run`` creates it (random, owner-only) on first start
            and starts Rasa with it; the bot server sends it to Rasa's tracker API.
        https: ``BOT_HTTPS=1`` when the console is published over https (a TLS proxy in
            front): the session cookie gets ``Secure`` and responses carry HSTS. Requests
            whose scheme is https (uvicorn believes ``X-Forwarded-Proto`` only from the
            proxies in ``FORWARDED_ALLOW_IPS``, loopback by default) get both without it.
        session_key_version: ``BOT_SESSION_KEY_VERSION`` (default 1): one higher rotates
            the key of agent session cookies (every agent logs in again); customers'
            conversation tokens keep working.
        token_key_version: ``BOT_TOKEN_KEY_VERSION`` (default 1): one higher rotates the
            key of customers' conversation tokens; agent sessions keep working.
        widget_origins: ``BOT_WIDGET_ORIGINS``: origins (``https://www.example.jp``, comma or
            space separated) of the sites that embed the widget. Their pages may open the
            chat WebSocket and call the chat API (CORS); the bot server's own origin always
            may. Empty by default: the widget works on the bot server's own pages only.
        conversation_idle_days: ``BOT_CONVERSATION_IDLE_DAYS`` (default 30): a customer's
            conversation token stops working after this many days without use.
        keep_page_url_query: ``BOT_KEEP_PAGE_URL_QUERY=1`` keeps the query string of the
            page the customer chatted from; by default only scheme, host and path are
            stored (the fragment never is).
        limits: Limits for customers' browsers (:class:`Limits`, ``BOT_LIMIT_*``).
        fixed_now: ``BOT_NOW=2026-11-23T12:00`` (ISO 8601; without an offset, Japan time):
            the time the bot takes as "now" when it decides whether a person is on duty
            (:func:`bot.triage.hours.japan_now`). For tests and out-of-hours demos; unset
            by default (the real clock).
        line: The LINE channel (:class:`LineSettings`, ``LINE_*``); off without its secrets.
        smtp: The mail server for transcripts (:class:`SmtpSettings`, ``BOT_SMTP_*``); off
            without ``BOT_SMTP_HOST``.
        offer_seconds: ``BOT_DESK_OFFER_SECONDS`` (default 30): a waiting ticket offered to an
            agent who does not accept it within this many seconds is offered to the next one
            (bot/store/desk.py); 0 turns automatic offers off (agents claim by hand).
        reply_overdue_minutes: ``BOT_DESK_REPLY_MINUTES`` (default 5): a claimed ticket whose
            customer has waited this long for the agent's reply is flagged in the console,
            for another agent to take over; 0 turns the flag off.
        webhooks: Outbound webhooks (:class:`WebhookSettings`, ``BOT_WEBHOOKS_FILE`` and
            ``BOT_WEBHOOK_*``); off without the file.
        escalate_after_seconds: ``BOT_ESCALATE_AFTER_SECONDS`` (default 600, up to 3600): a
            complaint or anger ticket whose customer has waited this long unclaimed, or
            claimed without the agent's reply, is escalated to the supervisors automatically
            (bot/store/escalation.py); 0 turns automatic escalation off.
        retention: How long conversations and the audit log are kept (:class:`RetentionSettings`,
            ``BOT_RETENTION_DAYS``, ``BOT_AUDIT_RETENTION_DAYS``).
    """

    knowledge_dir: Path
    models_dir: Path
    rasa_port: int
    action_port: int
    database_url: str
    outbox_file: Path
    server_port: int
    rasa_url: str
    secret_key_file: Path
    events_url: str = ""
    rasa_token_file: Path = PROJECT_ROOT / "var" / "rasa.token"
    https: bool = False
    session_key_version: int = 1
    token_key_version: int = 1
    widget_origins: tuple[str, ...] = ()
    conversation_idle_days: int = 30
    keep_page_url_query: bool = False
    limits: Limits = Limits()
    fixed_now: dt.datetime | None = None
    line: LineSettings = LineSettings()
    smtp: SmtpSettings = SmtpSettings()
    offer_seconds: int = 30
    reply_overdue_minutes: int = 5
    webhooks: WebhookSettings = WebhookSettings()
    escalate_after_seconds: float = 600.0
    retention: RetentionSettings = RetentionSettings()

    def audited(self) -> dict[str, Any]:
        """The settings that change how agents' and customers' data is handled, without
        secrets: a server that starts with other values than the last recorded ones writes
        the change into the audit log (bot/store/audit.py)."""
        return {"retention_days": self.retention.days, "audit_retention_days": self.retention.audit_days,
                "retention_interval_hours": self.retention.interval_hours,
                "conversation_idle_days": self.conversation_idle_days, "keep_page_url_query": self.keep_page_url_query,
                "https": self.https, "widget_origins": list(self.widget_origins),
                "session_key_version": self.session_key_version, "token_key_version": self.token_key_version,
                "limits": dict(vars(self.limits)), "offer_seconds": self.offer_seconds,
                "reply_overdue_minutes": self.reply_overdue_minutes,
                "escalate_after_seconds": self.escalate_after_seconds,
                "smtp": {"host": self.smtp.host, "port": self.smtp.port, "sender": self.smtp.sender,
                         "security": self.smtp.security},
                "webhooks_file": str(self.webhooks.file) if self.webhooks.file else None,
                "line": self.line.enabled}

    def knowledge_file(self, name: str) -> Path:
        """A settings file of the knowledge folder (``synonyms.yml``, ``triage.yml``, ``hours.yml``).

        A folder made by ``bot kb import SHEET --kb DIR`` holds only FAQ entries; it then
        uses the project's own file from ``knowledge/``, so the bot answers from it at once.
        """
        own = self.knowledge_dir / name
        return own if own.exists() else PROJECT_ROOT / "knowledge" / name

    @property
    def synonyms_file(self) -> Path:
        """The editors' synonym table."""
        return self.knowledge_file("synonyms.yml")

    @property
    def triage_file(self) -> Path:
        """The editors' anger rules."""
        return self.knowledge_file("triage.yml")

    @property
    def hours_file(self) -> Path:
        """Staffed hours of the human agents."""
        return self.knowledge_file("hours.yml")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the settings once per process.

    Returns:
        The settings.
    """
    # Rasa must never try to reach its telemetry hosts from here (closed network).
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    return Settings(
        knowledge_dir=_path("BOT_KNOWLEDGE_DIR", PROJECT_ROOT / "knowledge"),
        models_dir=_path("BOT_MODELS_DIR", PROJECT_ROOT / "models"),
        rasa_port=_port("BOT_RASA_PORT", 5005),
        action_port=_port("BOT_ACTION_PORT", 5055),
        database_url=os.environ.get("DATABASE_URL", f"sqlite:///{PROJECT_ROOT / 'var' / 'handoff.db'}"),
        outbox_file=_path("BOT_OUTBOX", PROJECT_ROOT / "var" / "outbox.jsonl"),
        server_port=_port("BOT_SERVER_PORT", 8000),
        rasa_url=os.environ.get("BOT_RASA_URL", f"http://127.0.0.1:{_port('BOT_RASA_PORT', 5005)}").rstrip("/"),
        secret_key_file=_path("BOT_SECRET_KEY_FILE", PROJECT_ROOT / "var" / "secret.key"),
        events_url=os.environ.get("BOT_EVENTS_URL", ""),
        rasa_token_file=_path("BOT_RASA_TOKEN_FILE", PROJECT_ROOT / "var" / "rasa.token"),
        https=_flag("BOT_HTTPS"),
        session_key_version=_version("BOT_SESSION_KEY_VERSION"),
        token_key_version=_version("BOT_TOKEN_KEY_VERSION"),
        widget_origins=_origins("BOT_WIDGET_ORIGINS"),
        conversation_idle_days=_days("BOT_CONVERSATION_IDLE_DAYS", 30),
        keep_page_url_query=_flag("BOT_KEEP_PAGE_URL_QUERY"),
        limits=Limits.from_env(),
        fixed_now=_moment("BOT_NOW"),
        line=LineSettings.from_env(),
        smtp=SmtpSettings.from_env(),
        offer_seconds=_count("BOT_DESK_OFFER_SECONDS", 30),
        reply_overdue_minutes=_count("BOT_DESK_REPLY_MINUTES", 5),
        webhooks=WebhookSettings.from_env(),
        escalate_after_seconds=_seconds("BOT_ESCALATE_AFTER_SECONDS", 600.0),
        retention=RetentionSettings.from_env(),
    )
