"""Fuzzing the customer and agent inputs: the server answers 4xx or an error frame, never 500.

A seeded generator (hypothesis is not a dependency) throws malformed, huge, deeply nested,
binary, oddly typed and oddly encoded input at the real Starlette app with the scripted
Rasa of tests/test_server.py, and checks after every input that the server answered
with an ``error`` frame or a 4xx (the socket stays open), and at the end that no stored
message was lost. ``test_raw_frames_against_uvicorn_close_that_socket_only`` goes below
the app: raw WebSocket frames (invalid UTF-8, reserved opcodes, oversized, unmasked) and
garbage HTTP against uvicorn with wsproto, as ``bot serve`` runs it. Inputs that still
crash a handler are kept apart in ``test_known_crashes`` (expected failures) until fixed.

``BOT_FUZZ_SEED`` replays a run (the seed is in every failure message);
``BOT_FUZZ_SECONDS`` and ``BOT_FUZZ_CASES`` bound each test (default 6 s or 2,000 inputs);
``BOT_FUZZ_UVICORN_LOG=debug`` shows uvicorn's log.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from starlette.testclient import TestClient

from bot.server.app import Services, create_app, stores_for
from bot.server.gateway import MAX_MESSAGE_CHARS
from bot.server.tokens import ConversationTokens
from bot.settings import get_settings
from conftest import temporary_database
from test_server import PASSWORD, SECRET, ScriptedRasa, frames_until, is_bot_message

SEED = int(os.environ.get("BOT_FUZZ_SEED", "20251130"))
BUDGET_SECONDS = float(os.environ.get("BOT_FUZZ_SECONDS", "6"))
MAX_CASES = int(os.environ.get("BOT_FUZZ_CASES", "2000"))

# Characters that make text odd: bidi overrides, zero-width and joiners, combining marks,
# BOM, NUL and other controls, line/paragraph separators, non-characters, astral planes,
# half- and full-width forms, look-alike slashes. No lone surrogates (see KNOWN_CRASHES),
# no "?" and none of the words the scripted Rasa hands to a person for.
ODD_PIECES = [
    "\u202e", "\u202d", "\u2066", "\u200b", "\u200c", "\u200d", "\ufeff", "\u0301", "\u3099", "\u20dd",
    "\x00", "\x07", "\x1b[31m", "\r\n", "\t", "\x7f", "\x85", "\u2028", "\u2029", "\ufffd", "\ufffe",
    "\uffff", "\U0010ffff", "\U000e0001", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1ef\U0001f1f5",
    "\U00020b9f", "𝕏𝔶", "ｶﾞｷﾞ", "Ａ１", "\u3000", "\uff0f", "/", "／", "∕", "⁄", "<script>alert(1)</script>",
    "'; DROP TABLE chat_messages; --", "{{7*7}}", "${jndi:ldap://x/a}", "%s%n%x", "../../etc/passwd",
    "/restart", "/request_human", "/faq{\"faq_id\": \"change-address\"}", "住所を変えたい", "ｱﾄﾞﾚｽ", "髙﨑",
    "カード 4111 1111 1111 1111", "\\u0000", "\\", "\"", "'", "`", "null", "[]", "{}",
]
CODE_RANGES = [(0x20, 0x7E), (0x80, 0x2FF), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xFF00, 0xFFEF),
               (0x1F300, 0x1FAFF), (0xE000, 0xF8FF), (0x0, 0x1F), (0x20000, 0x2A6DF)]
FRAME_TYPES = ["message", "button", "feedback", "cancel_handoff", "contact", "auth"]  # never "end": ends the chat


def odd_text(rng: random.Random, max_pieces: int = 12) -> str:
    """Random text mixing odd pieces and random code points (never a lone surrogate nor "?")."""
    parts = []
    for _ in range(rng.randint(0, max_pieces)):
        if rng.random() < 0.5:
            parts.append(rng.choice(ODD_PIECES))
        else:
            low, high = rng.choice(CODE_RANGES)
            parts.append("".join(chr(rng.randint(low, high)) for _ in range(rng.randint(1, 8))))
    return "".join(parts).replace("?", "？")


def odd_value(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, of the wrong type more often than not."""
    makers: list[Callable[[], Any]] = [
        lambda: None, lambda: True, lambda: False, lambda: rng.randint(-2**70, 2**70),
        lambda: rng.random() * 10**rng.randint(-5, 300), lambda: odd_text(rng), lambda: "",
        lambda: rng.choice(FRAME_TYPES),
        lambda: [odd_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
        lambda: {odd_text(rng, 2): odd_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}]
    return makers[rng.randrange(len(makers) if depth < 3 else len(makers) - 2)]()


def dumps(rng: random.Random, value: Any) -> str:
    return json.dumps(value, ensure_ascii=rng.random() < 0.3)


def ws_case(rng: random.Random, sentinel_prefix: str) -> tuple[str, Any, bool]:
    """One WebSocket input: (``"text"`` | ``"bytes"``, payload, must_be_an_error)."""
    kind = rng.randrange(14)
    if kind == 0:  # not JSON at all
        raw = odd_text(rng, 20)
    elif kind == 1:  # valid frame cut short
        raw = dumps(rng, {"type": "message", "text": odd_text(rng), "client_id": f"cut{rng.random()}"})
        raw = raw[:rng.randrange(len(raw))]
    elif kind == 2:  # deeply nested, inside or instead of a frame (depths far from the parser's limit)
        depth = rng.choice([rng.randint(50, 200), rng.randint(5_000, 30_000)])
        nested = rng.choice(["[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, "[" * depth])
        raw = rng.choice([nested, '{"type":"message","text":"x","extra":' + nested + "}"])
    elif kind == 3:  # huge: over the frame limit, or over the text limit
        size = rng.choice([MAX_MESSAGE_CHARS + rng.randint(1, 50), MAX_MESSAGE_CHARS * 7])
        raw = dumps(rng, {"type": "message", "text": rng.choice("あa ") * size, "client_id": "huge"})
        return "text", raw, True
    elif kind == 4:  # JSON, but not an object
        raw = rng.choice(["null", "true", "1", "-0.0", "1e999", "NaN", "-Infinity", '"message"', "[]",
                          dumps(rng, [{"type": "message", "text": "x"}]), dumps(rng, odd_text(rng))])
        return "text", raw, True
    elif kind == 5:  # unknown or mistyped frame type
        kind_value = rng.choice([odd_text(rng, 3), None, 1, [], {}, True, "MESSAGE", " message", "message\x00"])
        raw = dumps(rng, {"type": kind_value, "text": odd_text(rng)})
        return "text", raw, kind_value not in FRAME_TYPES
    elif kind == 6:  # known type, fields of the wrong type
        frame = {"type": rng.choice(FRAME_TYPES)}
        for key in rng.sample(["text", "payload", "title", "message_id", "helpful", "client_id", "email",
                               "phone", "name", "token"], rng.randint(0, 4)):
            frame[key] = odd_value(rng)
        raw = dumps(rng, frame)
    elif kind == 7:  # a message whose text is only blanks
        blank = "".join(rng.choice([" ", "\u3000", "\t", "\n", "\r"]) for _ in range(rng.randint(0, 30)))
        return "text", dumps(rng, {"type": "message", "text": blank}), True
    elif kind == 8:  # a button the bot never offered
        raw = dumps(rng, {"type": "button", "payload": rng.choice(["/request_human", "/restart", odd_text(rng)]),
                          "title": odd_text(rng)})
        return "text", raw, True
    elif kind == 9:  # feedback on messages that are not this conversation's FAQ answers
        message_id = rng.choice([0, -1, 2**63, 2**64, rng.randint(10**6, 2**62), "1", 1.5, None])
        raw = dumps(rng, {"type": "feedback", "message_id": message_id, "helpful": rng.choice([True, False, "no"])})
        return "text", raw, True
    elif kind == 10:  # nothing to cancel, no offline ticket
        frame = rng.choice([{"type": "cancel_handoff"},
                            {"type": "contact", "email": odd_text(rng), "phone": odd_text(rng), "name": odd_text(rng),
                             "note": odd_text(rng)},
                            {"type": "contact", "email": "taro@example.jp", "phone": "03-1234-5678"}])
        return "text", dumps(rng, frame), True
    elif kind == 11:  # binary frames
        data = rng.choice([rng.randbytes(rng.randint(0, 300)), b"\xff\xfe\xfd", b"\xed\xa0\x80",
                           json.dumps({"type": "message", "text": "住所"}).encode()])
        return "bytes", data, True
    elif kind == 12:  # duplicate keys, odd client ids
        raw = '{"type":"message","text":"x","type":"' + rng.choice(["nope", "button", "message"]) + \
              '","client_id":' + dumps(rng, rng.choice([odd_text(rng), "c" * 5_000, 7, None])) + "}"
    else:  # a real message with odd text: stored and answered (or refused while over the rate limit)
        raw = dumps(rng, {"type": "message", "text": odd_text(rng) + "x",
                          "client_id": rng.choice([None, f"odd-{rng.random()}", odd_text(rng, 3) + str(rng.random())])})
    if raw.startswith(sentinel_prefix):
        raw = "x" + raw
    return "text", raw, _refused_shape(raw)


def _refused_shape(raw: str) -> bool:
    """Whether ``raw`` is refused before anything is looked at: not a JSON object, or no known type."""
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return True
    return not isinstance(frame, dict) or frame.get("type") not in FRAME_TYPES


def build(tmp_path: Path) -> tuple[Services, ScriptedRasa]:
    ref: dict[str, Any] = {}
    rasa = ScriptedRasa(ref)
    services = Services(stores_for(f"sqlite:///{tmp_path / 'bot.db'}"), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
    ref["services"] = services
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    return services, rasa


@pytest.fixture()
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, Services, ScriptedRasa]]:
    services, rasa = build(tmp_path)
    with TestClient(create_app(services, SECRET, watch_interval=0.05), raise_server_exceptions=False) as client:
        yield client, services, rasa


@pytest.fixture()
def no_message_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Customer messages per minute unlimited: every odd message reaches the store and the bot.

    (tests/test_server.py covers the limit itself.)
    """
    monkeypatch.setenv("BOT_LIMIT_MESSAGES_PER_MINUTE", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def start_chat(client: TestClient, texts: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """A conversation with ``texts`` sent and answered; its token and stored messages."""
    token = client.post("/api/chat/sessions", json={"customer": {"name": "山田"}}).json()["token"]
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "history"
        for i, text in enumerate(texts):
            ws.send_json({"type": "message", "text": text, "client_id": f"before-{i}"})
            frames_until(ws, is_bot_message)
    return token, stored(client, token)


def stored(client: TestClient, token: str) -> list[dict[str, Any]]:
    response = client.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def every_message(services: Services, conversation_id: str) -> dict[int, tuple[str, str, str | None]]:
    """id -> (sender, text, client_id) of every stored message of the conversation (no paging)."""
    from sqlalchemy import select

    from bot.store.models import ChatMessage

    with services.stores.engine.connect() as connection:  # type: ignore[union-attr]
        rows = connection.execute(select(ChatMessage.id, ChatMessage.sender, ChatMessage.text, ChatMessage.client_id)
                                  .where(ChatMessage.conversation_id == conversation_id))
        return {row.id: (row.sender, row.text, row.client_id) for row in rows}


def within_budget(rng: random.Random) -> Iterator[int]:
    deadline = time.monotonic() + BUDGET_SECONDS
    for case in range(MAX_CASES):
        if time.monotonic() > deadline:
            return
        yield case


def test_websocket_frames_get_an_error_frame_and_lose_nothing(no_message_limit, app_client) -> None:  # type: ignore[no-untyped-def]
    client, services, rasa = app_client
    rng = random.Random(SEED)
    token, before = start_chat(client, ["住所を変えたい", "パスワードを忘れました", "退会したい"])
    conversation_id = services.tokens.conversation_of(token)
    echoed: dict[int, str] = {}  # customer messages the server confirmed during the fuzz
    cases = 0
    with client.websocket_connect("/ws/chat") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "history"
        for case in within_budget(rng):
            kind, payload, must_fail = ws_case(rng, "SENTINEL")
            sentinel = f"SENTINEL-{case}"
            try:
                ws.send_bytes(payload) if kind == "bytes" else ws.send_text(payload)
                # A blank message with a client id: refused at once, its error frame names the id.
                ws.send_json({"type": "message", "text": " \u3000", "client_id": sentinel})
                frames = frames_until(ws, lambda f: f.get("type") == "error" and f.get("client_id") == sentinel,
                                      limit=40)
            except BaseException as exc:
                exc.add_note(f"BOT_FUZZ_SEED={SEED}, case {case}: {kind} {payload!r:.500}")
                raise
            answers = frames[:-1]
            assert all(isinstance(f, dict) and isinstance(f.get("type"), str) for f in frames)
            if must_fail:
                assert any(f["type"] == "error" and f.get("message") for f in answers), \
                    f"BOT_FUZZ_SEED={SEED}, case {case}: no error frame for {kind} {payload!r:.300}: {answers}"
            for frame in frames:
                if frame["type"] == "message" and frame["message"]["sender"] == "customer":
                    echoed[frame["message"]["id"]] = frame["message"]["text"]
            cases += 1
        ws.send_json({"type": "message", "text": " ", "client_id": "last"})
        frames_until(ws, lambda f: f.get("client_id") == "last", limit=60)  # every answer is in

    assert cases >= 50, f"only {cases} inputs within {BUDGET_SECONDS} s"
    assert len(echoed) >= 30, f"only {len(echoed)} odd messages were stored"
    stored(client, token)  # the history still loads
    after = every_message(services, conversation_id)
    # Nothing stored before the fuzz changed or went missing, nor anything stored during it.
    assert all(after.get(m["id"]) == (m["sender"], m["text"], m["client_id"]) for m in before)
    assert all(after.get(i, (None, None))[1] == text for i, text in echoed.items())
    assert services.stores.queue.open_ticket_for(conversation_id) is None  # "/request_human" texts stayed text
    assert all(not text.startswith("/") for _, text in rasa.calls[3:] if text != "/answer_not_helpful")
    assert client.get("/healthz").status_code == 200


# ---- HTTP -------------------------------------------------------------------------------------------


def body_case(rng: random.Random) -> tuple[bytes, bool]:
    """A request body: (bytes, must_be_refused)."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 500)), True  # binary, mostly invalid UTF-8
    if kind == 1:
        return b"\xff\xfe" + odd_text(rng).encode("utf-16-le"), True
    if kind == 2:
        depth = rng.randint(1_000, 30_000)
        return rng.choice([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth]), True
    if kind == 3:
        return b'{"text":"' + b"a" * (64 * 1024 + rng.randint(1, 10_000)) + b'"}', True  # over 64 KB
    if kind == 4:
        return rng.choice([b"null", b"[]", b"1", b'"x"', b"NaN", b"true", b"1e999"]), True
    if kind == 5:
        text = dumps(rng, {"text": odd_text(rng)}).encode()
        return text[:rng.randrange(1, len(text))], True
    if kind == 6:
        return b"", False
    return dumps(rng, {odd_text(rng, 2): odd_value(rng) for _ in range(rng.randint(0, 5))}).encode(), False


def header_value(rng: random.Random) -> bytes:
    """A header value an HTTP client can send (any bytes but CR, LF and NUL), often garbage."""
    value = rng.choice([b"", b"Bearer", b"Bearer ", b"Bearer " + b"A" * 5_000, b"bearer x.y", b"Basic Zm9vOmJhcg==",
                        b"Bearer " + rng.randbytes(40), b"Bearer " + odd_text(rng).encode(),
                        rng.randbytes(rng.randint(1, 80))])
    return value.translate(None, b"\r\n\x00").strip()


def random_path(rng: random.Random) -> str:
    segments = [urllib.parse.quote_from_bytes(rng.randbytes(rng.randint(1, 12))) for _ in range(rng.randint(1, 4))]
    return rng.choice(["/api/", "/api/tickets/", "/api/chat/", "/api/agent/", "/ws/"]) + "/".join(segments)


def http_case(rng: random.Random, csrf: str) -> tuple[str, str, dict[str, Any], bytes, bool, bool]:
    """(method, path, headers, body, must_be_4xx, as_agent)."""
    body, bad_body = body_case(rng)
    content_types = ["application/json", "text/plain", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "application/json; charset=shift_jis"]
    headers: dict[str, Any] = {"Content-Type": rng.choice(content_types)}
    ticket = rng.choice(["1", "0", str(rng.randint(10**6, 10**9)), str(2**63), "9" * 40])
    kind = rng.randrange(10)
    if kind == 0:
        if rng.random() < 0.2:
            headers["Origin"] = rng.choice([b"null", b"https://evil.example", header_value(rng)])
        return "POST", "/api/chat/sessions", headers, body, bad_body, False
    if kind == 1:
        return "GET", "/api/chat/history", {"Authorization": header_value(rng)}, b"", True, False
    if kind == 2:
        return "DELETE", "/api/chat/session", {"Authorization": header_value(rng)}, b"", True, False
    if kind == 3:
        if not bad_body and rng.random() < 0.1:  # well-formed but wrong: a bcrypt check, keep them few
            body = dumps(rng, {"username": "fuzz-" + odd_text(rng, 2), "password": odd_text(rng)}).encode()
        return "POST", "/api/agent/login", headers, body, True, False
    if kind == 4:
        return "GET", rng.choice(["/api/agent/me", "/api/tickets", f"/api/tickets/{ticket}", "/api/events"]), \
            {"Cookie": b"bot_agent_session=" + header_value(rng).replace(b";", b"")}, b"", True, False
    if kind == 5:  # a logged-in agent without the CSRF token, or with a wrong one
        if rng.random() < 0.5:
            headers["X-CSRF-Token"] = header_value(rng)
        action = rng.choice(["claim", "reply", "notes", "resolve"])
        return "POST", f"/api/tickets/{ticket}/{action}", headers, body, True, True
    if kind == 6:  # with the CSRF token, on tickets that do not exist
        headers["X-CSRF-Token"] = csrf
        action = rng.choice(["claim", "reply", "notes", "resolve"])
        return "POST", f"/api/tickets/{ticket}/{action}", headers, body, True, True
    if kind == 7:
        query = "&".join(f"{rng.choice(['status', 'limit', 'offset', 'before', 'q', 'days'])}="
                         f"{urllib.parse.quote_from_bytes(rng.randbytes(rng.randint(0, 10)))}"
                         for _ in range(rng.randint(1, 4)))
        return "GET", rng.choice(["/api/tickets", "/api/analytics/summary", "/api/chat/history"]) + "?" + query, \
            {}, b"", False, True
    if kind == 8:
        headers["X-CSRF-Token"] = csrf
        return "POST", "/api/agent/password", headers, body if bad_body else b'{"current_password": 1}', True, True
    method = rng.choice(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"])
    return method, random_path(rng), headers, body, False, rng.random() < 0.5


def test_http_inputs_get_4xx_never_500(app_client) -> None:  # type: ignore[no-untyped-def]
    client, services, rasa = app_client
    rng = random.Random(SEED + 1)
    token, before = start_chat(client, ["住所を変えたい", "退会したい"])
    agent = client.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
    assert agent.status_code == 200
    csrf, agent_cookies = agent.json()["csrf_token"], dict(client.cookies)
    cases, statuses = 0, set()
    for case in within_budget(rng):
        method, path, headers, body, must_fail, as_agent = http_case(rng, csrf)
        client.cookies.clear()
        if as_agent:
            client.cookies.update(agent_cookies)
        try:
            response = client.request(method, path, headers=headers, content=body)
        except BaseException as exc:
            exc.add_note(f"BOT_FUZZ_SEED={SEED}, case {case}: {method} {path} {headers!r:.300} {body!r:.300}")
            raise
        where = f"BOT_FUZZ_SEED={SEED}, case {case}: {method} {path} {headers!r:.300} {body!r:.300}"
        assert response.status_code < 500, f"{where} -> {response.status_code} {response.text[:300]}"
        if must_fail:
            assert 400 <= response.status_code < 500, f"{where} -> {response.status_code} {response.text[:300]}"
        if 400 <= response.status_code < 500 and path.startswith("/api/") and method != "HEAD":
            assert isinstance(response.json().get("error"), str), f"{where}: {response.text[:300]}"
        statuses.add(response.status_code)
        cases += 1
    client.cookies.clear()
    assert cases >= 100, f"only {cases} requests within {BUDGET_SECONDS} s"
    assert {400, 401, 403, 404, 413} <= statuses, statuses
    assert stored(client, token) == before  # the conversation is untouched
    client.cookies.update(agent_cookies)
    assert client.get("/api/agent/me").status_code == 200  # and the agent's session still works
    client.cookies.clear()


# ---- inputs that crash today ------------------------------------------------------------------------

def postgres_available() -> bool:
    import sqlalchemy

    from conftest import PG_ADMIN_URL

    try:
        with sqlalchemy.create_engine(PG_ADMIN_URL).connect():
            return True
    except sqlalchemy.exc.OperationalError:
        return False


needs_postgres = pytest.mark.skipif(not postgres_available(),
                                    reason="!!! PostgreSQL is not running at 127.0.0.1:5432 !!!")
KNOWN_CRASHES = [
    pytest.param("sqlite", "ws", '{"type": "message", "text": "a\\ud800b", "client_id": "s1"}',
                 id="ws-lone-surrogate-text"),
    pytest.param("sqlite", "ws", '{"type": "message", "text": "x", "client_id": "\\udfff"}',
                 id="ws-lone-surrogate-client-id"),
    pytest.param("sqlite", "ws", '{"type": "feedback", "message_id": ' + "1" * 5_000 + ', "helpful": true}',
                 id="ws-integer-over-4300-digits"),
    pytest.param("sqlite", "http", b'{"username": "\\ud800", "password": "x"}', id="login-lone-surrogate"),
    pytest.param("sqlite", "http", b'{"username": ' + b"1" * 5_000 + b', "password": "x"}',
                 id="login-integer-over-4300-digits"),
    pytest.param("postgresql", "ws", '{"type": "message", "text": "a\\u0000b", "client_id": "n1"}',
                 id="postgresql-ws-nul-in-text", marks=needs_postgres),
    pytest.param("postgresql", "http", b'{"username": "a\\u0000", "password": "x"}',
                 id="postgresql-login-nul", marks=needs_postgres),
]


# Inputs that once crashed a handler (lone surrogates, integers over 4,300 digits, NUL on
# PostgreSQL): now refused as bad JSON by bot.server.http.parse_json.
@pytest.mark.parametrize(("backend", "where", "raw"), KNOWN_CRASHES)
def test_inputs_that_once_crashed_are_refused_cleanly(tmp_path: Path, backend: str, where: str, raw: Any) -> None:
    with temporary_database(backend, tmp_path) as url:
        ref: dict[str, Any] = {}
        rasa = ScriptedRasa(ref)
        services = Services(stores_for(url), rasa, ConversationTokens(SECRET))  # type: ignore[arg-type]
        ref["services"] = services
        try:
            with TestClient(create_app(services, SECRET, watch_interval=0.05), raise_server_exceptions=False) as client:
                if where == "http":
                    response = client.post("/api/agent/login", content=raw,
                                           headers={"Content-Type": "application/json"})
                    assert 400 <= response.status_code < 500, response.status_code
                    return
                token = client.post("/api/chat/sessions", json={}).json()["token"]
                with client.websocket_connect("/ws/chat") as ws:
                    ws.send_json({"type": "auth", "token": token})
                    ws.receive_json()
                    ws.send_text(raw)
                    assert ws.receive_json()["type"] == "error"
                    ws.send_json({"type": "message", "text": "住所", "client_id": "after"})
                    frames_until(ws, is_bot_message)
        finally:
            services.stores.engine.dispose()


# ---- raw frames against uvicorn ---------------------------------------------------------------------


class RawSocket:
    """A WebSocket client that can send frames no library would: we write the bytes ourselves."""

    def __init__(self, port: int, path: str = "/ws/chat") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self._buffer = b""
        head = self._read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0) -> None:
        first = (0x80 if fin else 0) | (rsv << 4) | opcode
        length = len(payload)
        mask_bit = 0x80 if mask else 0
        if length < 126:
            header = struct.pack("!BB", first, mask_bit | length)
        elif length < 65536:
            header = struct.pack("!BBH", first, mask_bit | 126, length)
        else:
            header = struct.pack("!BBQ", first, mask_bit | 127, length)
        if mask:
            key = os.urandom(4)
            payload = key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        with contextlib.suppress(OSError):
            self.sock.sendall(header + payload)

    def send_json(self, value: Any) -> None:
        self.send_frame(0x1, json.dumps(value).encode())

    def receive(self) -> tuple[int, bytes]:
        """The next frame (opcode, payload); (-1, b"") when the server closed the connection."""
        try:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            return first & 0x0F, self._read(length)
        except (EOFError, ConnectionError):
            return -1, b""

    def receive_json(self) -> dict[str, Any]:
        while True:
            opcode, payload = self.receive()
            assert opcode in (0x1, 0x9, 0xA), (opcode, payload)
            if opcode == 0x1:
                return dict(json.loads(payload))

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def uvicorn_server(services: Services) -> Iterator[int]:
    """The app on uvicorn with wsproto and the frame limit of ``bot serve``."""
    import uvicorn

    from bot.server.main import WS_MAX_BYTES

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(services, SECRET, watch_interval=0.05), host="127.0.0.1",
                                           port=port, ws="wsproto", ws_max_size=WS_MAX_BYTES,
                                           log_level=os.environ.get("BOT_FUZZ_UVICORN_LOG", "critical")))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def raw_cases() -> list[tuple[str, Callable[[RawSocket], None]]]:
    big = b'{"type":"message","text":"' + b"a" * (200 * 1024) + b'"}'
    return [
        ("invalid UTF-8 text", lambda s: s.send_frame(0x1, b'{"type":"message","text":"\xff\xfe"}')),
        ("overlong UTF-8 slash", lambda s: s.send_frame(0x1, b'{"type":"message","text":"\xc0\xafrestart"}')),
        ("UTF-8 encoded surrogate", lambda s: s.send_frame(0x1, b'{"type":"message","text":"\xed\xa0\x80"}')),
        ("reserved opcode 3", lambda s: s.send_frame(0x3, b"hello")),
        ("reserved control opcode 11", lambda s: s.send_frame(0xB, b"")),
        ("RSV bits without an extension", lambda s: s.send_frame(0x1, b'{"type":"message"}', rsv=0b111)),
        ("unmasked client frame", lambda s: s.send_frame(0x1, b'{"type":"message","text":"x"}', mask=False)),
        ("continuation without a start", lambda s: s.send_frame(0x0, b"orphan")),
        ("ping over 125 bytes", lambda s: s.send_frame(0x9, b"p" * 200)),
        ("fragmented control frame", lambda s: s.send_frame(0x9, b"p", fin=False)),
        ("frame over ws_max_size", lambda s: s.send_frame(0x1, big)),
        ("text frame cut by a binary frame", lambda s: (s.send_frame(0x1, b'{"type":', fin=False),
                                                        s.send_frame(0x2, b"x"))),
        ("garbage bytes", lambda s: s.sock.sendall(os.urandom(64))),
    ]


def test_raw_frames_against_uvicorn_close_that_socket_only(tmp_path: Path) -> None:
    services, rasa = build(tmp_path)
    with uvicorn_server(services) as port:
        import httpx

        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        token = http.post("/api/chat/sessions", json={}).json()["token"]

        def chat() -> RawSocket:
            raw = RawSocket(port)
            raw.send_json({"type": "auth", "token": token})
            assert raw.receive_json()["type"] == "history"
            return raw

        first = chat()
        first.send_json({"type": "message", "text": "住所を変えたい", "client_id": "before"})
        while not (frame := first.receive_json())["type"] == "message" or frame["message"]["sender"] != "bot":
            pass
        first.close()
        before = http.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"]
        assert [m["sender"] for m in before] == ["customer", "bot"]

        for name, attack in raw_cases():
            raw = chat()
            attack(raw)
            opcode, payload = raw.receive()
            while opcode in (0x9, 0xA):
                opcode, payload = raw.receive()
            if opcode == 0x8:  # a close frame: a protocol error code, never 1011 (internal error)
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                assert code in (1002, 1007, 1009), f"{name}: close code {code}"
            else:
                assert opcode == -1, f"{name}: expected the socket to be closed, got {opcode} {payload[:200]!r}"
            raw.close()

        # Binary and fragmented text frames are valid WebSocket: the app answers them.
        raw = chat()
        raw.send_frame(0x2, b'{"type":"message","text":"x"}')
        assert raw.receive_json()["type"] == "error"
        raw.send_frame(0x1, b'{"type":"message",', fin=False)
        raw.send_frame(0x0, '"text":"住所変更","client_id":"frag"}'.encode())
        while not (frame := raw.receive_json())["type"] == "message" or frame["message"]["sender"] != "bot":
            pass
        raw.close()

        # Garbage HTTP: an answer (no 5xx) or a closed connection, and the server goes on.
        for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
                        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(200)):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(request)
                    answer = sock.recv(100)
                    assert answer == b"" or re.match(rb"HTTP/1.1 [1-4]\d\d ", answer), answer

        assert http.get("/healthz").status_code == 200
        after = http.get("/api/chat/history", headers={"Authorization": f"Bearer {token}"}).json()["messages"]
        assert after[:2] == before
        assert [m["client_id"] for m in after if m["sender"] == "customer"] == ["before", "frag"]
        http.close()
