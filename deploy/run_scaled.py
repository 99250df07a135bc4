"""Scale-out on this machine with the production parts (``make run-scaled``).

Starts, as child processes: nginx from Debian with ``deploy/nginx/local.conf`` in front of
N bot servers (2 by default), N Rasa servers sharing the PostgreSQL tracker store and the
Redis lock store, and N action servers (one per Rasa server). Every process is started with
the command line of its systemd unit (``deploy/systemd/*.service``: ``ExecStartPre`` and
``ExecStart``) and the settings of the example environment files (``deploy/env/``), with
this checkout in place of ``/opt/mirai-support`` and the ports and files of the run. So
what runs here is what a production install runs.

::

    python deploy/run_scaled.py                      # nginx on http://127.0.0.1:8080/
    python deploy/run_scaled.py --port 9080 --replicas 3

PostgreSQL and Redis are the ones of this machine (``DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/mirai_support``, created if missing;
``BOT_EVENTS_URL``, default ``redis://127.0.0.1:6379/0``).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

DEPLOY = Path(__file__).resolve().parent
PROJECT_ROOT = DEPLOY.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script: the bot package of this checkout
    sys.path.insert(0, str(PROJECT_ROOT))

from bot.launcher import StartupError, _wait_http, port_is_free, stop_processes  # noqa: E402
from bot.server.rasa_client import read_rasa_token  # noqa: E402
from bot.server.tokens import load_secret_key  # noqa: E402

INSTALL_DIR = "/opt/mirai-support"  # where the units expect the checkout (docs/deploy.md)
UNITS = {"actions": "mirai-support-actions@.service", "rasa": "mirai-support-rasa@.service",
         "bot": "mirai-support-bot@.service", "migrate": "mirai-support-migrate.service"}
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/mirai_support"
DEFAULT_EVENTS = "redis://127.0.0.1:6379/0"
LOCAL_UPSTREAM = re.compile(r"^(\s*)server 127\.0\.0\.1:80(\d\d)( .*)?;\s*$")


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a systemd environment file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def unit_commands(unit: Path) -> dict[str, list[str]]:
    """The ``ExecStartPre`` and ``ExecStart`` lines of a unit file, by key."""
    commands: dict[str, list[str]] = {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("ExecStartPre", "ExecStart"):
            commands.setdefault(key, []).append(value.strip())
    return commands


def expand(command: str, env: dict[str, str], instance: str) -> list[str]:
    """A unit's command line as arguments: ``${VAR}`` from ``env``, ``%i``, this checkout's Python.

    Raises:
        StartupError: The command names a variable no environment file sets.
    """
    def variable(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise StartupError(f"{name} はどの環境ファイルにもありません（deploy/env/ を確かめてください）。")
        return env[name]

    args = shlex.split(re.sub(r"\$\{(\w+)\}", variable, command.replace("%i", instance)))
    python = f"{INSTALL_DIR}/.venv/bin/python"
    return [sys.executable if arg == python else arg.replace(INSTALL_DIR, str(PROJECT_ROOT)) for arg in args]


def render_nginx_conf(listen_port: int, server_ports: list[int]) -> str:
    """``deploy/nginx/local.conf`` with the ports of this run.

    Its ``listen 127.0.0.1:8080`` becomes ``listen_port``; in each upstream the
    ``server 127.0.0.1:8001 …`` line is repeated for every bot server and the other
    ``127.0.0.1:80xx`` lines are dropped.
    """
    out: list[str] = []
    for line in (DEPLOY / "nginx" / "local.conf").read_text(encoding="utf-8").splitlines():
        match = LOCAL_UPSTREAM.match(line)
        if match and match.group(2) == "01":
            out += [f"{match.group(1)}server 127.0.0.1:{port}{match.group(3) or ''};" for port in server_ports]
        elif not match:
            out.append(line.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen_port};"))
    return "\n".join(out) + "\n"


def nginx_binary() -> str:
    """Debian's nginx (``make setup`` installs it)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise StartupError("nginx がありません。`make setup`（root で apt-get install nginx）を実行してください。")
    return found


def _run_now(args: list[str], env: dict[str, str], label: str) -> None:
    """Run a unit's one-shot command to its end (``ExecStartPre``, a ``Type=oneshot`` unit).

    Raises:
        StartupError: It failed; with its error output.
    """
    result = subprocess.run(args, cwd=PROJECT_ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode != 0:
        raise StartupError(f"{label} の準備に失敗しました: {result.stderr.strip()[-1500:]}")


@dataclass
class Replica:
    """The ports of one replica: bot server, Rasa server, action server."""

    index: int
    server_port: int
    rasa_port: int
    action_port: int

    @property
    def rasa_url(self) -> str:
        """Base URL of this replica's Rasa server."""
        return f"http://127.0.0.1:{self.rasa_port}"


@dataclass
class ScaledStack:
    """nginx, N bot servers, N Rasa servers and N action servers, as a context manager.

    Attributes:
        model: Trained model archive.
        replicas: The ports of each replica.
        nginx_port: Where nginx listens (127.0.0.1).
        folder: Logs, nginx's prefix, token and key files, endpoints of this run.
        env: Settings for every process, over the example ``common.env`` (``DATABASE_URL``
            and ``BOT_EVENTS_URL`` must be set).
    """

    model: Path
    replicas: list[Replica]
    nginx_port: int = 8080
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bot-scaled-")))
    env: dict[str, str] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)

    @property
    def url(self) -> str:
        """nginx: what customers and agents use."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def logs(self) -> Path:
        """Where every process's log goes."""
        return self.folder / "logs"

    @property
    def processes(self) -> list[subprocess.Popen]:
        """The processes running now (nginx and every server)."""
        return list(self._procs.values())

    def common_env(self) -> dict[str, str]:
        """``common.env`` of this run: the example, with this run's stores, files and Rasa servers."""
        env = read_env_file(DEPLOY / "env" / "common.env.example")
        env.update({"BOT_RASA_URL": ",".join(r.rasa_url for r in self.replicas), "BOT_MODEL": str(self.model),
                    "BOT_RASA_TOKEN_FILE": str(self.folder / "rasa.token"),
                    "BOT_SECRET_KEY_FILE": str(self.folder / "secret.key"),
                    # Plain http on loopback; the widget on this server's own pages.
                    "BOT_HTTPS": "0", "BOT_WIDGET_ORIGINS": ""})
        env.update(self.env)
        return env

    def replica_env(self, replica: Replica) -> dict[str, str]:
        """``common.env`` and ``replica-N.env`` of this run for one replica."""
        example = DEPLOY / "env" / f"replica-{replica.index}.env.example"
        env = read_env_file(example if example.exists() else DEPLOY / "env" / "replica-1.env.example")
        env.update({"BOT_SERVER_PORT": str(replica.server_port), "BOT_RASA_PORT": str(replica.rasa_port),
                    "BOT_ACTION_PORT": str(replica.action_port),
                    "BOT_OUTBOX": str(self.folder / f"outbox-{replica.index}.jsonl"),
                    "RUNTIME_DIRECTORY": str(self.folder / "run" / f"rasa-{replica.index}")})
        return {**self.common_env(), **env}

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        handle = (self.logs / f"{name}.log").open("a", encoding="utf-8")
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        self._procs[name] = proc
        return proc

    def _unit(self, kind: str, replica: Replica) -> tuple[list[list[str]], list[str], dict[str, str]]:
        env = self.replica_env(replica)
        commands = unit_commands(DEPLOY / "systemd" / UNITS[kind])
        instance = str(replica.index)
        pre = [expand(c, env, instance) for c in commands.get("ExecStartPre", [])]
        return pre, expand(commands["ExecStart"][0], env, instance), env

    def start_process(self, kind: str, replica: Replica) -> tuple[str, subprocess.Popen]:
        """Start one process (``kind``: actions, rasa, bot) of a replica, as its unit does."""
        pre, command, env = self._unit(kind, replica)
        Path(env["RUNTIME_DIRECTORY"]).mkdir(parents=True, exist_ok=True, mode=0o700)
        for args in pre:
            _run_now(args, env, f"{kind}-{replica.index}")
        name = f"{kind}-{replica.index}"
        return name, self._spawn(name, command, env)

    def run_migrations(self) -> None:
        """The one-shot schema unit (``mirai-support-migrate.service``), before the servers."""
        env = self.common_env()
        for command in unit_commands(DEPLOY / "systemd" / UNITS["migrate"])["ExecStart"]:
            _run_now(expand(command, env, ""), env, "migrate")

    def health_url(self, kind: str, replica: Replica) -> str:
        """The URL that answers once the process is ready."""
        if kind == "actions":
            return f"http://127.0.0.1:{replica.action_port}/health"
        if kind == "bot":
            return f"http://127.0.0.1:{replica.server_port}/healthz"
        token = read_rasa_token(self.folder / "rasa.token") or ""
        return f"{replica.rasa_url}/status?{urllib.parse.urlencode({'token': token})}"

    def wait(self, kind: str, replica: Replica, timeout: float = 240.0) -> None:
        """Wait until a process answers (raises :class:`StartupError` if it died)."""
        name = f"{kind}-{replica.index}"
        _wait_http(self.health_url(kind, replica), self._procs[name], timeout, self.logs / f"{name}.log")

    def start_nginx(self) -> subprocess.Popen:
        """Start nginx with ``local.conf`` rendered for this run's ports."""
        prefix = self.folder / "nginx"
        for sub in ("logs", "tmp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        if not (prefix / "snippets").exists():
            (prefix / "snippets").symlink_to(DEPLOY / "nginx" / "snippets")
        conf = prefix / "nginx.conf"
        conf.write_text(render_nginx_conf(self.nginx_port, [r.server_port for r in self.replicas]), encoding="utf-8")
        return self._spawn("nginx", [nginx_binary(), "-e", "stderr", "-p", f"{prefix}/", "-c", str(conf)], {})

    def start(self, timeout: float = 240.0) -> "ScaledStack":
        """Start everything and wait until nginx passes a request to every bot server.

        Raises:
            StartupError: A port is taken, the model or nginx is missing, or a process died.
        """
        if not self.model.exists():
            raise StartupError(f"モデル {self.model} がありません。`make train` を実行してください。")
        ports = [self.nginx_port] + [p for r in self.replicas for p in (r.server_port, r.rasa_port, r.action_port)]
        taken = [p for p in ports if not port_is_free(p)]
        if taken:
            raise StartupError(f"ポート {', '.join(map(str, taken))} は使用中です。--port / --base-port で別のポートを指定してください。")
        self.logs.mkdir(parents=True, exist_ok=True)
        nginx_binary()
        # Every bot server must sign with one key: made once, before any of them starts.
        load_secret_key(self.folder / "secret.key")
        self.run_migrations()
        try:
            for kind in ("actions", "rasa", "bot"):
                for replica in self.replicas:
                    self.start_process(kind, replica)
            self.start_nginx()
            for kind in ("actions", "rasa", "bot"):
                for replica in self.replicas:
                    self.wait(kind, replica, timeout)
            _wait_http(f"{self.url}/healthz", self._procs["nginx"], 30, self.logs / "nginx.log")
        except StartupError:
            self.stop()
            raise
        return self

    def kill(self, name: str) -> None:
        """Kill one process hard (SIGKILL), as a crash would: ``"rasa-1"``, ``"bot-2"`` …"""
        proc = self._procs.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, kind: str, replica: Replica, timeout: float = 240.0) -> None:
        """Start a killed process again and wait for it (systemd's ``Restart=always``)."""
        self.start_process(kind, replica)
        self.wait(kind, replica, timeout)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 15 s)."""
        stop_processes(list(self._procs.values()), grace=15)
        self._procs.clear()

    def __enter__(self) -> "ScaledStack":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def example_replicas(count: int, base_port: int | None = None) -> list[Replica]:
    """Ports of ``count`` replicas: those of ``deploy/env/replica-N.env.example`` (8001/5005/5055,
    8002/5006/5056 …), or from ``base_port`` (bot ``base+i``, Rasa ``base+100+i``, actions ``base+200+i``)."""
    replicas = []
    for index in range(1, count + 1):
        if base_port is not None:
            ports = (base_port + index, base_port + 100 + index, base_port + 200 + index)
        else:
            ports = (8000 + index, 5004 + index, 5054 + index)
        replicas.append(Replica(index, *ports))
    return replicas


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` if it does not exist (trust auth on this machine)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def main(argv: list[str] | None = None) -> int:
    """``make run-scaled``: start, print the URLs, run until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="deploy/run_scaled.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "current.tar.gz")
    parser.add_argument("--replicas", type=int, default=2, help="レプリカ数（既定 2）")
    parser.add_argument("--port", type=int, default=8080, help="nginx のポート（既定 8080）")
    parser.add_argument("--base-port", type=int, help="各サーバーのポートをここから（既定: deploy/env の例）")
    args = parser.parse_args(argv)
    database = os.environ.get("DATABASE_URL", "")
    database = database if database.startswith("postgresql") else DEFAULT_DATABASE
    events = os.environ.get("BOT_EVENTS_URL") or DEFAULT_EVENTS
    folder = PROJECT_ROOT / "var" / "scaled"
    # The first agent's password file goes next to the key the bot servers use (var/scaled/), so
    # their first login deletes it, and `make run`'s var/first-agent.txt is left alone.
    os.environ.update({"DATABASE_URL": database, "BOT_EVENTS_URL": events,
                       "BOT_SECRET_KEY_FILE": str(folder / "secret.key")})
    from bot.launcher import run_until_stopped
    from bot.server.first_agent import ensure_first_agent
    from bot.settings import get_settings

    stack = ScaledStack(model=args.model, replicas=example_replicas(args.replicas, args.base_port),
                        nginx_port=args.port, folder=folder,
                        env={"DATABASE_URL": database, "BOT_EVENTS_URL": events})

    def start() -> list[str]:
        ensure_database(database)
        notes = ensure_first_agent(get_settings())
        stack.start()
        return [f"デモページ（ウィジェット）: {stack.url}/",
                f"担当者コンソール:           {stack.url}/console/",
                *(f"レプリカ {r.index}: ボットサーバー :{r.server_port}  Rasa :{r.rasa_port}  アクション :{r.action_port}"
                  for r in stack.replicas),
                f"データベース: {database.split('@')[-1]}   Redis: {events}",
                *notes,
                f"ログ: {stack.logs}   停止: Ctrl-C"]

    # Any failure of the start (the database, Redis or a process) is one clear line.
    return run_until_stopped(start, lambda: stack.processes, stack.stop, starting="起動しています（1 分ほどかかります）…",
                             died="プロセスが停止しました。ログを確認してください。", start_errors=(Exception,))


if __name__ == "__main__":
    sys.exit(main())
