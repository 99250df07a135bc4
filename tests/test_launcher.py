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
