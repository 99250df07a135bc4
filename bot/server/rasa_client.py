"""The bot server's view of the Rasa server: send a customer message, pause, resume.

Rasa's REST channel answers a text message and its custom payload as two separate
messages; :func:`merge_bot_messages` puts them back together so each bot message
carries its route, FAQ id and handoff details.

Customer text goes through :func:`safe_for_rasa` so it can never be an intent command.
Rasa's HTTP API (trackers, model) requires a token (``bot run`` starts Rasa with
``--auth-token``); it is kept in an owner-only file (setting ``BOT_RASA_TOKEN_FILE``),
see :func:`create_rasa_token`.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

RASA_TIMEOUT_SECONDS = 30
MIN_TOKEN_CHARS = 32
# Rasa unpacks text starting with this (after str.strip) as an intent command.
INTENT_COMMAND_PREFIX = "/"
# What a leading "/" of customer text becomes: the full-width solidus. Rasa does not
# parse it as a command, and our tokenizer's NFKC folds it back to "/", so the NLU
# sees exactly what the customer wrote.
SLASH_STAND_IN = "\uff0f"


class RasaUnavailable(RuntimeError):
    """Rasa did not answer (down, restarting or too slow)."""


@dataclass
class BotMessage:
    """One bot message with its quick replies and machine-readable payload."""

    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)


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
    """HTTP client of one Rasa server (REST channel and tracker API)."""

    def __init__(self, base_url: str, token: str | None = None, token_file: Path | None = None) -> None:
        """Talk to ``base_url`` (e.g. ``http://127.0.0.1:5005``).

        Args:
            base_url: The Rasa server.
            token: Token of Rasa's HTTP API (``--auth-token``), sent as ``?token=`` to the
                tracker API; ``None`` reads it from ``token_file`` when first needed.
            token_file: Where the token is kept; ``None`` means the setting
                ``BOT_RASA_TOKEN_FILE`` (the file ``bot run`` gives Rasa).
        """
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._token_file = token_file
        self._session: aiohttp.ClientSession | None = None

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
        raw = await self._post("/webhooks/rest/webhook", body)
        return merge_bot_messages(raw if isinstance(raw, list) else [])

    async def resume(self, conversation_id: str) -> None:
        """Give the conversation back to the bot (ConversationResumed).

        Raises:
            RasaUnavailable: Rasa could not be reached.
        """
        # action_listen closes the turn the handoff paused: without it Rasa's rules read the
        # next message as part of the old turn (and may hand off again).
        await self._post(f"/conversations/{conversation_id}/tracker/events",
                         [{"event": "resume"}, {"event": "action", "name": "action_listen"}],
                         params=self._token_params())

    async def _post(self, path: str, body: Any, params: dict[str, str] | None = None) -> Any:
        try:
            async with self._client().post(self._base_url + path, json=body, params=params) as response:
                if response.status == 401:
                    raise RasaUnavailable(f"Rasa refused the token for {path} (401): BOT_RASA_TOKEN_FILE must "
                                          "name the token file the Rasa server was started with")
                if response.status >= 400:
                    raise RasaUnavailable(f"Rasa answered {response.status} for {path}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: not JSON
            raise RasaUnavailable(f"Rasa at {self._base_url} unreachable: {exc}") from exc
