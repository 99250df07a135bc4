"""`bot run` (what `make run` starts): URLs and first agent printed, Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.launcher import free_port
from bot.settings import PROJECT_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_bot_run_prints_the_urls_and_ctrl_c_stops_everything(trained_model: Path, tmp_path: Path) -> None:
    ports = {"BOT_RASA_PORT": free_port(), "BOT_ACTION_PORT": free_port(), "BOT_SERVER_PORT": free_port()}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()},
           "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", "BOT_SECRET_KEY_FILE": str(tmp_path / "secret.key"),
           "BOT_OUTBOX": str(tmp_path / "outbox.jsonl")}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--model", str(trained_model)], cwd=PROJECT_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any(line.startswith("ログ:") for line in lines):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line)
        output = "".join(lines)
        assert f"http://127.0.0.1:{ports['BOT_SERVER_PORT']}/console/" in output, output
        assert "ユーザー名: agent" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['BOT_SERVER_PORT']}/", timeout=10) as page:
            assert "みらいメンバーズ" in page.read().decode("utf-8")
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 3
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=60) == 0

        def alive() -> list[str]:
            running = []
            for pid in children:
                try:
                    if "zombie" not in Path(f"/proc/{pid}/status").read_text():
                        running.append(pid)
                except FileNotFoundError:  # gone
                    pass
            return running

        deadline = time.monotonic() + 10  # the children exit on their own: wait for it, not a fixed time
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive() == []
    finally:
        if proc.poll() is None:
            proc.kill()
