"""deploy/: what runs on this machine, run here.

* nginx (Debian's) with ``local.conf`` in front of two stand-in bot servers: the WebSocket
  upgrade, one customer's sockets always on one server, SSE events passed at once, the
  client's address and Host passed on, and a bot server that is down skipped.
* nginx with ``production.conf`` (TLS, a self-signed certificate made here): https answers,
  http redirects.
* The systemd units pass ``systemd-analyze verify``, and every variable they use is set by
  the example environment files. (``tests/test_e2e_scaled.py`` starts the real processes
  with the units' command lines.)
* ``prepare_rasa.py`` writes the token and the endpoints; ``backup.py`` backs up and
  restores SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import httpx
import pytest
import websockets
import yaml
from aiohttp import web

from bot.launcher import free_port
from conftest import missing_service, temporary_database
from deploy import backup as backups
from deploy.run_scaled import DEPLOY, Replica, ScaledStack, nginx_binary, read_env_file, render_nginx_conf
from test_rasa_replicas import LoopbackApp

UNIT_DIR = DEPLOY / "systemd"


@pytest.fixture(scope="module")
def nginx() -> str:
    try:
        return nginx_binary()
    except Exception as exc:  # noqa: BLE001
        missing_service(f"nginx がありません（make setup で入ります）: {exc}")
        raise


class StandIn(LoopbackApp):
    """A bot server stand-in: says who it is on every route the nginx config treats apart."""

    def _who(self, request: web.Request) -> dict[str, Any]:
        return {"server": self.name, "xff": request.headers.get("X-Forwarded-For"),
                "proto": request.headers.get("X-Forwarded-Proto"), "host": request.headers.get("Host")}

    async def _page(self, request: web.Request) -> web.Response:
        return web.json_response(self._who(request))

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({**self._who(request), "token": request.query.get("token")})
        async for message in ws:
            await ws.send_str(f"{self.name}:{message.data}")
        return ws

    async def _events(self, request: web.Request) -> web.StreamResponse:
        # No X-Accel-Buffering header: the nginx config alone must keep the stream unbuffered.
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: ticket\ndata: {\"first\": true}\n\n")
        await asyncio.sleep(3)
        await response.write(b"event: ticket\ndata: {\"first\": false}\n\n")
        return response

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws/chat", self._socket)
        app.router.add_get("/api/events", self._events)
        app.router.add_route("*", "/{tail:.*}", self._page)


@contextlib.asynccontextmanager
async def local_nginx(folder: Path) -> AsyncIterator[tuple[str, StandIn, StandIn]]:
    """nginx with local.conf (started as run_scaled starts it) in front of stand-ins A and B."""
    a, b = StandIn("A"), StandIn("B")
    await a.start()
    await b.start()
    stack = ScaledStack(model=Path("unused"), replicas=[Replica(1, a.port, 0, 0), Replica(2, b.port, 0, 0)],
                        nginx_port=free_port(), folder=folder)
    stack.logs.mkdir(parents=True)
    stack.start_nginx()
    try:
        await wait_until_up(f"{stack.url}/healthz")
        yield stack.url, a, b
    finally:
        stack.stop()
        await a.stop()
        await b.stop()


async def wait_until_up(url: str, **client: Any) -> None:
    async with httpx.AsyncClient(**client) as http:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"nginx did not answer on {url}")


async def socket_hello(url: str, token: str) -> tuple[dict[str, Any], str | None]:
    ws_url = url.replace("http://", "ws://") + f"/ws/chat?token={token}"
    async with websockets.connect(ws_url) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == f"{hello['server']}:ping"
        return hello, ws.response_headers.get("X-Bot-Upstream")


def test_local_conf_websockets_sse_and_a_server_down(nginx: str, tmp_path: Path) -> None:
    async def run() -> None:
        async with local_nginx(tmp_path) as (url, a, b):
            tokens = [f"token-{i}" for i in range(16)]
            first = {t: await socket_hello(url, t) for t in tokens}
            hello, upstream = first[tokens[0]]
            assert hello["xff"] == "127.0.0.1" and hello["proto"] == "http"
            assert hello["host"] == url.removeprefix("http://")  # the Origin check needs the port
            assert upstream in (f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}")
            assert {h["server"] for h, _ in first.values()} == {"A", "B"}  # spread
            again = {t: (await socket_hello(url, t))[0]["server"] for t in tokens}
            assert again == {t: h["server"] for t, (h, _) in first.items()}  # each token sticks

            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                started = time.monotonic()
                async with http.stream("GET", "/api/events") as sse:
                    lines = sse.aiter_lines()
                    while not (await lines.__anext__()).startswith("data:"):
                        pass
                    assert time.monotonic() - started < 2  # not held until the stream ends (3 s)
                pages = {(await http.get("/api/tickets")).json()["server"] for _ in range(8)}
                assert pages == {"A", "B"}

                await b.stop()  # bot server B down: everything goes to A
                assert {(await http.get("/api/tickets")).json()["server"] for _ in range(8)} == {"A"}
            assert {(await socket_hello(url, t))[0]["server"] for t in tokens} == {"A"}

    asyncio.run(run())


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=support.example.jp", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_production_conf_serves_tls_and_redirects_http(nginx: str, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        missing_service("openssl がありません（自己署名の証明書を作れません）")
    cert, key = self_signed(tmp_path)
    https_port, http_port = free_port(), free_port()

    async def run() -> None:
        a, b = StandIn("A"), StandIn("B")
        await a.start()
        await b.start()
        site = (DEPLOY / "nginx" / "production.conf").read_text(encoding="utf-8")
        site = (site.replace("/etc/letsencrypt/live/support.example.jp/fullchain.pem", str(cert))
                .replace("/etc/letsencrypt/live/support.example.jp/privkey.pem", str(key))
                .replace("127.0.0.1:8001", f"127.0.0.1:{a.port}").replace("127.0.0.1:8002", f"127.0.0.1:{b.port}"))
        site = re.sub(r"listen \[::\]:\d+[^;]*;\n", "", site)
        site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl").replace(
            "listen 80;", f"listen 127.0.0.1:{http_port};")
        (tmp_path / "logs").mkdir()
        (tmp_path / "snippets").symlink_to(DEPLOY / "nginx" / "snippets")
        (tmp_path / "site.conf").write_text(site, encoding="utf-8")
        (tmp_path / "nginx.conf").write_text(
            "daemon off; pid nginx.pid; error_log logs/error.log;\nevents {}\n"
            "http { access_log off; client_body_temp_path logs/b; proxy_temp_path logs/p;\n"
            "       fastcgi_temp_path logs/f; uwsgi_temp_path logs/u; scgi_temp_path logs/s;\n"
            "       include site.conf; }\n", encoding="utf-8")
        check = subprocess.run([nginx, "-e", "stderr", "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([nginx, "-e", "stderr", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf")],
                                start_new_session=True)
        try:
            await wait_until_up(f"https://127.0.0.1:{https_port}/healthz", verify=False)
            async with httpx.AsyncClient(verify=False) as http:
                answer = (await http.get(f"https://127.0.0.1:{https_port}/console/")).json()
                assert answer["server"] in ("A", "B") and answer["proto"] == "https"
                moved = await http.get(f"http://127.0.0.1:{http_port}/console/?x=1")
                assert moved.status_code == 301
                assert moved.headers["location"] == "https://127.0.0.1/console/?x=1"
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(10)
            await a.stop()
            await b.stop()

    asyncio.run(run())


def test_nginx_conf_rendered_for_three_bot_servers() -> None:
    conf = render_nginx_conf(9080, [9001, 9002, 9003])
    directives = "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))
    assert "listen 127.0.0.1:9080;" in directives and "8080" not in directives and "800" not in directives
    for upstream in ("bot_sockets", "bot_consoles", "bot_servers"):
        block = conf.split(f"upstream {upstream} {{", 1)[1].split("}", 1)[0]
        assert re.findall(r"server 127\.0\.0\.1:(\d+)", block) == ["9001", "9002", "9003"]
    production = (DEPLOY / "nginx" / "production.conf").read_text(encoding="utf-8")
    assert "X-Bot-Upstream" not in production  # the test header stays on this machine


@pytest.mark.parametrize("location", ["/ws/chat", "/api/events"])
def test_long_lived_streams_are_unbuffered_and_wait_an_hour(location: str) -> None:
    """(nginx passes a first small event at once even when buffering: the setting is read here.)"""
    locations = (DEPLOY / "nginx" / "snippets" / "bot-locations.conf").read_text(encoding="utf-8")
    block = locations.split(f"location = {location} {{", 1)[1].split("}", 1)[0]
    for directive in ("proxy_buffering off;", "proxy_read_timeout 1h;", "proxy_send_timeout 1h;",
                      "include snippets/bot-proxy-headers.conf;"):
        assert directive in block


@pytest.fixture()
def installed_units(tmp_path: Path) -> Path:
    """The units as installed, with this checkout in /opt/mirai-support and the env files in place."""
    env_dir = tmp_path / "etc"
    env_dir.mkdir()
    for example in (DEPLOY / "env").glob("*.env.example"):
        shutil.copy(example, env_dir / example.name.removesuffix(".example"))
    units = tmp_path / "units"
    units.mkdir()
    root = str(DEPLOY.parent)
    for unit in UNIT_DIR.iterdir():
        text = unit.read_text(encoding="utf-8").replace("/etc/mirai-support/", f"{env_dir}/")
        text = re.sub(r"^(User|Group)=.*\n", "", text.replace("/opt/mirai-support", root), flags=re.M)
        text = text.replace(f"{root}/.venv/bin/python", sys.executable)
        (units / unit.name).write_text(text, encoding="utf-8")
    return units


def test_systemd_units_verify(installed_units: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        missing_service("systemd-analyze がありません")
    names = [f"{u.name.replace('@.', '@1.')}" for u in sorted(installed_units.iterdir())]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *[f"./{n}" for n in names]],
                            cwd=installed_units, capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert {"mirai-support-actions@.service", "mirai-support-rasa@.service", "mirai-support-bot@.service",
            "mirai-support-migrate.service", "mirai-support-backup.timer",
            "mirai-support.target"} <= {u.name for u in installed_units.iterdir()}


def test_every_variable_of_the_units_is_in_the_env_files() -> None:
    env = {**read_env_file(DEPLOY / "env" / "common.env.example"), "RUNTIME_DIRECTORY": "(systemd)"}
    for index in (1, 2):
        replica = read_env_file(DEPLOY / "env" / f"replica-{index}.env.example")
        assert set(replica) == {"BOT_SERVER_PORT", "BOT_RASA_PORT", "BOT_ACTION_PORT", "BOT_OUTBOX"}
        used = set()
        for unit in UNIT_DIR.glob("*.service"):
            used |= set(re.findall(r"\$\{(\w+)\}", unit.read_text(encoding="utf-8")))
        assert used <= set(env) | set(replica)
    rasa_urls = env["BOT_RASA_URL"].split(",")
    ports = [read_env_file(DEPLOY / "env" / f"replica-{i}.env.example")["BOT_RASA_PORT"] for i in (1, 2)]
    assert rasa_urls == [f"http://127.0.0.1:{p}" for p in ports]  # every Rasa server, each once
    conf = (DEPLOY / "nginx" / "production.conf").read_text(encoding="utf-8")
    servers = [read_env_file(DEPLOY / "env" / f"replica-{i}.env.example")["BOT_SERVER_PORT"] for i in (1, 2)]
    assert all(conf.count(f"server 127.0.0.1:{p} ") == 3 for p in servers)  # in each upstream


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_prepare_rasa_writes_the_token_and_the_endpoints(kind: str, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'db' / 'handoff.db'}" if kind == "sqlite" else \
        "postgresql://mirai:secret@127.0.0.1:5432/mirai_support"
    env = {**os.environ, "DATABASE_URL": database, "BOT_EVENTS_URL": "redis://127.0.0.1:6379/0",
           "BOT_ACTION_PORT": "5056", "BOT_RASA_TOKEN_FILE": str(tmp_path / "rasa.token")}
    out = tmp_path / "run" / "endpoints.yml"
    result = subprocess.run([sys.executable, str(DEPLOY / "prepare_rasa.py"), str(out)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    endpoints = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert endpoints["action_endpoint"]["url"] == "http://127.0.0.1:5056/webhook"
    assert endpoints["tracker_store"]["type"] == "bot.store.rasa_tracker_retry.RetryingSQLTrackerStore" and endpoints["tracker_store"]["dialect"] == kind
    assert endpoints["lock_store"]["type"] == "redis"
    for path in (out, tmp_path / "rasa.token"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = (tmp_path / "rasa.token").read_text()
    subprocess.run([sys.executable, str(DEPLOY / "prepare_rasa.py"), str(out)], env=env, check=True)
    assert (tmp_path / "rasa.token").read_text() == token  # the second replica keeps the first's token
    usage = subprocess.run([sys.executable, str(DEPLOY / "prepare_rasa.py")], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "使い方" in usage.stderr


@contextlib.contextmanager
def database_with_agent(kind: str, folder: Path) -> Iterator[str]:
    from bot.server.app import stores_for

    with temporary_database(kind, folder) as url:
        stores = stores_for(url)
        stores.agents.add("sato", "佐藤", "password-sato-1234")
        stores.engine.dispose()
        if kind == "sqlite":  # Rasa's tracker file next to it (bot.store.rasa_endpoints)
            with contextlib.closing(__import__("sqlite3").connect(folder / "trackers.db")) as db:
                db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT)")
                db.execute("INSERT INTO events (sender_id) VALUES ('c1')")
                db.commit()
        yield url


def agent_names(url: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        names = [row[0] for row in conn.execute(text("SELECT username FROM agents ORDER BY username"))]
    engine.dispose()
    return names


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_backup_then_restore_brings_the_database_back(kind: str, tmp_path: Path) -> None:
    from bot.server.app import stores_for

    with database_with_agent(kind, tmp_path / "db") as url:
        saved = backups.backup(tmp_path / "backups", url)
        manifest = json.loads((saved / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["kind"] == kind and stat.S_IMODE(saved.stat().st_mode) == 0o700
        if kind == "sqlite":
            assert manifest["files"] == ["bot.db", "trackers.db"]

        stores = stores_for(url)  # after the backup: another agent, and the tracker row gone
        stores.agents.add("suzuki", "鈴木", "password-suzuki-1234")
        stores.engine.dispose()
        if kind == "sqlite":
            with contextlib.closing(__import__("sqlite3").connect(tmp_path / "db" / "trackers.db")) as db:
                db.execute("DELETE FROM events")
                db.commit()
        assert agent_names(url) == ["sato", "suzuki"]

        assert backups.restore(saved, url) == manifest["files"]
        assert agent_names(url) == ["sato"]
        if kind == "sqlite":
            with contextlib.closing(__import__("sqlite3").connect(tmp_path / "db" / "trackers.db")) as db:
                assert db.execute("SELECT sender_id FROM events").fetchall() == [("c1",)]
        other = "postgresql://postgres@127.0.0.1:5432/x" if kind == "sqlite" else f"sqlite:///{tmp_path / 'x.db'}"
        with pytest.raises(backups.BackupError, match="バックアップです"):
            backups.restore(saved, other)


def test_backup_command_line(tmp_path: Path) -> None:
    with database_with_agent("sqlite", tmp_path / "db") as url:
        env = {**os.environ, "DATABASE_URL": url}
        script = str(DEPLOY / "backup.py")
        made = subprocess.run([sys.executable, script, "backup", str(tmp_path / "b")], env=env,
                              capture_output=True, text=True)
        assert made.returncode == 0 and "バックアップしました" in made.stdout, made.stderr
        folder = next((tmp_path / "b").iterdir())
        refused = subprocess.run([sys.executable, script, "restore", str(folder)], env=env,
                                 capture_output=True, text=True)
        assert refused.returncode == 2 and "--yes" in refused.stderr
        done = subprocess.run([sys.executable, script, "restore", str(folder), "--yes"], env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0 and "復元しました" in done.stdout, done.stderr
        missing = subprocess.run([sys.executable, script, "restore", str(tmp_path), "--yes"], env=env,
                                 capture_output=True, text=True)
        assert missing.returncode == 1 and "manifest.json" in missing.stderr


def test_migrate_brings_a_fresh_database_to_the_schema_once(tmp_path: Path) -> None:
    """The one-shot unit the servers wait for (started together they would race to create tables)."""
    from sqlalchemy import create_engine, inspect

    with temporary_database("postgresql", tmp_path) as url:
        for _ in range(2):  # a second start finds it up to date
            result = subprocess.run([sys.executable, str(DEPLOY / "migrate.py")], capture_output=True, text=True,
                                    env={**os.environ, "DATABASE_URL": url})
            assert result.returncode == 0, result.stderr
        engine = create_engine(url)
        assert {"tickets", "agents", "chat_messages", "alembic_version"} <= set(inspect(engine).get_table_names())
        engine.dispose()
    refused = subprocess.run([sys.executable, str(DEPLOY / "migrate.py")], capture_output=True, text=True,
                             env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert refused.returncode == 1 and "データベースを準備できませんでした" in refused.stderr


def test_the_backup_unit_keeps_the_newest_14(tmp_path: Path) -> None:
    """The backup unit's clean-up line, run as systemd would run it (backup folders sort by time)."""
    import shlex

    unit = (UNIT_DIR / "mirai-support-backup.service").read_text(encoding="utf-8")
    line = next(v for k, _, v in (x.partition("=") for x in unit.splitlines()) if k == "ExecStartPost")
    stamps = [f"202611{day:02d}T033000Z" for day in range(1, 17)]
    for stamp in stamps:
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / "manifest.json").write_text("{}")
    (tmp_path / "notes").mkdir()  # not a backup folder: left alone
    args = [arg.replace("/var/backups/mirai-support", str(tmp_path)) for arg in shlex.split(line)]
    subprocess.run(args, check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [*stamps[2:], "notes"]
