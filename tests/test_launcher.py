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
        assert ensure_first_agent(get_settings()) == [f"エージェントのログイン情報: {tmp_path / 'var' / 'first-agent.txt'}"]
    finally:
        get_settings.cache_clear()
