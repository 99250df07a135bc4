"""The bot server's view of the Rasa server: send a customer message, pause, resume.

Rasa's REST channel answers a text message and its custom payload as two separate
messages; :func:`merge_bot_messages` puts them back together so each bot message
carries its route, FAQ id and handoff details.

Customer text goes through :func:`safe_for_rasa` so it can never be an intent command.
Rasa's HTTP API (trackers, model) requires a token (``bot run`` starts Rasa with
``--auth-token``); it is kept in an owner-only file (setting ``BOT_RASA_TOKEN_FILE``),
see :func:`create_rasa_token`.

Several Rasa servers (scale-out: ``BOT_RASA_URL=http://127.0.0.1:5005,http://127.0.0.1:5006``)
share one tracker store and one lock store, so any of them can answer any conversation.
:class:`RasaClient` spreads conversations over them (each conversation keeps its server while
it is up) and sends a request to the next one only when the first certainly did not take it:
no connection, the connection dropped before an answer, or a proxy's 502/503/504. A timeout
or a 500 is not retried: that server may still be working on the turn.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import aiohttp

from bot.handoff.packet import handoff_key

RASA_TIMEOUT_SECONDS = 30
# How long a Rasa server that refused a connection is tried only after the others.
DOWN_SECONDS = 10.0
# Answers of a proxy in front of a Rasa server that mean the request never reached it.
NOT_TAKEN_STATUSES = frozenset({502, 503, 504})
MIN_TOKEN_CHARS = 32
# Rasa unpacks text starting with this (after str.strip) as an intent command.
INTENT_COMMAND_PREFIX = "/"
# What a leading "/" of customer text becomes: the full-width solidus. Rasa does not
# parse it as a command, and our tokenizer's NFKC folds it back to "/", so the NLU
# sees exactly what the customer wrote.
SLASH_STAND_IN = "\uff0f"


class RasaUnavailable(RuntimeError):
    """Rasa did not answer (down, restarting or too slow).

    ``maybe_taken``: Rasa may have taken the turn (a timeout, a 5xx, an unreadable answer),
    so an action it ran (a handoff's ticket) may still happen; ``False``: it certainly did not.
    """

    def __init__(self, message: str, maybe_taken: bool = False) -> None:
        super().__init__(message)
        self.maybe_taken = maybe_taken


class _NotTaken(RasaUnavailable):
    """This Rasa server certainly did not take the request: another one may."""


def parse_rasa_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """The Rasa servers of ``BOT_RASA_URL``: one URL, or several separated by commas or spaces.

    Raises:
        ValueError: No URL, or one that is not http(s); names the fix.
    """
    items = urls.replace(",", " ").split() if isinstance(urls, str) else list(urls)
    parsed = tuple(dict.fromkeys(item.strip().rstrip("/") for item in items if item.strip()))
    bad = [u for u in parsed if not u.startswith(("http://", "https://"))]
    if not parsed or bad:
        raise ValueError(f"BOT_RASA_URL={urls!r}: Rasa サーバーの URL として使えません。"
                         "対処: http://127.0.0.1:5005 のように書き、複数ならカンマで区切ってください。")
    return parsed


@dataclass
class BotMessage:
    """One bot message with its quick replies and machine-readable payload."""

    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PausedHandoff:
    """The handoff that paused a conversation in Rasa (read from its tracker).

    Attributes:
        key: The idempotency key of the handoff's packet, i.e. of its ticket once filed
            (:func:`bot.handoff.packet.handoff_key` over the events before the pause).
        text: The handoff reply Rasa sent ("" if the tracker holds none).
        customer_text: The customer message that started the handoff, as Rasa received it.
    """

    key: str
    text: str
    customer_text: str


def paused_handoff(conversation_id: str, tracker: dict[str, Any]) -> PausedHandoff | None:
    """The handoff that paused the conversation, from Rasa's tracker JSON; ``None`` when not paused.

    Only ``action_handoff`` pauses Rasa (ConversationPaused), so the latest ``pause`` event
    closes a handoff's turn, and the latest customer message before it is what the
    action's packet key was computed from.
    """
    events = [e for e in tracker.get("events") or [] if isinstance(e, dict)]
    pauses = [i for i, e in enumerate(events) if e.get("event") == "pause"]
    if not tracker.get("paused") or not pauses:
        return None
    before = events[:pauses[-1]]
    replies = [e for e in before if e.get("event") == "bot"]
    users = [e for e in before if e.get("event") == "user"]
    return PausedHandoff(handoff_key(conversation_id, before), str(replies[-1].get("text") or "") if replies else "",
                         str(users[-1].get("text") or "") if users else "")


def merge_bot_messages(raw: list[dict[str, Any]]) -> list[BotMessage]:
    """Join each ``custom`` message to the text message before it."""
    merged: list[BotMessage] = []
    for item in raw:
        if item.get("text"):
            merged.append(BotMessage(str(item["text"]), list(item.get("buttons") or [])))
        elif isinstance(item.get("custom"), dict):
            if merged and not merged[-1].custom:
                merged[-1].custom = item["custom"]
            else:
                merged.append(BotMessage("", [], item["custom"]))
    return merged


def safe_for_rasa(text: str) -> str:
    """Customer text that Rasa cannot mistake for an intent command (``/restart`` ...).

    Rasa strips whitespace (``str.strip``, which also removes full-width spaces) and
    unpacks text starting with "/" into an intent and entities (``RegexMessageHandler``),
    before any NLU component sees it. So the first character after whitespace and
    invisible characters (zero-width spaces, BOM, other format and control characters)
    is replaced when it is "/": by the full-width solidus, which NFKC turns back
    into "/" for the NLU. Only the payloads of buttons the bot offered may be commands;
    they do not come through here.

    Args:
        text: What the customer wrote.

    Returns:
        ``text``, with a leading "/" replaced by "／" (U+FF0F).
    """
    for index, char in enumerate(text):
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
            continue
        if char == INTENT_COMMAND_PREFIX:
            return text[:index] + SLASH_STAND_IN + text[index + 1:]
        break
    return text


def read_rasa_token(path: Path) -> str | None:
    """The token of Rasa's HTTP API kept in ``path``; ``None`` when there is no such file.

    Raises:
        ValueError: The file is readable by other users, or the token is too short.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & 0o077:
        raise ValueError(f"{path}: Rasa のトークンファイルが他のユーザーから読めます。"
                         f"`chmod 600 {path}` を実行するか、ファイルを削除して新しいトークンを作ってください。")
    token = path.read_text(encoding="ascii").strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"{path}: Rasa のトークンが短すぎます（{MIN_TOKEN_CHARS} 文字以上）。"
                         "ファイルを削除すると新しいトークンが作られます。")
    return token


def create_rasa_token(path: Path) -> str:
    """The token in ``path``, created (random, URL-safe, owner-only 0600) on first use.

    Raises:
        ValueError: See :func:`read_rasa_token`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # kept from an earlier start (or created by a concurrent one)
    else:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(48))
    token = read_rasa_token(path)
    if token is None:  # deleted again at this very moment
        raise ValueError(f"{path}: Rasa のトークンファイルを作成できませんでした。")
    return token


class RasaClient:
    """HTTP client of the Rasa servers (REST channel and tracker API), one or several."""

    def __init__(self, base_url: str | Sequence[str], token: str | None = None,
                 token_file: Path | None = None) -> None:
        """Talk to ``base_url`` (e.g. ``http://127.0.0.1:5005``).

        Args:
            base_url: The Rasa server; several (a sequence, or one string separated by commas)
                share the conversations (module docstring).
            token: Token of Rasa's HTTP API (``--auth-token``), sent as ``?token=`` to the
                tracker API; ``None`` reads it from ``token_file`` when first needed.
            token_file: Where the token is kept; ``None`` means the setting
                ``BOT_RASA_TOKEN_FILE`` (the file ``bot run`` gives Rasa).

        Raises:
            ValueError: ``base_url`` holds no usable URL.
        """
        self._base_urls = parse_rasa_urls(base_url)
        self._down_until: dict[str, float] = {}
        self._token = token
        self._token_file = token_file
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_urls(self) -> tuple[str, ...]:
        """The Rasa servers, in configured order."""
        return self._base_urls

    def servers_for(self, conversation_id: str) -> list[str]:
        """The order in which ``conversation_id``'s requests try the Rasa servers.

        The first is fixed by a hash of the id (conversations spread evenly, and each keeps
        its server); servers that recently refused a connection go last.
        """
        count = len(self._base_urls)
        start = zlib.crc32(conversation_id.encode("utf-8")) % count
        ring = [self._base_urls[(start + i) % count] for i in range(count)]
        now = time.monotonic()
        return sorted(ring, key=lambda url: self._down_until.get(url, 0.0) > now)

    def _token_params(self) -> dict[str, str]:
        """``{"token": ...}`` for the tracker API (empty while no token file exists)."""
        if self._token is None:
            if self._token_file is None:
                from bot.settings import get_settings

                self._token_file = get_settings().rasa_token_file
            try:
                self._token = read_rasa_token(self._token_file)
            except (OSError, ValueError) as exc:
                raise RasaUnavailable(f"Rasa token unusable: {exc}") from exc
        return {"token": self._token} if self._token else {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=RASA_TIMEOUT_SECONDS))
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[BotMessage]:
        """Send a message as the customer; the bot's replies (none while paused).

        Raises:
            RasaUnavailable: Rasa could not be reached or answered an error.
        """
        body = {"sender": conversation_id, "message": text, "metadata": metadata}
        raw = await self._request(conversation_id, "POST", "/webhooks/rest/webhook", body)
        return merge_bot_messages(raw if isinstance(raw, list) else [])

    async def resume(self, conversation_id: str) -> None:
        """Give the conversation back to the bot (ConversationResumed).

        Raises:
            RasaUnavailable: Rasa could not be reached.
        """
        # action_listen closes the turn the handoff paused: without it Rasa's rules read the
        # next message as part of the old turn (and may hand off again).
        await self._request(conversation_id, "POST", f"/conversations/{conversation_id}/tracker/events",
                            [{"event": "resume"}, {"event": "action", "name": "action_listen"}],
                            params=self._token_params())

    async def paused_handoff(self, conversation_id: str) -> PausedHandoff | None:
        """The handoff Rasa is paused by, if it is paused (:func:`paused_handoff`).

        Raises:
            RasaUnavailable: Rasa could not be reached.
        """
        tracker = await self._request(conversation_id, "GET", f"/conversations/{conversation_id}/tracker", None,
                                      params=self._token_params())
        return paused_handoff(conversation_id, tracker if isinstance(tracker, dict) else {})

    async def _request(self, conversation_id: str, method: str, path: str, body: Any,
                       params: dict[str, str] | None = None) -> Any:
        """Ask the conversation's Rasa server, or the next when it did not take the request."""
        errors: list[str] = []
        for base_url in self.servers_for(conversation_id):
            try:
                # In a task of its own: aiohttp's timeout cancels the task the request runs in and never
                # takes that back (aiohttp 3.9: no uncancel), which left the caller's task (a customer's
                # socket) being cancelled once its Rasa call timed out.
                answer = await asyncio.create_task(self._request_to(base_url, method, path, body, params))
            except _NotTaken as exc:
                self._down_until[base_url] = time.monotonic() + DOWN_SECONDS
                errors.append(str(exc))
                continue
            self._down_until.pop(base_url, None)
            return answer
        raise RasaUnavailable("; ".join(errors))

    async def _request_to(self, base_url: str, method: str, path: str, body: Any,
                          params: dict[str, str] | None) -> Any:
        try:
            async with self._client().request(method, base_url + path, json=body, params=params) as response:
                if response.status == 401:
                    raise RasaUnavailable(f"Rasa refused the token for {path} (401): BOT_RASA_TOKEN_FILE must "
                                          "name the token file the Rasa server was started with")
                if response.status in NOT_TAKEN_STATUSES:
                    raise _NotTaken(f"Rasa at {base_url} answered {response.status} for {path}")
                if response.status >= 400:
                    raise RasaUnavailable(f"Rasa answered {response.status} for {path}", response.status >= 500)
                return await response.json(content_type=None)
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            # Never connected, or the server went away before answering (killed): Rasa saves a
            # turn only when it is done, so another server can take it.
            raise _NotTaken(f"Rasa at {base_url} unreachable: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: not JSON
            raise RasaUnavailable(f"Rasa at {base_url} unreachable: {exc}", maybe_taken=True) from exc
