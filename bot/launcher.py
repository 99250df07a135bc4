"""Start the Rasa server, the action server and the bot server together (``bot run``, e2e tests).

All run as child processes of the current Python (``python -m bot.launcher run ...`` for
Rasa, ``python -m rasa run actions``, ``python -m bot serve``), so the same virtual environment is used. Ports are
checked first so a taken port gives a clear message instead of a stack trace from deep inside Sanic.

Rasa's HTTP API can replace the model and read or edit every conversation, so Rasa listens
on loopback only, without CORS, and requires a token (``--auth-token``). The token is kept
in an owner-only file (setting ``BOT_RASA_TOKEN_FILE``, created on first start) that every
child process is told about; the Rasa process reads it itself (:func:`run_rasa`), so the
token never appears on a command line (``/proc/PID/cmdline`` is readable by every local user).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Callable, Iterable, Sequence

from bot.server.rasa_client import create_rasa_token, read_rasa_token
from bot.store.rasa_endpoints import write_endpoints
from bot.settings import PROJECT_ROOT, get_settings


class StartupError(RuntimeError):
    """A server could not start; the message says why and what to do."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """An unused local port (for tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    shown = url.split("?", 1)[0]  # never print the query (Rasa's token)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise StartupError(f"{shown} のサーバーが起動直後に終了しました。ログ ({log}) の末尾:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise StartupError(f"{shown} が {timeout:.0f} 秒以内に応答しませんでした。ログ: {log}")


def stop_processes(procs: Sequence[subprocess.Popen], grace: float = 10.0) -> None:
    """Stop child processes started in their own session: SIGTERM, then SIGKILL after ``grace`` s."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class BotStack:
    """The Rasa server, the action server and (optionally) the bot server, as a context manager.

    Attributes:
        model: Trained model archive.
        rasa_port: Port of the Rasa server (REST: /webhooks/rest/webhook).
        action_port: Port of the action server.
        server_port: Port of the bot server (widget, console); ``None`` to not start it.
        log_dir: Where the servers' logs go.
        env: Extra environment for every server (e.g. ``DATABASE_URL``).
        rasa_token_file: Token file of Rasa's HTTP API; ``None``: ``BOT_RASA_TOKEN_FILE`` of
            ``env``, else the setting (default ``var/rasa.token``). Created on first start.
    """

    model: Path
    rasa_port: int = 5005
    action_port: int = 5055
    server_port: int | None = None
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bot-logs-")))
    env: dict[str, str] = field(default_factory=dict)
    rasa_token_file: Path | None = None
    _procs: list[subprocess.Popen] = field(default_factory=list, init=False)

    @property
    def rasa_url(self) -> str:
        """Base URL of the Rasa server."""
        return f"http://127.0.0.1:{self.rasa_port}"

    @property
    def server_url(self) -> str:
        """Base URL of the bot server."""
        return f"http://127.0.0.1:{self.server_port}"

    def token_file(self) -> Path:
        """The token file of Rasa's HTTP API (see ``rasa_token_file``)."""
        if self.rasa_token_file is None:
            configured = self.env.get("BOT_RASA_TOKEN_FILE")
            self.rasa_token_file = Path(configured) if configured else get_settings().rasa_token_file
        return self.rasa_token_file

    @property
    def rasa_token(self) -> str | None:
        """Token of Rasa's HTTP API (``?token=...``); ``None`` before the first start."""
        return read_rasa_token(self.token_file())

    def _spawn(self, args: list[str], name: str, module: str = "rasa") -> tuple[subprocess.Popen, Path]:
        log = self.log_dir / f"{name}.log"
        # SANIC_HOST: the action server (rasa_sdk) listens on 0.0.0.0 unless told otherwise.
        # BOT_RASA_TOKEN_FILE: Rasa requires the token in it, the bot server sends it.
        env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
               "SANIC_HOST": "127.0.0.1", "BOT_RASA_URL": self.rasa_url, **self.env,
               "BOT_RASA_TOKEN_FILE": str(self.token_file())}
        handle = log.open("w", encoding="utf-8")
        proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=env,
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append(proc)
        return proc, log

    def start(self, timeout: float = 180.0) -> "BotStack":
        """Start both servers and wait until they answer.

        Raises:
            StartupError: A port is taken, the model is missing or a server died.
        """
        if not self.model.exists():
            raise StartupError(f"モデル {self.model} がありません。`make train` を実行してください。")
        for port in (self.rasa_port, self.action_port, self.server_port):
            if port is not None and not port_is_free(port):
                raise StartupError(f"ポート {port} は使用中です。使っているプロセスを止めるか、"
                                   "BOT_RASA_PORT / BOT_ACTION_PORT / BOT_SERVER_PORT で別のポートを指定してください。")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            token = create_rasa_token(self.token_file())
        except (OSError, ValueError) as exc:
            raise StartupError(f"Rasa のトークンファイルを用意できませんでした: {exc}") from exc
        try:
            self._endpoints()
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        actions, actions_log = self._spawn(["run", "actions", "--actions", "actions",
                                            "--port", str(self.action_port)], "actions")
        rasa, rasa_log = self.start_rasa()
        waits = [(f"http://127.0.0.1:{self.action_port}/health", actions, actions_log),
                 (self._status_url(token), rasa, rasa_log)]
        if self.server_port is not None:
            server, server_log = self.start_server()
            waits.append((f"{self.server_url}/healthz", server, server_log))
        try:
            for url, proc, log in waits:
                _wait_http(url, proc, timeout, log)
        except StartupError:
            self.stop()
            raise
        return self

    def _endpoints(self) -> Path:
        """Rasa's endpoints for this run: action server, tracker store on the queue's database
        (conversations survive a Rasa restart), Redis lock store with several servers."""
        settings = get_settings()
        return write_endpoints(self.log_dir / "endpoints.yml", self.action_port,
                               self.env.get("DATABASE_URL", settings.database_url),
                               self.env.get("BOT_EVENTS_URL", settings.events_url))

    def _status_url(self, token: str) -> str:
        return f"{self.rasa_url}/status?{urllib.parse.urlencode({'token': token})}"

    def start_rasa(self) -> tuple[subprocess.Popen, Path]:
        """Start (or restart, e.g. in a fault test) only the Rasa server process."""
        # The HTTP API (--enable-api) can replace the model and edit conversations: loopback
        # only, no CORS (no web page may call it), and the token (added by run_rasa).
        return self._spawn(["run", "--model", str(self.model), "--enable-api", "--interface", "127.0.0.1",
                            "--port", str(self.rasa_port), "--endpoints", str(self.log_dir / "endpoints.yml"),
                            "--credentials", str(PROJECT_ROOT / "credentials.yml")], "rasa", module="bot.launcher")

    def restart_rasa(self, timeout: float = 180.0) -> None:
        """Kill the Rasa server hard (SIGKILL), as a crash would, start it again and wait for it."""
        for proc in self._procs:
            if proc.args[2:4] == ["bot.launcher", "run"] and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs[:] = [p for p in self._procs if p.poll() is None]
        rasa, log = self.start_rasa()
        _wait_http(self._status_url(create_rasa_token(self.token_file())), rasa, timeout, log)

    def start_server(self) -> tuple[subprocess.Popen, Path]:
        """Start (or restart, e.g. in a fault test) only the bot server process."""
        return self._spawn(["serve", "--port", str(self.server_port)], "server", module="bot")

    def stop_server(self) -> None:
        """Kill the bot server process hard (SIGKILL), as a crash would."""
        for proc in self._procs:
            if proc.args[2:4] == ["bot", "serve"] and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL after 10 s)."""
        stop_processes(self._procs)
        self._procs.clear()

    def __enter__(self) -> "BotStack":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_rasa(argv: Sequence[str]) -> None:
    """The Rasa server process: ``rasa ARGV --auth-token TOKEN``, the token read from its file.

    The file is ``BOT_RASA_TOKEN_FILE`` (set by :class:`BotStack`). Rasa only takes the token
    as an argument; adding it here, in the process, keeps it off the command line.

    Raises:
        StartupError: The token file is missing or unsafe.
    """
    path = get_settings().rasa_token_file
    try:
        token = read_rasa_token(path)
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    if token is None:
        raise StartupError(f"Rasa のトークンファイル {path} がありません。`bot run` で起動してください。")
    import rasa.__main__

    # One argument with "=": a URL-safe token may start with "-", which argparse would take
    # for an option ("--auth-token: expected one argument", 1 start in 64).
    sys.argv = ["rasa", *argv, f"--auth-token={token}"]
    rasa.__main__.main()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGTERM and SIGINT raise :class:`KeyboardInterrupt`, so both stop as cleanly as Ctrl-C."""
    # SIGTERM (e.g. from a process manager) stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    # Also SIGINT explicitly: a shell that starts us in the background ignores it, and
    # Python then keeps it ignored (Ctrl-C / kill -INT would do nothing).
    signal.signal(signal.SIGINT, _interrupt)


def run_until_stopped(start: Callable[[], Sequence[str]], processes: Callable[[], Iterable[subprocess.Popen]],
                      stop: Callable[[], None], starting: str, died: str,
                      start_errors: tuple[type[Exception], ...] = (StartupError,), poll_seconds: float = 1.0) -> int:
    """Start processes, print what ``start`` says, wait for Ctrl-C / SIGTERM or a process that ends, stop.

    The loop of ``bot run`` (:func:`run_forever`) and ``make run-scaled`` (deploy/run_scaled.py).

    Args:
        start: Starts everything; returns the lines to print (URLs, notes).
        processes: The processes started, asked again at each check.
        stop: Stops everything (always called, also after a failed start).
        starting: Printed first (Japanese: how long it takes).
        died: Printed (stderr) when a process ended by itself.
        start_errors: What ``start`` raises when it cannot start: one line on stderr, exit code 1.
        poll_seconds: Pause between checks of the processes.

    Returns:
        0 after Ctrl-C / SIGTERM, 1 when the start failed or a process ended.
    """
    print(starting, flush=True)
    stop_on_signals()
    try:
        try:
            lines = start()
        except start_errors as exc:
            print(f"起動できませんでした: {exc}", file=sys.stderr)
            return 1
        for line in lines:
            print(line)
        sys.stdout.flush()
        while all(p.poll() is None for p in processes()):
            time.sleep(poll_seconds)
        print(died, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n停止しています…")
        return 0
    finally:
        stop()


def run_forever(stack: BotStack, notes: Sequence[str] = ()) -> int:
    """``bot run``: start, print the URLs (and ``notes``), wait for Ctrl-C, stop cleanly."""

    def start() -> list[str]:
        stack.start()
        lines = []
        if stack.server_port is not None:
            lines += [f"デモページ（ウィジェット）: {stack.server_url}/",
                      f"担当者コンソール:           {stack.server_url}/console/"]
        return [*lines,
                f"Rasa サーバー:               {stack.rasa_url}  (REST: {stack.rasa_url}/webhooks/rest/webhook)",
                f"アクションサーバー:          http://127.0.0.1:{stack.action_port}",
                f"Rasa HTTP API のトークン:    {stack.token_file()}（?token=... で指定）",
                *notes,
                f"ログ: {stack.log_dir}   停止: Ctrl-C"]

    return run_until_stopped(start, lambda: stack._procs, stack.stop,  # noqa: SLF001
                             starting="起動しています（30 秒ほどかかります）…",
                             died="サーバーが停止しました。ログを確認してください。")


if __name__ == "__main__":
    try:
        run_rasa(sys.argv[1:])
    except StartupError as error:
        print(f"Rasa を起動できませんでした: {error}", file=sys.stderr)
        sys.exit(1)
