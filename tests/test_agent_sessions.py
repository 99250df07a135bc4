"""Agent sessions, login throttling, keys and the first agent (security review, issue #11).

Everything that touches the store runs on SQLite and on PostgreSQL (127.0.0.1:5432).
Time is injected (``services.stores.agents.clock``): no test sleeps through a timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
from starlette.testclient import TestClient

from bot.server.app import Services, create_app, stores_for
from bot.server.tokens import ConversationTokens
from conftest import temporary_database

SECRET = "test-secret-key-" + "y" * 32
PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "staple-battery-horse"
COOKIE = "bot_agent_session"


class Clock:
    """A settable stand-in for ``time.time``."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Rasa:
    """Never reached by these tests (no customer messages)."""

    async def close(self) -> None:
        pass


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_database(request.param, tmp_path) as url:
        yield url


def make_services(url: str, clock: Clock | None = None) -> Services:
    services = Services(stores_for(url), Rasa(), ConversationTokens(SECRET))  # type: ignore[arg-type]
    if clock is not None:
        services.stores.agents.clock = clock
    return services


@pytest.fixture()
def site(database_url: str) -> Iterator[dict[str, Any]]:
    """One bot server on the database, agent ``sato`` registered, a settable clock."""
    clock = Clock()
    services = make_services(database_url, clock)
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    app = create_app(services, SECRET)
    engines = [services.stores.engine]
    yield {"url": database_url, "clock": clock, "services": services, "app": app, "engines": engines}
    for engine in engines:
        engine.dispose()


def client_for(app: Any, address: str = "198.51.100.7", https: bool = False) -> TestClient:
    return TestClient(app, client=(address, 40000), base_url="https://testserver" if https else "http://testserver")


def login(client: TestClient, username: str = "sato", password: str = PASSWORD) -> Any:
    return client.post("/api/agent/login", json={"username": username, "password": password})


def logged_in(app: Any, **kwargs: Any) -> tuple[TestClient, str]:
    client = client_for(app, **kwargs)
    response = login(client)
    assert response.status_code == 200, response.text
    return client, str(response.json()["csrf_token"])


def with_cookie(app: Any, cookie: str, https: bool = False) -> TestClient:
    """A second browser holding a copy of ``cookie``."""
    other = client_for(app, address="203.0.113.9", https=https)
    other.cookies.set(COOKIE, cookie)
    return other


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, url: str, answers: list[str] | None = None,
            tmp_path: Path | None = None) -> int:
    """``bot ...`` on ``url``; ``answers`` are what the user types at the password prompts."""
    import getpass

    from bot.cli import build_parser
    from bot.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", url)
    if tmp_path is not None:
        monkeypatch.setenv("BOT_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    prompts = iter(answers or [])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(prompts))
    get_settings.cache_clear()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    finally:
        get_settings.cache_clear()


# ---- revocation ----------------------------------------------------------------------------------


def test_logout_revokes_a_copied_cookie(site) -> None:  # type: ignore[no-untyped-def]
    client, csrf = logged_in(site["app"])
    cookie = client.cookies.get(COOKIE)
    copy = with_cookie(site["app"], cookie)
    assert copy.get("/api/agent/me").status_code == 200
    assert client.post("/api/agent/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/tickets").status_code == 401
    assert copy.get("/api/agent/me").status_code == 401
    assert copy.get("/api/tickets").status_code == 401


def test_a_tampered_cookie_is_401(site) -> None:  # type: ignore[no-untyped-def]
    client, _ = logged_in(site["app"])
    cookie = client.cookies.get(COOKIE)
    # A changed first character of the signature: the last one's low bits are base64 padding
    # (its A and B decode to the same signature, so flipping it forged nothing 1 time in 16).
    value, signature = cookie.rsplit(".", 1)
    flipped = f"{value}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    for forged in (flipped, "x" + cookie, cookie.split(".")[0], "", "a" * 5000):
        assert with_cookie(site["app"], forged).get("/api/agent/me").status_code == 401, forged


def test_the_cookie_is_httponly_strict_and_holds_no_name(site) -> None:  # type: ignore[no-untyped-def]
    client = client_for(site["app"])
    response = login(client)
    set_cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in set_cookie.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # plain http (local `make run`): a Secure cookie would never come back
    assert "sato" not in set_cookie and PASSWORD not in set_cookie
    assert "strict-transport-security" not in response.headers


def test_idle_timeout_and_absolute_lifetime(site) -> None:  # type: ignore[no-untyped-def]
    clock = site["clock"]
    client, _ = logged_in(site["app"])
    clock.advance(29 * 60)
    assert client.get("/api/agent/me").status_code == 200  # activity restarts the idle time
    clock.advance(29 * 60)
    assert client.get("/api/tickets").status_code == 200
    clock.advance(31 * 60)
    assert client.get("/api/agent/me").status_code == 401  # idle for more than 30 minutes

    client, _ = logged_in(site["app"])
    for _ in range(12 * 3):  # busy all day: a request every 20 minutes
        clock.advance(20 * 60)
        if client.get("/api/agent/me").status_code != 200:
            break
    assert clock.now - 1_800_000_000.0 >= 12 * 3600 - 20 * 60
    assert client.get("/api/agent/me").status_code == 401  # 12 hours after login, whatever the activity


def test_a_removed_agent_loses_access_at_once(site, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    client, _ = logged_in(site["app"])
    assert run_cli(["agent", "remove", "sato"], monkeypatch, site["url"]) == 0
    assert "sato" in capsys.readouterr().out
    assert client.get("/api/agent/me").status_code == 401
    assert client.get("/api/tickets").status_code == 401
    assert login(client).status_code == 401
    assert run_cli(["agent", "remove", "sato"], monkeypatch, site["url"]) == 1
    assert "sato" in capsys.readouterr().err


def test_password_change_ends_the_other_sessions(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    app = site["app"]
    here, csrf = logged_in(app)
    elsewhere, _ = logged_in(app, address="192.0.2.44")
    wrong = here.post("/api/agent/password", headers={"X-CSRF-Token": csrf},
                      json={"current_password": "not-it-at-all", "new_password": NEW_PASSWORD})
    assert wrong.status_code == 422 and "現在のパスワード" in wrong.json()["error"]
    assert here.post("/api/agent/password", json={"current_password": PASSWORD,
                                                  "new_password": NEW_PASSWORD}).status_code == 403  # CSRF
    changed = here.post("/api/agent/password", headers={"X-CSRF-Token": csrf},
                        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.text
    assert here.get("/api/agent/me").status_code == 200  # the session that changed it goes on
    assert elsewhere.get("/api/agent/me").status_code == 401
    assert login(client_for(app, address="192.0.2.45")).status_code == 401  # old password
    assert login(client_for(app, address="192.0.2.45"), password=NEW_PASSWORD).status_code == 200

    # `bot agent passwd` (an administrator) ends every session of the agent.
    assert run_cli(["agent", "passwd", "sato"], monkeypatch, site["url"], [PASSWORD, PASSWORD]) == 0
    assert here.get("/api/agent/me").status_code == 401
    assert login(client_for(app, address="192.0.2.46")).status_code == 200


def test_agent_commands_list_add_passwd_remove(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url = database_url
    try:
        assert run_cli(["agent", "list"], monkeypatch, url) == 0
        assert "登録されていません" in capsys.readouterr().out
        assert run_cli(["agent", "add", "sato", "--name", "佐藤"], monkeypatch, url, [PASSWORD, "typo-typo-typo"]) == 1
        assert "一致しません" in capsys.readouterr().err
        assert run_cli(["agent", "add", "sato", "--name", "佐藤"], monkeypatch, url, [PASSWORD, PASSWORD]) == 0
        assert "登録しました" in capsys.readouterr().out
        assert run_cli(["agent", "passwd", "sato"], monkeypatch, url, [NEW_PASSWORD, "something-else"]) == 1
        assert "一致しません" in capsys.readouterr().err
        assert run_cli(["agent", "passwd", "sato"], monkeypatch, url, ["short", "short"]) == 1
        assert "8 文字以上" in capsys.readouterr().err
        assert run_cli(["agent", "passwd", "nobody"], monkeypatch, url, [NEW_PASSWORD, NEW_PASSWORD]) == 1
        assert "nobody" in capsys.readouterr().err
        assert run_cli(["agent", "passwd", "sato"], monkeypatch, url, [NEW_PASSWORD, NEW_PASSWORD]) == 0
        assert "変更しました" in capsys.readouterr().out
        agents = stores_for(url).agents
        assert agents.authenticate("sato", NEW_PASSWORD) is not None
        assert agents.authenticate("sato", PASSWORD) is None
        assert run_cli(["agent", "list"], monkeypatch, url) == 0
        listing = capsys.readouterr().out
        assert "ユーザー名" in listing and "表示名" in listing and "sato" in listing and "佐藤" in listing
        assert run_cli(["agent", "remove", "sato"], monkeypatch, url) == 0
        assert "削除しました" in capsys.readouterr().out
        assert agents.get("sato") is None
    finally:
        from bot.settings import get_settings

        get_settings.cache_clear()


def test_the_event_stream_ends_when_the_session_does(site, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from bot.server import agent_api

    monkeypatch.setattr(agent_api, "SESSION_RECHECK_SECONDS", 0.1, raising=False)
    client, _ = logged_in(site["app"])
    hub = site["services"].hub
    result: dict[str, Any] = {}

    def listen() -> None:
        response = client.get("/api/events")
        result["status"], result["body"] = response.status_code, response.text

    with client:  # one event loop for the stream and the removal
        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        for _ in range(100):
            if hub._agents:
                break
            time.sleep(0.05)
        assert hub._agents, "the stream never subscribed"
        site["services"].stores.agents.remove("sato")
        thread.join(timeout=10)
        assert not thread.is_alive(), "the stream outlived the agent's removal"
    assert result["status"] == 200 and "ready" in result["body"]


# ---- keys, cookie flags over https ---------------------------------------------------------------


def test_conversation_tokens_and_agent_sessions_use_separate_keys(site) -> None:  # type: ignore[no-untyped-def]
    from itsdangerous import Signer

    from bot.server.tokens import derive_key

    services = site["services"]
    session_key, token_key = derive_key(SECRET, "agent-session"), derive_key(SECRET, "conversation-token")
    assert len({SECRET, session_key, token_key}) == 3
    conversation, token = services.tokens.new_conversation()
    assert token.startswith(conversation + ".")
    assert Signer(SECRET, salt="conversation-token").sign(conversation).decode() != token  # not the shared key

    client, _ = logged_in(site["app"])
    cookie = client.cookies.get(COOKIE)
    # Rotating the session key (BOT_SESSION_KEY_VERSION) ends agent sessions, not conversations.
    rotated = create_app(services, SECRET, session_key_version=2)
    assert with_cookie(rotated, cookie).get("/api/agent/me").status_code == 401
    assert ConversationTokens(SECRET).conversation_of(token) == conversation
    # Rotating the token key (BOT_TOKEN_KEY_VERSION) ends conversations, not agent sessions.
    assert ConversationTokens(SECRET, key_version=2).conversation_of(token) is None
    assert with_cookie(create_app(services, SECRET), cookie).get("/api/agent/me").status_code == 200


def test_tokens_issued_before_the_key_split_still_open_their_conversation() -> None:
    from itsdangerous import Signer

    legacy = Signer(SECRET, salt="conversation-token").sign("c-before-upgrade").decode()
    assert ConversationTokens(SECRET).conversation_of(legacy) == "c-before-upgrade"
    assert ConversationTokens(SECRET, key_version=2).conversation_of(legacy) is None  # until the first rotation


def test_key_versions_and_https_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import get_settings

    monkeypatch.setenv("BOT_HTTPS", "1")
    monkeypatch.setenv("BOT_SESSION_KEY_VERSION", "3")
    monkeypatch.setenv("BOT_TOKEN_KEY_VERSION", "2")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert (settings.https, settings.session_key_version, settings.token_key_version) == (True, 3, 2)
        monkeypatch.setenv("BOT_TOKEN_KEY_VERSION", "zwei")
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="BOT_TOKEN_KEY_VERSION"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_secure_cookie_and_hsts_behind_https(site) -> None:  # type: ignore[no-untyped-def]
    services = site["services"]
    # BOT_HTTPS=1: the TLS proxy in front speaks https even if the request reaches us as http.
    forced = create_app(services, SECRET, https=True)
    response = login(client_for(forced))
    assert "secure" in [p.strip().lower() for p in response.headers["set-cookie"].split(";")]
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert client_for(forced).get("/healthz").headers["strict-transport-security"].startswith("max-age=")
    # The request's scheme is https (uvicorn took X-Forwarded-Proto from a proxy it trusts).
    app = create_app(services, SECRET)
    client = client_for(app, address="192.0.2.60", https=True)
    response = login(client)
    attributes = [p.strip().lower() for p in response.headers["set-cookie"].split(";")]
    assert {"secure", "httponly", "samesite=strict"} <= set(attributes)
    assert "strict-transport-security" in response.headers
    assert client.get("/api/agent/me").status_code == 200
    assert "strict-transport-security" not in client_for(app).get("/healthz").headers  # plain http: no HSTS


# ---- login throttling ----------------------------------------------------------------------------


def wrong(client: TestClient, username: str = "sato") -> Any:
    return login(client, username, "wrong-password")


def test_wrong_passwords_from_one_address_do_not_lock_the_agent_out(site) -> None:  # type: ignore[no-untyped-def]
    app = site["app"]
    attacker = client_for(app, address="203.0.113.66")
    codes = [wrong(attacker).status_code for _ in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    refused = wrong(attacker)
    assert int(refused.headers["retry-after"]) >= 1
    assert "秒後" in refused.json()["error"] or "分後" in refused.json()["error"]
    # The agent, from their own desk, is not locked out by someone else's guesses.
    assert login(client_for(app, address="192.0.2.10")).status_code == 200


def test_failures_back_off_exponentially_instead_of_a_hard_lockout(site) -> None:  # type: ignore[no-untyped-def]
    clock, app = site["clock"], site["app"]
    client = client_for(app)
    assert [wrong(client).status_code for _ in range(5)] == [401] * 5
    waits = []
    for _ in range(4):
        refused = wrong(client)
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        clock.advance(waits[-1])
        assert wrong(client).status_code == 401  # after the wait, the next guess is checked again
    assert waits == [1, 2, 4, 8]
    refused = login(client)  # even the right password waits its turn (16 s)...
    assert refused.status_code == 429 and refused.headers["retry-after"] == "16"
    clock.advance(16)
    assert login(client).status_code == 200  # ...and then it works: no lockout
    clock.advance(365 * 24 * 3600)
    assert [wrong(client).status_code for _ in range(5)] == [401] * 5  # long forgotten


def test_guesses_for_one_name_from_many_addresses_are_slowed_down(site) -> None:  # type: ignore[no-untyped-def]
    app, clock = site["app"], site["clock"]
    codes = [wrong(client_for(app, address=f"203.0.113.{i}")).status_code for i in range(1, 12)]
    assert codes == [401] * 10 + [429]
    refused = login(client_for(app, address="192.0.2.10"))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    clock.advance(int(refused.headers["retry-after"]))
    assert login(client_for(app, address="192.0.2.10")).status_code == 200
    # A success forgets the name's failures.
    assert wrong(client_for(app, address="203.0.113.40")).status_code == 401


def test_made_up_names_cannot_wash_out_the_count(site) -> None:  # type: ignore[no-untyped-def]
    from starlette.exceptions import HTTPException

    from bot.server.auth import LoginThrottle
    from bot.store.agents import Backoff

    attempts = site["services"].stores.agents.login_attempts
    name_backoff = Backoff(free_failures=3, base_seconds=60, max_seconds=60)
    throttle = LoginThrottle(name_backoff=name_backoff)
    made_up = [(LoginThrottle.keys("203.0.113.200", f"made-up-{i}")[1], name_backoff) for i in range(10_001)]

    async def attack() -> None:
        for i in range(2):
            await throttle.begin(attempts, f"203.0.113.{i}", "sato")
        for start in range(0, len(made_up), 2000):  # what 10,001 guesses at made-up names leave behind
            assert attempts.begin(made_up[start:start + 2000]) == 0
        await throttle.begin(attempts, "203.0.113.98", "sato")  # the third failure: the name must wait now
        with pytest.raises(HTTPException) as refused:
            await throttle.begin(attempts, "203.0.113.99", "sato")
        assert refused.value.status_code == 429 and refused.value.headers["Retry-After"] == "60"

    asyncio.run(attack())


def test_throttle_counts_are_shared_by_servers_on_one_database(site) -> None:  # type: ignore[no-untyped-def]
    other_services = make_services(site["url"], site["clock"])
    site["engines"].append(other_services.stores.engine)
    first, second = site["app"], create_app(other_services, SECRET)
    address = "203.0.113.77"
    assert [wrong(client_for(first, address=address)).status_code for _ in range(5)] == [401] * 5
    assert wrong(client_for(second, address=address)).status_code == 429


def test_at_most_two_password_checks_run_at_once(site) -> None:  # type: ignore[no-untyped-def]
    agents = site["services"].stores.agents
    real = agents.authenticate
    running, peak, lock = [0], [0], threading.Lock()

    def slow_authenticate(username: str, password: str) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.2)
            return real(username, password)
        finally:
            with lock:
                running[0] -= 1

    agents.authenticate = slow_authenticate  # type: ignore[method-assign]
    app = site["app"]

    async def from_address(scope: Any, receive: Any, send: Any) -> None:
        """The test's ``X-Client`` header as the client address (one event loop, many clients)."""
        if scope["type"] == "http":
            sent = dict(scope["headers"]).get(b"x-client")
            scope = {**scope, "client": (sent.decode(), 40000)} if sent else scope
        await app(scope, receive, send)

    with TestClient(from_address) as client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: client.post("/api/agent/login", headers={"X-Client": f"198.51.100.{i}"},
                                                    json={"username": f"user{i}", "password": "x" * 9}).status_code,
                              range(8)))
    assert codes == [401] * 8
    assert 1 <= peak[0] <= 2


# ---- the first agent -----------------------------------------------------------------------------


def test_first_agent_password_is_shown_once_and_its_file_goes_after_login(
        database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.server.first_agent import ensure_first_agent
    from bot.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BOT_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    get_settings.cache_clear()
    note = tmp_path / "var" / "first-agent.txt"
    try:
        lines = ensure_first_agent(get_settings())
        password = lines[0].split("パスワード: ")[1]
        assert any("bot agent passwd agent" in line for line in lines)
        assert password in note.read_text(encoding="utf-8")
        later = ensure_first_agent(get_settings())
        assert all(password not in line for line in later)  # shown once
        services = make_services(database_url)
        client = client_for(create_app(services, SECRET))
        assert login(client, "agent", "wrong-password").status_code == 401
        assert note.exists()
        assert login(client, "agent", password).status_code == 200
        assert not note.exists()  # gone after the first login
        assert ensure_first_agent(get_settings()) == []
        services.stores.engine.dispose()
    finally:
        get_settings.cache_clear()


def test_first_agent_file_goes_after_a_password_change(database_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.server.first_agent import ensure_first_agent
    from bot.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BOT_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    get_settings.cache_clear()
    try:
        ensure_first_agent(get_settings())
    finally:
        get_settings.cache_clear()
    assert (tmp_path / "var" / "first-agent.txt").exists()
    assert run_cli(["agent", "passwd", "agent"], monkeypatch, database_url, [NEW_PASSWORD, NEW_PASSWORD],
                   tmp_path=tmp_path) == 0
    assert not (tmp_path / "var" / "first-agent.txt").exists()
