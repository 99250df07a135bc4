"""``POST /line/webhook`` and the channel's set-up in the bot server.

The signature is checked on the raw body before anything else: a missing or bad one
gets 401 and nothing is parsed or stored. A signed request is answered 200 at once and
its events are handled in the background (LINE waits only a few seconds and redelivers
otherwise). The console's 「検証」 request (no events) gets 200 too.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.channels.line.channel import LineChannel
from bot.channels.line.client import LineApi
from bot.channels.line.events import parse_body
from bot.channels.line.push_count import PushCounter
from bot.channels.line.signature import valid_signature
from bot.channels.line.texts import TEXT
from bot.server.http import parse_json
from bot.settings import LineSettings, get_settings

logger = logging.getLogger(__name__)

# LINE sends several events per request; its bodies stay far below this.
MAX_WEBHOOK_BYTES = 1024 * 1024
ERRORS = {
    "signature": "署名（X-Line-Signature）が正しくありません。",
    "too_large": f"リクエストが大きすぎます（{MAX_WEBHOOK_BYTES // 1024} KB まで）。",
    "malformed": "LINE の Webhook の形式ではありません。",
    "off": "LINE 連携は無効です。",
}


def status_line(settings: LineSettings) -> str:
    """What ``bot run`` prints about the channel: one Japanese line, on or off."""
    return TEXT["channel_on"] if settings.enabled else TEXT["channel_off"]


def main_topics() -> list[dict[str, str]]:
    """The main FAQ topics as buttons (the same ones 「質問です」 gets)."""
    from bot.dialogue.replies import PREAMBLE_TOPICS, faq_button, main_topics as topics
    from bot.knowledge.live import shared_knowledge

    kb = shared_knowledge(get_settings().knowledge_dir).get()
    return [faq_button(entry) for entry in topics(kb, PREAMBLE_TOPICS)]


def build_channel(services: Any, settings: LineSettings | None = None, **options: Any) -> LineChannel | None:
    """The LINE channel of a bot server, or ``None`` when it is off (no secret or token).

    Args:
        services: The server's :class:`bot.server.app.Services`.
        settings: ``None`` reads ``LINE_*`` from the environment.
        options: Passed to :class:`LineChannel` (tests: ``push_delay``, ``clock``).
    """
    settings = settings if settings is not None else get_settings().line
    if not settings.enabled:
        return None
    api = LineApi(settings.api_url, settings.access_token)
    options.setdefault("knowledge_topics", main_topics)
    return LineChannel(services.gateway, services.stores, services.hub, api,
                       push_counter=PushCounter(services.stores.engine, settings.push_warning),
                       reply_token_seconds=settings.reply_token_seconds, mark_as_read=settings.mark_as_read,
                       channel_secret=settings.channel_secret, groups=settings.groups, **options)


async def _body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            return None
    return body


async def line_webhook(request: Request) -> JSONResponse:
    """LINE Messaging API webhook.
    ---
    summary: Events of the LINE official account (signed with the channel secret)
    parameters: [{name: X-Line-Signature, in: header, required: true, schema: {type: string},
      description: base64 HMAC-SHA256 of the body with the channel secret}]
    responses:
      200: {description: "Accepted; the events are handled in the background"}
      400: {description: "Signed, but not a webhook body"}
      401: {description: "Missing or bad signature: nothing was read"}
      404: {description: "The LINE channel is off (no LINE_CHANNEL_SECRET / LINE_CHANNEL_ACCESS_TOKEN)"}
      413: {description: "Body over 1 MB"}
    """
    channel: LineChannel | None = getattr(request.app.state, "line", None)
    if channel is None:
        return JSONResponse({"error": ERRORS["off"]}, status_code=404)
    body = await _body(request)
    if body is None:
        return JSONResponse({"error": ERRORS["too_large"]}, status_code=413)
    if not valid_signature(channel.channel_secret, body, request.headers.get("x-line-signature")):
        logger.warning("LINE webhook refused: missing or bad signature")
        return JSONResponse({"error": ERRORS["signature"]}, status_code=401)
    try:
        events = parse_body(parse_json(body), channel.groups)
    except ValueError:
        logger.warning("LINE webhook: signed body that is not a webhook body")
        return JSONResponse({"error": ERRORS["malformed"]}, status_code=400)
    channel.accept(events)
    return JSONResponse({})


routes = [Route("/line/webhook", line_webhook, methods=["POST"])]
