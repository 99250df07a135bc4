"""Departments a ticket can be handed to without chat: ``knowledge/departments.yml`` (#15 item 4).

Editors and admins list each department: its id, its name (経理部, 配送センター), where a
forwarded ticket goes — an e-mail address (sent through the transcript mailer,
``BOT_SMTP_*``) and/or a webhook receiver (a ``name`` of ``BOT_WEBHOOKS_FILE``, which
holds the URL and the signing secret: secrets never go into ``knowledge/``) — and the
promise the customer reads (「経理部の担当者から2営業日以内にメールでご連絡します。」).

:func:`read_departments` reports every problem for `bot kb validate` with the line, the
entry and the fix, in Japanese. At run time :func:`departments` reads the file again when
it changes and keeps the entries that are well-formed; an entry without any delivery is
kept so that an agent who picks it is told exactly that (409), never left guessing.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.knowledge.editor_files import Finding, read_editor_yaml
from bot.knowledge.style import Term, style_problems
from bot.knowledge.yaml_io import entry_lines

logger = logging.getLogger(__name__)

DEPARTMENTS_FILE = "departments.yml"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
RECEIVER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,50}$")  # a receiver's name in the webhooks file
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_NAME_CHARS = 30
MAX_PROMISE_CHARS = 150
KEYS = ("id", "name", "email", "webhook", "promise")


@dataclass(frozen=True)
class Department:
    """One department of ``departments.yml``.

    Attributes:
        id: Stable key (stored in the ticket's history and sent to receivers).
        name: Shown to agents and the customer (経理部).
        promise: What the customer reads: who contacts them and when.
        email: Where the forward is mailed (``None``: not by mail).
        webhook: The webhooks file's receiver that gets ``ticket.forwarded`` (``None``: none).
        line: Line of the entry in the file (for messages).
    """

    id: str
    name: str
    promise: str
    email: str | None = None
    webhook: str | None = None
    line: int | None = None

    def json(self) -> dict[str, Any]:
        """What the console reads (``GET /api/departments``); addresses are for agents only."""
        return {"id": self.id, "name": self.name, "promise": self.promise, "email": self.email,
                "webhook": self.webhook}


def departments_path(directory: Path) -> Path:
    """``directory/departments.yml`` (it may not exist)."""
    return directory / DEPARTMENTS_FILE


def read_departments(path: Path, terms: tuple[Term, ...] = ()) -> tuple[list[Department], list[Finding]]:
    """The well-formed departments of ``path`` and every problem found.

    Args:
        path: The departments file (a missing file: no departments, no finding).
        terms: The style list (empty: not checked).

    Returns:
        ``(departments, findings)``. An entry with a problem other than "no delivery"
        is left out; the first of two entries with the same id or name is kept.
    """
    if not path.exists():
        return [], []
    text, doc, unreadable = read_editor_yaml(path, "ほかの部署", "全体を \"...\" で囲んでください。")
    if unreadable is not None:
        return [], [unreadable]
    raw = doc.get("departments") if isinstance(doc, dict) else None
    if doc is None or (isinstance(doc, dict) and raw is None and "departments" in doc):
        return [], []  # an empty file or an empty list: no department yet
    if not isinstance(raw, list):
        return [], [Finding(path, None, None, "ファイルに「departments:」の行がありません。",
                            "説明のコメントのあとに「departments:」の行を書き、その下に「  - id: ...」で部署を並べてください。")]
    lines = entry_lines(text, "departments")
    found: list[Department] = []
    findings: list[Finding] = []
    for index, entry in enumerate(raw, start=1):
        line = lines[index - 1] if index <= len(lines) else None
        department = _department(path, index, line, entry, terms, findings)
        if department is None:
            continue
        twin = next((d for d in found if d.id == department.id or d.name == department.name), None)
        if twin is not None:
            what = f"id「{department.id}」" if twin.id == department.id else f"name「{department.name}」"
            findings.append(Finding(path, line, department.id,
                                    f"{what}は {path.name}:{twin.line} の部署でも使われています。",
                                    "部署ごとに別の id と name を付けてください。"))
            continue
        found.append(department)
    return found, findings


def _department(path: Path, index: int, line: int | None, entry: Any, terms: tuple[Term, ...],
                findings: list[Finding]) -> Department | None:
    """One entry; its problems are appended to ``findings`` (``None``: not usable)."""
    if not isinstance(entry, dict):
        findings.append(Finding(path, line, f"{index}番目", "部署が「id:」などの項目を持つ形になっていません。",
                                "「- id: accounting」で始まり、name: / promise: / email: か webhook: を持つブロックとして書いてください。"))
        return None
    raw_id = entry.get("id")
    label = raw_id if isinstance(raw_id, str) and raw_id.strip() else f"{index}番目"
    before = len(findings)

    def problem(text: str, fix: str) -> None:
        findings.append(Finding(path, line, label, text, fix))

    for key in sorted(str(k) for k in entry if k not in KEYS):
        problem(f"「{key}」という項目はありません。",
                f"使える項目は {' / '.join(KEYS)} です。つづりを確かめてください。")
    if not isinstance(raw_id, str) or not ID_PATTERN.match(raw_id.strip()):
        problem("「id」は半角英小文字・数字・「-」・「_」で 40 文字以内で書いてください（対応の記録と連携先に残る名前です）。",
                "例: 「id: accounting」。一度使った id は変えないでください。")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problem("「name」（担当者とお客さまに表示する部署名）がありません。", "「name: 経理部」のように書いてください。")
        name = None
    else:
        name = " ".join(name.split())
        if len(name) > MAX_NAME_CHARS:
            problem(f"部署名が {len(name)} 文字あります。", f"{MAX_NAME_CHARS} 文字以内に短くしてください。")
        for text, fix in style_problems(name, terms):
            problem(f"部署名の{text}", fix)
    promise = entry.get("promise")
    if not isinstance(promise, str) or not promise.strip():
        problem("「promise」（お客さまへの約束: だれが、いつまでに、どうやって連絡するか）がありません。",
                "「promise: 経理部の担当者から2営業日以内にメールでご連絡します。」のように書いてください。")
        promise = None
    else:
        promise = " ".join(promise.split())
        if len(promise) > MAX_PROMISE_CHARS:
            problem(f"promise が {len(promise)} 文字あります（チャットの 1 行で表示します）。",
                    f"{MAX_PROMISE_CHARS} 文字以内に短くしてください。")
        for text, fix in style_problems(promise, terms):
            problem(f"promise の{text}", fix)
    email = entry.get("email")
    if email is not None and (not isinstance(email, str) or not EMAIL_PATTERN.match(email.strip())):
        problem(f"email {email!r} はメールアドレスの形ではありません。",
                "「email: keiri@example.jp」のように半角で、1 つだけ書いてください。")
        email = None
    webhook = entry.get("webhook")
    if webhook is not None and (not isinstance(webhook, str) or not RECEIVER_PATTERN.match(webhook.strip())):
        problem(f"webhook {webhook!r} は Webhook の受信先の名前ではありません。",
                "URL ではなく、管理者が BOT_WEBHOOKS_FILE に書いた受信先の name（例: keiri-system）を書いてください"
                "（URL と署名の鍵はそのファイルにあります。docs/webhooks.md）。")
        webhook = None
    if len(findings) > before or name is None or promise is None or not isinstance(raw_id, str):
        return None
    if email is None and webhook is None:  # kept: the console names it and the forward is refused clearly
        problem("送り先がありません（email も webhook もありません）。この部署には引き継げません。",
                "「email: keiri@example.jp」（メール）か「webhook: keiri-system」（Webhook の受信先の name）の"
                "どちらか、または両方を書いてください。")
    return Department(id=raw_id.strip(), name=name, promise=promise,
                      email=email.strip() if isinstance(email, str) else None,
                      webhook=webhook.strip() if isinstance(webhook, str) else None, line=line)


@functools.lru_cache(maxsize=4)
def _cached(path: str, stamp: int) -> tuple[Department, ...]:
    found, findings = read_departments(Path(path))
    if findings:
        logger.warning("%s has %d problem(s); agents see its well-formed departments (bot kb validate lists them)",
                       path, len(findings))
    return tuple(found)


def departments(path: Path | None = None) -> tuple[Department, ...]:
    """The departments of ``path`` (default: the knowledge folder's ``departments.yml``), read again when it changes."""
    if path is None:
        from bot.settings import get_settings

        path = get_settings().knowledge_file(DEPARTMENTS_FILE)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return ()
    return _cached(str(path), stamp)
