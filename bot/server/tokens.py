"""Conversation tokens: only the browser that started a conversation can read it.

A token is the conversation id signed with the server's secret key (itsdangerous), so
the server needs no table of tokens and a guessed or edited id is refused.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from itsdangerous import BadSignature, Signer


def load_secret_key(path: Path) -> str:
    """The signing key in ``path``, created (random, owner-only) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48), encoding="ascii")
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise ValueError(f"{path}: 署名鍵が短すぎます（32 文字以上）。ファイルを削除すると新しい鍵が作られます。")
    return key


class ConversationTokens:
    """Issue and check conversation tokens."""

    def __init__(self, secret_key: str) -> None:
        """Sign with ``secret_key``."""
        self._signer = Signer(secret_key, salt="conversation-token")

    def new_conversation(self) -> tuple[str, str]:
        """A fresh conversation id and its token."""
        conversation_id = "c-" + secrets.token_urlsafe(12)
        return conversation_id, self._signer.sign(conversation_id).decode("ascii")

    def conversation_of(self, token: str | None) -> str | None:
        """The conversation id inside ``token``, or ``None`` when it is not ours."""
        if not token or len(token) > 200:
            return None
        try:
            return self._signer.unsign(token).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
