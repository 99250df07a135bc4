"""The desk's timings as admins set them in the console (#14: admins manage settings).

Three timings decide how the desk treats waiting customers: how long an offer waits for the
agent (``offer_seconds``), when a claimed chat without the agent's reply is flagged
(``reply_overdue_minutes``), and when a complaint or anger ticket is escalated on its own
(``escalate_after_seconds``). Each server starts with the environment's values
(:class:`bot.settings.Settings`); an admin's change is a row of ``desk_settings`` that every
bot server reads (cached for :data:`CACHE_SECONDS`, so a change reaches all servers within
that time, with no restart), and 「初期値に戻す」 deletes the row. Every change and reset is
one transaction with its audit line ``desk.settings_changed`` (who, the old and new value).

Retention is deliberately not here: shortening it deletes conversations, so it stays an
environment setting the operator changes on purpose (``BOT_RETENTION_DAYS``).
"""

from __future__ import annotations

import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from bot.store.audit import record_audit
from bot.store.models import DeskSetting, as_utc, utcnow
from bot.store.queue import QueueError

CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class SettingSpec:
    """One timing an admin may set.

    Attributes:
        label: Its name in the console.
        help: What it does, for the admin (Japanese).
        unit: The unit shown next to the number.
        maximum: The largest value accepted (0 is always accepted: off).
        env: The environment variable the servers start with.
    """

    label: str
    help: str
    unit: str
    maximum: int
    env: str


SETTINGS: dict[str, SettingSpec] = {
    "offer_seconds": SettingSpec(
        "割り当ての応答待ち", "担当者に割り当てたお問い合わせを、この時間内に「対応する」が押されなければ次の担当者に回します。"
        "0 にすると自動の割り当てをやめます（担当者が一覧から選びます）。", "秒", 3600, "BOT_DESK_OFFER_SECONDS"),
    "reply_overdue_minutes": SettingSpec(
        "返信遅れの目安", "対応中のお問い合わせで、お客さまがこの時間以上担当者の返信を待っていると、一覧に印を付け、"
        "ほかの担当者が引き継げるようにします。0 にすると印を付けません。", "分", 1440, "BOT_DESK_REPLY_MINUTES"),
    "escalate_after_seconds": SettingSpec(
        "自動エスカレーションまでの時間", "苦情・怒りのお問い合わせが、この時間以上対応されない（または返信がない）と、"
        "責任者に自動でエスカレーションします。0 にすると自動では行いません。", "秒", 3600, "BOT_ESCALATE_AFTER_SECONDS"),
}
TEXT = {
    "unknown": "「{name}」という設定はありません。設定できるのは {names} です。",
    "not_number": "「{label}」には 0 から {maximum} までの整数を{unit}で入力してください（入力: {value}）。",
}


@dataclass(frozen=True)
class SettingValue:
    """A timing as the console shows it.

    Attributes:
        name: Its key (:data:`SETTINGS`).
        value: The value in force.
        default: The value the servers started with (environment; a fraction only in tests).
        changed_by: The admin who set it, or ``None`` when the default is in force.
        changed_at: When (ISO 8601), or ``None``.
    """

    name: str
    value: float
    default: float
    changed_by: str | None = None
    changed_at: str | None = None


def setting_spec(name: str) -> SettingSpec:
    """The spec of setting ``name``.

    Raises:
        QueueError: 404 an unknown setting (the message lists the known ones).
    """
    spec = SETTINGS.get(name)
    if spec is None:
        raise QueueError(TEXT["unknown"].format(name=name, names="、".join(SETTINGS)), status=404)
    return spec


def parse_value(name: str, raw: Any) -> int:
    """An admin's input for ``name`` as a whole number in range.

    Raises:
        QueueError: 404 an unknown setting; 422 not a whole number from 0 to its maximum.
    """
    spec = setting_spec(name)
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str):
        typed = unicodedata.normalize("NFKC", raw).strip()  # 「３０」 typed with the IME on is 30
        value = int(typed) if typed.isascii() and typed.isdigit() else None
    if value is None or not 0 <= value <= spec.maximum:
        shown = str(raw)[:20] if raw is not None else "なし"
        raise QueueError(TEXT["not_number"].format(label=spec.label, maximum=spec.maximum, unit=spec.unit,
                                                   value=shown), status=422)
    return value


class DeskSettings:
    """The admins' values of the desk's timings on one database, over the start values."""

    def __init__(self, engine: Engine, defaults: Mapping[str, float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Use ``engine``; ``defaults``: every timing's start value (environment)."""
        self._sessions = sessionmaker(engine, expire_on_commit=False, future=True)
        # Tests start servers with fractions of a second; admins set whole numbers.
        self.defaults: dict[str, float] = {name: defaults[name] for name in SETTINGS}
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, int]] | None = None

    def value(self, name: str) -> float:
        """The value in force (an admin's, else the start value), read at most every :data:`CACHE_SECONDS`."""
        with self._lock:
            if self._cache is None or self._clock() - self._cache[0] >= CACHE_SECONDS:
                with self._sessions() as session:
                    rows: dict[str, float] = {r.name: int(r.value) for r in session.execute(select(DeskSetting)).scalars()}
                self._cache = (self._clock(), rows)
            return self._cache[1].get(name, self.defaults[name])

    def all(self) -> list[SettingValue]:
        """Every timing with its value in force, start value and who changed it (read now)."""
        with self._sessions() as session:
            rows = {r.name: r for r in session.execute(select(DeskSetting)).scalars()}
        found = []
        for name in SETTINGS:
            row = rows.get(name)
            found.append(SettingValue(name, int(row.value) if row else self.defaults[name], self.defaults[name],
                                      row.changed_by if row else None,
                                      as_utc(row.changed_at).isoformat() if row else None))
        return found

    def change(self, name: str, raw: Any, admin: str, address: str | None = None) -> SettingValue:
        """Set ``name`` to ``raw`` (or back to its start value when ``raw`` is ``None``), audited.

        Raises:
            QueueError: 404 unknown setting; 422 a value out of range (nothing changed).
        """
        setting_spec(name)
        value = None if raw is None else parse_value(name, raw)
        with self._sessions() as session, session.begin():
            row = session.get(DeskSetting, name, with_for_update=True)
            old = int(row.value) if row else self.defaults[name]
            if value is None:
                session.execute(delete(DeskSetting).where(DeskSetting.name == name))
            elif row is None:
                session.add(DeskSetting(name=name, value=value, changed_by=admin, changed_at=utcnow()))
            else:
                row.value, row.changed_by, row.changed_at = value, admin, utcnow()
            new = self.defaults[name] if value is None else value
            record_audit(session, "desk.settings_changed", admin, f"setting:{name}",
                         {"name": name, "old": old, "new": new, **({"reset": True} if value is None else {})},
                         address=address)
        with self._lock:
            self._cache = None  # this server sees its own change at once
        return next(s for s in self.all() if s.name == name)
