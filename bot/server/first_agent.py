"""A first agent login for `make run`, so a newcomer can open the console at once."""

from __future__ import annotations

import os
import secrets

from bot.server.app import stores_for
from bot.settings import Settings

FIRST_AGENT = "agent"
FIRST_AGENT_NAME = "サポート担当"


def ensure_first_agent(settings: Settings) -> list[str]:
    """Create the agent ``agent`` with a random password when there is no agent yet.

    The password is written to ``var/first-agent.txt`` (owner-only) and printed once by
    ``bot run``; later runs print where it is. Add real agents with ``bot agent add``.

    Returns:
        Lines for ``bot run`` to print.
    """
    agents = stores_for(settings.database_url).agents
    note_file = settings.secret_key_file.parent / "first-agent.txt"
    if agents.count() == 0:
        password = secrets.token_urlsafe(12)
        agents.add(FIRST_AGENT, FIRST_AGENT_NAME, password)
        note_file.parent.mkdir(parents=True, exist_ok=True)
        note_file.touch(mode=0o600)
        os.chmod(note_file, 0o600)
        note_file.write_text(f"ユーザー名: {FIRST_AGENT}\nパスワード: {password}\n", encoding="utf-8")
        return [f"最初のエージェントを作成しました — ユーザー名: {FIRST_AGENT}  パスワード: {password}",
                f"（{note_file} にも保存しました。担当者の追加: bot agent add USER --name 表示名）"]
    if note_file.exists():
        return [f"エージェントのログイン情報: {note_file}"]
    return []
