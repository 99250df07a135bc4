"""Conversation tokens: only the browser that started a conversation can read it.

A token is the conversation id signed (itsdangerous) with the *conversation-token key*,
so the server needs no table of tokens and a guessed or edited id is refused.

The secret file holds one master secret; :func:`derive_key` turns it into one key per
purpose (HMAC-SHA256 with a label naming the purpose and a version). Agent session
cookies and conversation tokens never share a key, and each can be rotated on its own by
raising its version (``BOT_SESSION_KEY_VERSION`` / ``BOT_TOKEN_KEY_VERSION``).

A signature alone never expires; the conversation's row does (see
:meth:`bot.store.chat_log.ChatLog.use_conversation`): a token stops working after the idle
period or once the customer ends the conversation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from itsdangerous import BadSignature, Signer

SESSION_KEY_PURPOSE = "agent-session"
TOKEN_KEY_PURPOSE = "conversation-token"
ADDRESS_KEY_PURPOSE = "client-address"
_TOKEN_SALT = "conversation-token"


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


def derive_key(secret: str, purpose: str, version: int = 1) -> str:
    """A key for one purpose, derived from the master secret.

    Args:
        secret: The master secret (the secret key file's content).
        purpose: What the key signs, e.g. :data:`SESSION_KEY_PURPOSE`.
        version: Raise it to rotate this key alone.

    Returns:
        64 hex characters; keys of different purposes or versions are unrelated.
    """
    label = f"japanese-support-bot/{purpose}/v{version}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), label, hashlib.sha256).hexdigest()


class ConversationTokens:
    """Issue and check conversation tokens."""

    def __init__(self, secret_key: str, key_version: int | None = None) -> None:
        """Sign with the conversation-token key derived from ``secret_key``.

        Args:
            secret_key: The master secret.
            key_version: Version of the token key; ``None`` reads ``BOT_TOKEN_KEY_VERSION``.
                While it is 1, tokens issued before keys were split (signed with the
                master secret itself) are still accepted, so conversations open at the
                upgrade go on; a rotation ends them too.
        """
        if key_version is None:
            from bot.settings import get_settings

            key_version = get_settings().token_key_version
        self._signer = Signer(derive_key(secret_key, TOKEN_KEY_PURPOSE, key_version), salt=_TOKEN_SALT)
        self._accepted = [self._signer]
        if key_version == 1:
            self._accepted.append(Signer(secret_key, salt=_TOKEN_SALT))
        self._address_key = derive_key(secret_key, ADDRESS_KEY_PURPOSE).encode("ascii")

    def address_key(self, address: str) -> str:
        """A keyed hash of a client address: counts per address without storing the address.

        Every server of a deployment derives the same key from the shared secret.
        """
        return hmac.new(self._address_key, address.encode("utf-8"), hashlib.sha256).hexdigest()

    def new_conversation(self) -> tuple[str, str]:
        """A fresh conversation id and its token."""
        conversation_id = "c-" + secrets.token_urlsafe(12)
        return conversation_id, self._signer.sign(conversation_id).decode("ascii")

    def conversation_of(self, token: str | None) -> str | None:
        """The conversation id inside ``token``, or ``None`` when it is not ours."""
        if not token or len(token) > 200:
            return None
        for signer in self._accepted:
            try:
                return signer.unsign(token).decode("ascii")
            except (BadSignature, UnicodeDecodeError):
                continue
        return None
