"""A first agent login for `make run`, so a newcomer can open the console at once.

Its password is random, printed once and kept in ``var/first-agent.txt`` (owner-only)
until it is no longer needed: the file is deleted after the first agent's first
successful login or password change (``bot agent passwd agent``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bot.settings import Settings, get_settings

FIRST_AGENT = "agent"
FIRST_AGENT_NAME = "サポート担当"


def first_agent_file(settings: Settings) -> Path:
    """Where the first agent's password is kept until first used."""
    return settings.secret_key_file.parent / "first-agent.txt"


def ensure_first_agent(settings: Settings) -> list[str]:
    """Create the agent ``agent`` with a random password when there is no agent yet.

    The password is written to ``var/first-agent.txt`` (owner-only) and printed once by
    ``bot run``, with a reminder to change it; later runs print where the file is, until
    the first login or password change deletes it. Add real agents with ``bot agent add``.

    Returns:
        Lines for ``bot run`` to print.
    """
    from bot.server.app import stores_for

    agents = stores_for(settings.database_url).agents
    note_file = first_agent_file(settings)
    if agents.count() == 0:
        password = secrets.token_urlsafe(12)
        agents.add(FIRST_AGENT, FIRST_AGENT_NAME, password)
        note_file.parent.mkdir(parents=True, exist_ok=True)
        note_file.touch(mode=0o600)
        os.chmod(note_file, 0o600)
        note_file.write_text(f"ユーザー名: {FIRST_AGENT}\nパスワード: {password}\n"
                             f"ログインしたら `bot agent passwd {FIRST_AGENT}` でパスワードを変更してください。\n"
                             "このファイルは最初のログインまたはパスワード変更のあとに削除されます。\n",
                             encoding="utf-8")
        return [f"最初の担当者を作成しました — ユーザー名: {FIRST_AGENT}  パスワード: {password}",
                f"このパスワードは一度だけ表示します。ログインしたら `bot agent passwd {FIRST_AGENT}` で変更してください。",
                f"（{note_file} にも保存しました。最初のログインまたはパスワード変更のあとに削除されます。"
                "担当者の追加: bot agent add USER --name 表示名）"]
    if note_file.exists():
        return [f"担当者のログイン情報: {note_file}"]
    return []


def forget_first_password(username: str, settings: Settings | None = None) -> bool:
    """Delete ``var/first-agent.txt`` once the first agent has logged in or changed the password.

    Args:
        username: The agent who just logged in or got a new password.
        settings: Where the file is (default: the process's settings).

    Returns:
        Whether a file was deleted.
    """
    if username != FIRST_AGENT:
        return False
    try:
        first_agent_file(settings or get_settings()).unlink()
    except OSError:  # already gone (another server), or not ours to delete: never fail a login for it
        return False
    return True
