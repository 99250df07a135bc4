"""Startup failures of `bot run` give a clear message instead of a stack trace."""

import socket
from pathlib import Path

import pytest

from bot.launcher import BotStack, StartupError, free_port


def test_missing_model_is_explained(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="make train"):
        BotStack(model=tmp_path / "none.tar.gz").start()


def test_taken_port_is_explained(tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartupError, match=f"ポート {port} は使用中"):
            BotStack(model=model, rasa_port=port, action_port=free_port()).start()


def test_taken_bot_server_port_is_explained(tmp_path: Path) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartupError, match="BOT_SERVER_PORT"):
            BotStack(model=model, rasa_port=free_port(), action_port=free_port(), server_port=port).start()


def test_bot_run_creates_a_first_agent_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.server.app import stores_for
    from bot.server.first_agent import ensure_first_agent
    from bot.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    monkeypatch.setenv("BOT_SECRET_KEY_FILE", str(tmp_path / "var" / "secret.key"))
    get_settings.cache_clear()
    try:
        first = ensure_first_agent(get_settings())
        password = first[0].split("パスワード: ")[1]
        assert stores_for(get_settings().database_url).agents.authenticate("agent", password) is not None
        assert (tmp_path / "var" / "first-agent.txt").stat().st_mode & 0o077 == 0  # owner-only
        assert ensure_first_agent(get_settings()) == [f"担当者のログイン情報: {tmp_path / 'var' / 'first-agent.txt'}"]
    finally:
        get_settings.cache_clear()


# ---- Rasa's HTTP API token (security review #11) -------------------------------------------


def test_rasa_token_file_is_created_owner_only_once(tmp_path: Path) -> None:
    from bot.server.rasa_client import create_rasa_token, read_rasa_token

    path = tmp_path / "var" / "rasa.token"
    assert read_rasa_token(path) is None
    token = create_rasa_token(path)
    assert len(token) >= 32 and token.replace("-", "").replace("_", "").isalnum()  # URL-safe
    assert path.stat().st_mode & 0o777 == 0o600
    assert create_rasa_token(path) == token == read_rasa_token(path)  # kept, not replaced


def test_unsafe_rasa_token_file_is_refused(tmp_path: Path) -> None:
    from bot.server.rasa_client import create_rasa_token, read_rasa_token

    short = tmp_path / "short.token"
    short.write_text("abc", encoding="ascii")
    short.chmod(0o600)
    with pytest.raises(ValueError, match="短すぎます"):
        create_rasa_token(short)
    shared = tmp_path / "shared.token"
    shared.write_text("x" * 40, encoding="ascii")
    shared.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        read_rasa_token(shared)


class _FakeProcess:
    """Stands in for a server process that is running (nothing is started)."""

    pid = -1
    args: list[str] = []

    def poll(self) -> None:
        return None


def test_rasa_api_gets_a_token_and_no_cors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.launcher as launcher

    spawned: list[tuple[list[str], dict[str, str]]] = []
    waited: list[str] = []

    def fake_popen(args: list[str], **kwargs: object) -> _FakeProcess:
        spawned.append((list(args), dict(kwargs["env"])))  # type: ignore[call-overload]
        return _FakeProcess()

    monkeypatch.setattr(launcher.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(launcher, "_wait_http", lambda url, *rest: waited.append(url))
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    token_file = tmp_path / "rasa.token"
    stack = BotStack(model=model, rasa_port=free_port(), action_port=free_port(), server_port=free_port(),
                     log_dir=tmp_path / "logs", env={"BOT_RASA_TOKEN_FILE": str(token_file)})
    stack.start()
    token = token_file.read_text(encoding="ascii")
    assert stack.rasa_token == token and token_file.stat().st_mode & 0o077 == 0
    (rasa_args, rasa_env), = [(a, e) for a, e in spawned if "--enable-api" in a]
    assert "--cors" not in rasa_args and "--auth-token" not in rasa_args
    assert all(token not in arg for args, _ in spawned for arg in args)  # not on any command line
    # Every server reads the same token file: Rasa to require it, the bot server to send it.
    assert {env["BOT_RASA_TOKEN_FILE"] for _, env in spawned} == {str(token_file)}
    assert f"{stack.rasa_url}/status?token={token}" in waited


def test_rasa_process_adds_the_token_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import rasa.__main__

    import bot.launcher as launcher
    from bot.server.rasa_client import create_rasa_token
    from bot.settings import get_settings

    token = create_rasa_token(tmp_path / "rasa.token")
    monkeypatch.setenv("BOT_RASA_TOKEN_FILE", str(tmp_path / "rasa.token"))
    seen: list[list[str]] = []
    monkeypatch.setattr(rasa.__main__, "main", lambda: seen.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    get_settings.cache_clear()
    try:
        launcher.run_rasa(["run", "--enable-api"])
    finally:
        get_settings.cache_clear()
    assert seen == [["rasa", "run", "--enable-api", f"--auth-token={token}"]]


def test_a_token_starting_with_a_dash_reaches_rasa() -> None:
    """URL-safe tokens start with "-" one time in 64: Rasa's argparse must still read it as the value."""
    from rasa.__main__ import create_argument_parser

    token = "-" + "x" * 63
    args = create_argument_parser().parse_args(["run", "--enable-api", f"--auth-token={token}"])
    assert args.auth_token == token


# --- the loop `bot run` and `make run-scaled` share (bot.launcher.run_until_stopped) ----------


class FakeProcess:
    """A child process that ends (``poll`` returns 0) after ``polls`` checks, or raises ``on_poll`` then."""

    def __init__(self, polls: int, on_poll: BaseException | None = None) -> None:
        self.polls = polls
        self.on_poll = on_poll

    def poll(self) -> int | None:
        self.polls -= 1
        if self.polls > 0:
            return None
        if self.on_poll is not None:
            raise self.on_poll
        return 0


@pytest.fixture()
def signals_restored() -> object:
    import signal

    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield saved
    for number, handler in saved.items():
        signal.signal(number, handler)


def _run(start, processes, capsys, **options):  # type: ignore[no-untyped-def]
    from bot.launcher import run_until_stopped

    stopped = []
    code = run_until_stopped(start, processes, lambda: stopped.append(True), starting="起動中", died="止まった",
                             poll_seconds=0.001, **options)
    out, err = capsys.readouterr()
    return code, stopped, out, err


def test_a_process_that_ends_stops_the_rest(capsys, signals_restored) -> None:  # type: ignore[no-untyped-def]
    import signal

    from bot.launcher import _interrupt

    proc = FakeProcess(polls=3)
    code, stopped, out, err = _run(lambda: ["URL 1", "URL 2"], lambda: [proc], capsys)
    assert (code, stopped) == (1, [True])
    assert out.splitlines() == ["起動中", "URL 1", "URL 2"] and "止まった" in err
    # SIGTERM and SIGINT stop like Ctrl-C, also for a shell that started us in the background.
    assert signal.getsignal(signal.SIGTERM) is _interrupt and signal.getsignal(signal.SIGINT) is _interrupt


def test_ctrl_c_stops_cleanly_with_code_0(capsys, signals_restored) -> None:  # type: ignore[no-untyped-def]
    proc = FakeProcess(polls=2, on_poll=KeyboardInterrupt())
    code, stopped, out, _ = _run(lambda: [], lambda: [proc], capsys)
    assert (code, stopped) == (0, [True]) and "停止しています" in out


def test_a_failed_start_is_one_line_and_still_stops(capsys, signals_restored) -> None:  # type: ignore[no-untyped-def]
    def start() -> list[str]:
        raise StartupError("ポート 5005 は使用中です。")

    code, stopped, _, err = _run(start, lambda: [], capsys)
    assert (code, stopped) == (1, [True]) and err.strip() == "起動できませんでした: ポート 5005 は使用中です。"

    def broken() -> list[str]:
        raise OSError("redis down")

    with pytest.raises(OSError):  # not a start error of `bot run`: a bug, with its traceback
        _run(broken, lambda: [], capsys)
    code, stopped, _, err = _run(broken, lambda: [], capsys, start_errors=(Exception,))  # run-scaled: any failure
    assert (code, stopped) == (1, [True]) and "redis down" in err


def test_run_scaled_uses_the_launchers_loop_and_no_private_name() -> None:
    from bot.settings import PROJECT_ROOT

    source = (PROJECT_ROOT / "deploy" / "run_scaled.py").read_text(encoding="utf-8")
    assert "run_until_stopped" in source and "_interrupt" not in source and "time.sleep" not in source
