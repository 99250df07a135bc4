"""Editors' masking options: the ``masking:`` section of ``knowledge/triage.yml``.

Card numbers and マイナンバー are always masked; these options add telephone numbers and
e-mail addresses in transcripts. Both are off by default: agents call or mail customers
back with them, and the transcript is only shown to signed-in agents (docs/masking.md).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.errors import KnowledgeError
from bot.text.masking import mask_sensitive
from bot.settings import Settings, get_settings

logger = logging.getLogger(__name__)
SECTION = "masking"
OPTIONS = ("phone", "email")


@dataclass(frozen=True)
class MaskingSettings:
    """What is masked besides card numbers and マイナンバー.

    Attributes:
        phone: Mask telephone numbers in transcripts (all digits but the last four).
        email: Mask the local part of e-mail addresses in transcripts.
    """

    phone: bool = False
    email: bool = False

    def mask(self, text: str) -> str:
        """``text`` with card numbers, マイナンバー and the chosen extras masked."""
        return mask_sensitive(text, phone=self.phone, email=self.email)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise KnowledgeError(path, None, f"YAML として読めません: {exc}",
                             "インデントと記号（: や -）を確認してください。") from exc


def load_masking_settings(path: Path) -> MaskingSettings:
    """Read the ``masking:`` section of a triage file (missing file or section: defaults).

    Raises:
        KnowledgeError: The section is not a mapping, names an unknown option, or a value
            is not ``true`` / ``false``.
    """
    if not path.exists():
        return MaskingSettings()
    doc = _read(path)
    section = doc.get(SECTION) if isinstance(doc, dict) else None
    if section is None:
        return MaskingSettings()
    if not isinstance(section, dict):
        raise KnowledgeError(path, SECTION, "`masking:` の下に項目が並んでいません。",
                             "`masking:` の次の行から、字下げして `phone: true` / `email: false` のように書いてください。")
    values: dict[str, bool] = {}
    for key, value in section.items():
        if key not in OPTIONS:
            raise KnowledgeError(path, f"{SECTION}.{key}", f"`{key}` という項目はありません。",
                                 "使える項目は phone（電話番号）と email（メールアドレス）で、値は true か false です。")
        if not isinstance(value, bool):
            raise KnowledgeError(path, f"{SECTION}.{key}", f"値 {value!r} は true / false ではありません。",
                                 "true（隠す）か false（隠さない）を書いてください。")
        values[key] = value
    return MaskingSettings(**values)


def _lenient(path: Path) -> MaskingSettings:
    """Best reading of a file :func:`load_masking_settings` refused: unreadable means masked."""
    try:
        doc = _read(path)
    except KnowledgeError:
        return MaskingSettings(phone=True, email=True)
    section = doc.get(SECTION) if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        return MaskingSettings(phone=True, email=True)
    return MaskingSettings(**{key: section[key] if isinstance(section.get(key, False), bool) else True
                              for key in OPTIONS if key in section})


_cache: dict[Path, tuple[tuple[int, int], MaskingSettings]] = {}
_cache_lock = threading.Lock()


def current_masking_settings(settings: Settings | None = None) -> MaskingSettings:
    """The options in effect: the knowledge folder's triage.yml, else the project's.

    The file is read again when editors save it. A section the loader refuses never
    stops a handoff: the error is logged and each unreadable option is treated as on
    (masked), the private side.

    Args:
        settings: Where the knowledge folder is (default: the process settings).
    """
    path = (settings or get_settings()).triage_file
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        return MaskingSettings()
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
    try:
        loaded = load_masking_settings(path)
    except KnowledgeError as exc:
        logger.error("%s（読めない項目は「隠す」として扱います）", exc)
        loaded = _lenient(path)
    with _cache_lock:
        _cache[path] = (stamp, loaded)
    return loaded
