"""The webhooks file: which receivers get which ticket events, signed with which secret.

The file's path comes from ``BOT_WEBHOOKS_FILE`` (:class:`bot.settings.WebhookSettings`);
without it no event is queued. Every problem of the file is reported at once, each
naming the file, the entry and the fix (in Japanese: admins edit this file)::

    endpoints:
      - name: crm                       # letters, digits, - and _ (shown to admins)
        url: https://crm.example.jp/hooks/support
        events: [ticket.created, ticket.claimed, ticket.resolved, csat.received]
        secret_file: /etc/support-bot/crm-webhook.secret   # or: secret: "..."
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

# The events a receiver can subscribe to (transfers and escalations: bot/store/escalation.py;
# forwards to a department: bot/store/forwarding.py, also sent to the department's own receiver).
EVENTS = ("ticket.created", "ticket.claimed", "ticket.transferred", "ticket.escalated", "ticket.forwarded",
          "ticket.resolved", "csat.received")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
MIN_SECRET_CHARS = 16
KEYS = {"name", "url", "events", "secret", "secret_file"}


class WebhookConfigError(ValueError):
    """Problems of the webhooks file; ``problems`` holds one line each (file, entry, fix)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Endpoint:
    """One receiver.

    Attributes:
        name: Its name in the file (stored with each delivery, shown to admins).
        url: Where events are POSTed (http or https).
        events: The event types it receives.
        secret: The HMAC-SHA256 key of ``X-Signature``.
    """

    name: str
    url: str
    events: tuple[str, ...]
    secret: str

    def __repr__(self) -> str:  # never the secret in a log line
        return f"Endpoint(name={self.name!r}, url={self.url!r}, events={self.events!r})"


@dataclass(frozen=True)
class WebhookConfig:
    """The receivers of the webhooks file."""

    endpoints: tuple[Endpoint, ...]

    def routes(self) -> dict[str, tuple[str, ...]]:
        """Event type -> names of the receivers subscribed to it."""
        return {event: tuple(e.name for e in self.endpoints if event in e.events) for event in EVENTS}

    def endpoint(self, name: str) -> Endpoint | None:
        """The receiver named ``name`` (``None`` once it left the file)."""
        return next((e for e in self.endpoints if e.name == name), None)


def load_webhook_config(path: Path) -> WebhookConfig:
    """Read and check the webhooks file.

    Raises:
        WebhookConfigError: Every problem found, each naming the file, the entry and the fix.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WebhookConfigError([f"{path}: 読めません（{exc.strerror}）。対処: BOT_WEBHOOKS_FILE に読めるファイルの"
                                  "パスを指定するか、Webhook を使わないなら BOT_WEBHOOKS_FILE を空にしてください。"]) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WebhookConfigError([f"{path}: YAML として読めません（{exc}）。対処: インデントと「:」を確認してください。"]) \
            from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("endpoints"), list) or not raw["endpoints"]:
        raise WebhookConfigError([f"{path}: endpoints がありません。対処: 「endpoints:」の下に name / url / events / "
                                  "secret_file を持つ項目を一つ以上書いてください（docs/webhooks.md）。"])
    problems: list[str] = []
    endpoints: list[Endpoint] = []
    for index, entry in enumerate(raw["endpoints"]):
        endpoint = _endpoint(path, index, entry, problems)
        if endpoint is None:
            continue
        if any(e.name == endpoint.name for e in endpoints):
            problems.append(f"{path}（endpoints[{index}]: {endpoint.name}）: name が重複しています。"
                            "対処: 受信先ごとに別の name を付けてください。")
            continue
        endpoints.append(endpoint)
    if problems:
        raise WebhookConfigError(problems)
    return WebhookConfig(tuple(endpoints))


def _endpoint(path: Path, index: int, entry: Any, problems: list[str]) -> Endpoint | None:
    """One entry of ``endpoints``; its problems are appended to ``problems``."""
    if not isinstance(entry, dict):
        problems.append(f"{path}（endpoints[{index}]）: 項目が name / url / events / secret_file の組ではありません。"
                        "対処: 「- name: crm」のように書いてください。")
        return None
    name = entry.get("name")
    where = f"{path}（endpoints[{index}]" + (f": {name}）" if isinstance(name, str) and name else "）")
    found = len(problems)
    for key in sorted(set(entry) - KEYS):
        problems.append(f"{where}: {key!s} は使えないキーです。対処: name / url / events / secret / secret_file "
                        "のいずれかにしてください。")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(f"{where}: name がないか使えない文字を含みます。対処: 英数字・「-」・「_」で 50 文字以内の名前"
                        "（例: crm）を付けてください。")
    url = entry.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where}: url {url!r} は http(s) の URL ではありません。対処: "
                        "https://crm.example.jp/hooks/support のように http:// か https:// で始まる URL にしてください。")
    events = entry.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        problems.append(f"{where}: events がありません。対処: 送るイベントを [{', '.join(EVENTS)}] から選んで"
                        "リストで書いてください。")
        events = []
    for event in events:
        if event not in EVENTS:
            problems.append(f"{where}: events の {event!r} は知らないイベントです。対処: {', '.join(EVENTS)} の"
                            "いずれかにしてください。")
    secret = _secret(where, entry, problems)
    if len(problems) > found or secret is None:
        return None
    return Endpoint(name=str(name), url=str(url), events=tuple(dict.fromkeys(events)), secret=secret)


def _secret(where: str, entry: Mapping[str, Any], problems: list[str]) -> str | None:
    """The entry's secret, from ``secret`` or ``secret_file`` (exactly one of them)."""
    secret, secret_file = entry.get("secret"), entry.get("secret_file")
    if (secret is None) == (secret_file is None):
        problems.append(f"{where}: secret と secret_file のどちらか一つが必要です。対処: 署名の鍵をファイルに置き"
                        "（所有者だけ読めるように）、secret_file にそのパスを書いてください。")
        return None
    if secret_file is not None:
        try:
            secret = Path(str(secret_file)).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            problems.append(f"{where}: secret_file {secret_file!s} が読めません（{exc.strerror}）。"
                            "対処: 鍵を書いたファイルのパスにしてください。")
            return None
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
        problems.append(f"{where}: 署名の鍵が短すぎます（{MIN_SECRET_CHARS} 文字以上）。対処: "
                        "python3 -c 'import secrets; print(secrets.token_hex(32))' で作った鍵を使ってください。")
        return None
    return secret


@lru_cache(maxsize=8)
def _cached(path: Path, mtime: float) -> WebhookConfig:
    return load_webhook_config(path)


def configured_webhooks() -> WebhookConfig | None:
    """The webhooks of ``BOT_WEBHOOKS_FILE`` (``None`` when it is not set).

    Raises:
        WebhookConfigError: The file is missing or wrong.
    """
    from bot.settings import get_settings

    path = get_settings().webhooks.file
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        mtime = 0.0
    return _cached(path, mtime)
