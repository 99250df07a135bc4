"""``bot serve``: the bot server on uvicorn, built from the settings."""

from __future__ import annotations

import logging

import uvicorn

from bot.server.app import Services, create_app, stores_for
from bot.server.rasa_client import RasaClient
from bot.server.tokens import ConversationTokens, load_secret_key
from bot.settings import Settings

# A customer frame is at most 10,000 characters of Japanese (3 bytes each, or 6 as JSON escapes).
WS_MAX_BYTES = 128 * 1024


def serve(settings: Settings, port: int, host: str = "127.0.0.1") -> int:
    """Run until interrupted.

    Args:
        settings: Database, Rasa URL and key file.
        port: Port to listen on.
        host: Interface (loopback by default; put a TLS proxy in front to publish it).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = load_secret_key(settings.secret_key_file)
    services = Services(stores_for(settings.database_url), RasaClient(settings.rasa_url), ConversationTokens(secret))
    # wsproto: Rasa pins websockets 10.4, too old for uvicorn's websockets implementation.
    uvicorn.run(create_app(services, secret, events_url=settings.events_url), host=host, port=port, ws="wsproto", ws_max_size=WS_MAX_BYTES,
                log_level="warning")
    return 0
