"""The bot server's view of the Rasa server: send a customer message, pause, resume.

Rasa's REST channel answers a text message and its custom payload as two separate
messages; :func:`merge_bot_messages` puts them back together so each bot message
carries its route, FAQ id and handoff details.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

RASA_TIMEOUT_SECONDS = 30


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
    """Customer text Rasa cannot mistake for an intent command (``/restart`` ...).

    Rasa treats text starting with "/" as an intent; a leading space keeps it a message
    (our tokenizer ignores the space). Only buttons the bot offered send intents.
    """
    return f" {text}" if text.lstrip().startswith("/") else text


class RasaClient:
    """HTTP client of one Rasa server (REST channel and tracker API)."""

    def __init__(self, base_url: str) -> None:
        """Talk to ``base_url`` (e.g. ``http://127.0.0.1:5005``)."""
        self._base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

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
                         [{"event": "resume"}, {"event": "action", "name": "action_listen"}])

    async def _post(self, path: str, body: Any) -> Any:
        try:
            async with self._client().post(self._base_url + path, json=body) as response:
                if response.status >= 400:
                    raise RasaUnavailable(f"Rasa answered {response.status} for {path}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: not JSON
            raise RasaUnavailable(f"Rasa at {self._base_url} unreachable: {exc}") from exc
