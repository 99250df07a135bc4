"""Back up and restore the bot's database: SQLite or PostgreSQL, chosen by ``DATABASE_URL``.

::

    python deploy/backup.py backup  /var/backups/mirai-support      # a new folder per run
    python deploy/backup.py restore /var/backups/mirai-support/20261124T030000Z --yes

What is saved is everything the database holds: tickets, chat log, agents and their sessions,
the audit log and Rasa's trackers (the conversations' context).

* PostgreSQL: ``pg_dump --format=custom`` of the database (Rasa's ``events`` table included),
  taken while the bot runs (a consistent snapshot); restored with ``pg_restore --clean``.
* SQLite: the queue's file and Rasa's ``trackers.db`` next to it, each copied with SQLite's
  online backup (consistent while the bot writes); restored by copying them back.

Restore with every bot process stopped (``systemctl stop mirai-support.target``): it
replaces the database's content. Each backup folder has a ``manifest.json`` (kind, time,
files) that restore checks first. The key files (``BOT_SECRET_KEY_FILE``,
``BOT_RASA_TOKEN_FILE``) are not in it: keep a copy of them once, apart (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
PG_DUMP = "database.dump"
TRACKERS_FILE = "trackers.db"  # bot.store.rasa_endpoints.TRACKERS_FILE


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


def database_url() -> str:
    """``DATABASE_URL``, or the default SQLite file of the settings."""
    from bot.settings import get_settings

    return get_settings().database_url


def _kind_and_target(url: str) -> tuple[str, Any]:
    """``("sqlite", Path)`` or ``("postgresql", libpq URI)`` for a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise BackupError(f"DATABASE_URL={url}: ファイルのない SQLite はバックアップできません。")
        return "sqlite", Path(parsed.database).resolve()
    if backend == "postgresql":
        # pg_dump takes a libpq URI: the driver part (postgresql+psycopg2) must go.
        return "postgresql", parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    raise BackupError(f"DATABASE_URL={parsed.render_as_string(hide_password=True)}: "
                      "sqlite:/// か postgresql:// の URL を指定してください。")


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a SQLite file with the online backup API (consistent while others write)."""
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _run(args: list[str]) -> None:
    try:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BackupError(f"{args[0]} がありません。PostgreSQL のクライアントを入れてください"
                          "（Debian: apt-get install postgresql-client）。") from exc
    if result.returncode != 0:
        raise BackupError(f"{args[0]} が失敗しました（終了コード {result.returncode}）: {result.stderr.strip()[-1500:]}")


def backup(destination: Path, url: str | None = None, now: dt.datetime | None = None) -> Path:
    """Write a new backup folder under ``destination``; returns it.

    Raises:
        BackupError: Unknown database, missing file or tool, or the dump failed.
    """
    url = url or database_url()
    kind, target = _kind_and_target(url)
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    folder = destination / stamp
    folder.mkdir(parents=True, exist_ok=False)
    folder.chmod(0o700)  # tickets and chat logs are personal data
    files: list[str] = []
    if kind == "sqlite":
        if not target.exists():
            raise BackupError(f"{target} がありません。DATABASE_URL を確かめてください。")
        for source in (target, target.parent / TRACKERS_FILE):
            if source.exists():
                _sqlite_copy(source, folder / source.name)
                files.append(source.name)
    else:
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={folder / PG_DUMP}", f"--dbname={target}"])
        files.append(PG_DUMP)
    manifest = {"kind": kind, "created": stamp, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return folder


def restore(folder: Path, url: str | None = None) -> list[str]:
    """Put the backup in ``folder`` back into the database; returns the files restored.

    Raises:
        BackupError: No manifest, a backup of another kind of database, or the restore failed.
    """
    url = url or database_url()
    kind, target = _kind_and_target(url)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder}: {MANIFEST} を読めません。backup が作ったフォルダーを指定してください。") from exc
    if manifest.get("kind") != kind:
        raise BackupError(f"{folder} は {manifest.get('kind')} のバックアップです。DATABASE_URL は {kind} です。")
    files = [str(name) for name in manifest.get("files", [])]
    if kind == "sqlite":
        for name in files:
            path = target.parent / TRACKERS_FILE if name == TRACKERS_FILE else target
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
                stale.unlink(missing_ok=True)
            partial = path.with_name(path.name + ".restoring")
            shutil.copyfile(folder / name, partial)
            os.replace(partial, path)  # never a half-copied database
    else:
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
              f"--dbname={target}", str(folder / PG_DUMP)])
    return files


def main(argv: list[str] | None = None) -> int:
    """``backup DEST`` / ``restore FOLDER --yes``."""
    parser = argparse.ArgumentParser(prog="deploy/backup.py", description="データベースのバックアップと復元")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("backup", help="DEST の下に日時のフォルダーを作って保存")
    make.add_argument("destination", type=Path)
    back = sub.add_parser("restore", help="バックアップのフォルダーをデータベースに戻す（ボットを止めてから）")
    back.add_argument("folder", type=Path)
    back.add_argument("--yes", action="store_true", help="今のデータベースの内容を置き換えることに同意する")
    args = parser.parse_args(argv)
    try:
        if args.command == "backup":
            print(f"バックアップしました: {backup(args.destination)}")
            return 0
        if not args.yes:
            print("restore はデータベースの内容を置き換えます。ボットを止めてから --yes を付けて実行してください。",
                  file=sys.stderr)
            return 2
        print(f"復元しました: {', '.join(restore(args.folder))}")
        return 0
    except BackupError as exc:
        print(f"できませんでした: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
