"""Security review #11: customers cannot send intent commands; Rasa's HTTP API needs a token.

The end-to-end tests start the real Rasa server and action server with the launcher
(:class:`bot.launcher.BotStack`, as ``bot run`` does) and send customer text through the
bot server's chat path (:meth:`bot.server.gateway.Gateway.customer_message`, the function
the widget's WebSocket calls).
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from bot.launcher import BotStack, free_port
from bot.server.rasa_client import safe_for_rasa
from conftest import staffed_knowledge


# Customer text that today's code let through as an intent (or entity) command, and the
# command's intent. Full-width slash: Rasa only parses "/", but our tokenizer folds "／" to "/".
COMMANDS = {
    "/complaint": "complaint",
    " /restart": "restart",
    '/faq_cancel{"x":1}': "faq_cancel",
    '/faq{"faq_id": "cancel"}': "faq",
    "／complaint": "complaint",
    "/answer_not_helpful": "answer_not_helpful",
    "\u3000/request_human": "request_human",  # ideographic (full-width) space
    "\u200b\ufeff /complaint": "complaint",  # zero-width space, BOM
}


# ---- unit: what Rasa receives ------------------------------------------------------------


@pytest.mark.parametrize("text", list(COMMANDS) + ["\t\n/restart", "\u2060/restart", "\u00a0/restart"])
def test_rasa_never_sees_a_leading_slash(text: str) -> None:
    """Rasa strips whitespace (str.strip) and unpacks text starting with "/"."""
    sent = safe_for_rasa(text)
    assert not sent.strip().startswith("/")
    # The NLU sees the same text: our tokenizer NFKC-normalises "／" back to "/".
    assert unicodedata.normalize("NFKC", sent) == unicodedata.normalize("NFKC", text)


@pytest.mark.parametrize("text", ["住所を変更したい", "a/b を教えて", "料金は 1/2 ですか？", ""])
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert safe_for_rasa(text) == text


# ---- end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotStack]:
    """Rasa and the action server, staffed around the clock (a complaint would file a ticket)."""
    folder = tmp_path_factory.mktemp("security")
    env = {"DATABASE_URL": f"sqlite:///{folder / 'bot.db'}", "BOT_OUTBOX": str(folder / "outbox.jsonl"),
           "BOT_KNOWLEDGE_DIR": str(staffed_knowledge(folder / "knowledge")),
           "BOT_SECRET_KEY_FILE": str(folder / "secret.key"), "BOT_RASA_TOKEN_FILE": str(folder / "rasa.token")}
    with BotStack(model=trained_model, rasa_port=free_port(), action_port=free_port(),
                  log_dir=folder / "logs", env=env) as running:
        yield running


@pytest.fixture(scope="module")
def bot_settings(stack: BotStack) -> Iterator[None]:
    """This process's settings point at the stack's database and Rasa token file."""
    from bot.settings import get_settings

    with pytest.MonkeyPatch.context() as patch:
        for name in ("DATABASE_URL", "BOT_RASA_TOKEN_FILE"):
            patch.setenv(name, stack.env[name])
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


def rasa_token(stack: BotStack) -> str | None:
    """The token the launcher gave Rasa (``None`` while none exists)."""
    path = Path(stack.env["BOT_RASA_TOKEN_FILE"])
    return path.read_text(encoding="ascii").strip() if path.exists() else None


def rasa_get(stack: BotStack, path: str, token: str | None) -> tuple[int, Any]:
    """GET ``path`` of Rasa's HTTP API (with ``?token=`` unless ``token`` is None)."""
    url = stack.rasa_url + path + (f"?{urllib.parse.urlencode({'token': token})}" if token is not None else "")
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def tracker_events(stack: BotStack, conversation_id: str) -> list[dict[str, Any]]:
    status, body = rasa_get(stack, f"/conversations/{conversation_id}/tracker", rasa_token(stack))
    assert status == 200, body
    return body["events"]


def run_gateway(stack: BotStack, steps: Any) -> None:
    """Run ``steps(gateway)`` on a gateway built as ``bot serve`` builds it (settings' Rasa token)."""
    from bot.server.app import stores_for
    from bot.server.events import EventHub
    from bot.server.gateway import Gateway
    from bot.server.rasa_client import RasaClient

    async def main() -> None:
        rasa = RasaClient(stack.rasa_url)
        try:
            await steps(Gateway(stores_for(stack.env["DATABASE_URL"]), rasa, EventHub()))
        finally:
            await rasa.close()

    asyncio.run(main())


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize(("text", "command_intent"), list(COMMANDS.items()), ids=list(COMMANDS))
def test_customer_text_never_becomes_a_command(stack: BotStack, bot_settings: None, text: str,
                                               command_intent: str) -> None:
    from bot.server.app import stores_for

    conversation_id = "c-" + uuid.uuid4().hex
    run_gateway(stack, lambda gateway: gateway.customer_message(conversation_id, text, None))

    events = tracker_events(stack, conversation_id)
    users = [e for e in events if e["event"] == "user"]
    assert users, [e["event"] for e in events]  # (a /restart command leaves none)
    user, parse = users[-1], users[-1]["parse_data"]
    # An ordinary NLU parse of the customer's text, not one unpacked from a command.
    assert unicodedata.normalize("NFKC", user["text"]) == unicodedata.normalize("NFKC", text.strip())
    assert parse["intent"]["name"] != command_intent, parse["intent"]
    assert "normalized_text" in parse and "routing" in parse, sorted(parse)  # our pipeline ran
    assert all(e.get("extractor") != "RegexMessageHandler" for e in parse["entities"]), parse["entities"]
    assert not any(e["event"] in ("restart", "pause") for e in events)
    stores = stores_for(stack.env["DATABASE_URL"])
    assert stores.queue.latest_for(conversation_id) is None  # no ticket filed
    assert [m.sender for m in stores.chat_log.history(conversation_id)][-1] == "bot"  # the bot answered


@pytest.mark.e2e
@pytest.mark.slow
def test_offered_clarify_button_still_answers_its_faq(stack: BotStack, bot_settings: None) -> None:
    from bot.server.app import stores_for

    conversation_id = "c-" + uuid.uuid4().hex
    log = stores_for(stack.env["DATABASE_URL"]).chat_log
    run_gateway(stack, lambda gateway: gateway.customer_message(conversation_id, "😀", None))
    buttons = log.last_bot_buttons(conversation_id)
    faq_buttons = [b for b in buttons if b["payload"].startswith("/faq{")]
    assert faq_buttons, buttons
    button = faq_buttons[0]
    faq_id = json.loads(button["payload"].removeprefix("/faq"))["faq_id"]
    run_gateway(stack, lambda gateway: gateway.button(conversation_id, button["payload"], button["title"], None))

    answer = log.history(conversation_id)[-1]
    assert (answer.sender, answer.route, answer.faq_id) == ("bot", "answer", faq_id)
    user = [e for e in tracker_events(stack, conversation_id) if e["event"] == "user"][-1]
    assert user["text"] == button["payload"] and user["parse_data"]["intent"]["name"] == "faq"


@pytest.mark.e2e
@pytest.mark.slow
def test_rasa_http_api_needs_the_token(stack: BotStack) -> None:
    token = rasa_token(stack)
    assert token is not None and len(token) >= 32
    for path in ("/status", "/conversations/x/tracker", "/domain"):
        assert rasa_get(stack, path, None)[0] == 401, path
        assert rasa_get(stack, path, "wrong-" + token)[0] == 401, path
        assert rasa_get(stack, path, token)[0] == 200, path
    # Replacing the model without the token is refused before anything is loaded.
    request = urllib.request.Request(f"{stack.rasa_url}/model", data=b'{"model_file": "/tmp/x.tar.gz"}',
                                     method="PUT", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


@pytest.mark.e2e
@pytest.mark.slow
def test_bot_servers_rasa_client_sends_the_token(stack: BotStack, bot_settings: None) -> None:
    """Resume (tracker API) works with the token from BOT_RASA_TOKEN_FILE, as `bot serve` builds the client."""
    from bot.server.rasa_client import RasaClient, RasaUnavailable

    conversation_id = "c-" + uuid.uuid4().hex

    async def main() -> None:
        configured, wrong = RasaClient(stack.rasa_url), RasaClient(stack.rasa_url, token="x" * 48)
        try:
            await configured.resume(conversation_id)
            with pytest.raises(RasaUnavailable, match="401"):
                await wrong.resume(conversation_id)
        finally:
            await configured.close()
            await wrong.close()

    asyncio.run(main())
    assert [e["event"] for e in tracker_events(stack, conversation_id)][-2:] == ["resume", "action"]


@pytest.mark.e2e
@pytest.mark.slow
def test_rasa_allows_no_cross_origin_reads(stack: BotStack) -> None:
    request = urllib.request.Request(f"{stack.rasa_url}/", headers={"Origin": "http://evil.example"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers.get("Access-Control-Allow-Origin") is None


@pytest.mark.e2e
@pytest.mark.slow
def test_rasa_token_is_owner_only_and_not_on_a_command_line(stack: BotStack) -> None:
    token = rasa_token(stack)
    assert token is not None
    assert Path(stack.env["BOT_RASA_TOKEN_FILE"]).stat().st_mode & 0o077 == 0
    # /proc/PID/cmdline is readable by every local user; the token must not be there.
    for proc in stack._procs:  # noqa: SLF001
        assert token not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")

