"""Shared fixtures: a model trained once per test session, trackers for action tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from bot.settings import PROJECT_ROOT

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests use the project's own knowledge/ and models, whatever the developer's shell says.
for _name in ("BOT_KNOWLEDGE_DIR", "BOT_MODELS_DIR", "BOT_RASA_PORT", "BOT_ACTION_PORT", "BOT_SERVER_PORT",
              "BOT_RASA_URL", "BOT_OUTBOX", "BOT_SECRET_KEY_FILE", "BOT_RASA_TOKEN_FILE", "DATABASE_URL"):
    os.environ.pop(_name, None)
# Code that falls back to the configured stores (e.g. the outbox's retry thread) must never
# touch the developer's var/ files: point the defaults at a throw-away folder.
_SCRATCH = Path(tempfile.mkdtemp(prefix="bot-tests-"))
os.environ["DATABASE_URL"] = f"sqlite:///{_SCRATCH / 'handoff.db'}"
os.environ["BOT_OUTBOX"] = str(_SCRATCH / "outbox.jsonl")
os.environ["BOT_SECRET_KEY_FILE"] = str(_SCRATCH / "secret.key")
os.environ["BOT_RASA_TOKEN_FILE"] = str(_SCRATCH / "rasa.token")
# Whether a person is on duty depends on the time (knowledge/hours.yml): every test, and every
# server it starts, runs at one fixed staffed moment unless it sets another (the `clock` fixture,
# or BOT_NOW in a stack's env), so no test takes a different branch depending on when CI runs.
STAFFED_NOW = "2026-11-24T10:00+09:00"  # a Tuesday morning
OFFLINE_NOW = "2026-11-23T12:00+09:00"  # 勤労感謝の日, a national holiday (Monday); next opening 11/24 9:00
os.environ["BOT_NOW"] = STAFFED_NOW


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained from the working tree (``BOT_TEST_MODEL`` reuses an existing one)."""
    subprocess.run([sys.executable, "-m", "bot", "kb", "build", "--check"], cwd=PROJECT_ROOT, check=True)
    existing = os.environ.get("BOT_TEST_MODEL")
    if existing:
        return Path(existing)
    out = tmp_path_factory.mktemp("models")
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "train", "--out", str(out), "--fixed-model-name", "test"],
        cwd=PROJECT_ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "test.tar.gz"


@pytest.fixture(scope="session")
def assistant(trained_model: Path):  # type: ignore[no-untyped-def]
    """The `bot ask` engine on the session model."""
    from bot.assistant import Assistant

    engine = Assistant(trained_model)
    yield engine
    engine.close()


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``clock(OFFLINE_NOW)`` sets the time this process's staffed-hours decisions see (BOT_NOW)."""
    from bot.settings import get_settings

    def _set(moment: str) -> None:
        monkeypatch.setenv("BOT_NOW", moment)
        get_settings.cache_clear()

    yield _set
    monkeypatch.setenv("BOT_NOW", STAFFED_NOW)
    get_settings.cache_clear()


@pytest.fixture()
def make_tracker():  # type: ignore[no-untyped-def]
    """Build a rasa_sdk Tracker whose latest message has the given NLU result."""
    from rasa_sdk import Tracker

    def _make(text: str = "", intent: str | None = None, confidence: float = 0.9,
              ranking: list[dict[str, Any]] | None = None, **parse_extra: Any) -> Tracker:
        latest = {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": ranking if ranking is not None else [{"name": intent, "confidence": confidence}],
            "entities": [],
            **parse_extra,
        }
        events = [{"event": "user", "text": text, "parse_data": latest}]
        return Tracker("test-sender", {}, latest, events, False, None, {}, "action_listen")

    return _make


# Debian's Chromium for the browser tests (Playwright's own browser download cannot work on a
# closed network), with the flags every browser test uses.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """Headless Debian Chromium through Playwright, closed on exit; ``extra_args`` add flags."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield launched
        finally:
            launched.close()


def missing_service(reason: str, module_level: bool = False) -> None:
    """Skip a test whose machine service (Chromium, GiNZA …) is missing, loudly; fail on CI.

    On CI (``CI=true``, set by .ci/run) a missing service is a broken set-up, never a skip.
    """
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AGENT_PASSWORD = "agent-password-for-tests"


def staffed_knowledge(target: Path) -> Path:
    """A copy of knowledge/ whose hours.yml is staffed around the clock (tests of live handoff)."""
    import shutil

    shutil.copytree(PROJECT_ROOT / "knowledge", target)
    days = "\n".join(f'  {d}: "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    (target / "hours.yml").write_text(f"weekly:\n{days}\nclosed_on_national_holidays: false\nclosed_dates: []\n",
                                      encoding="utf-8")
    return target


@contextlib.contextmanager
def temporary_database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh SQLite file or PostgreSQL database (127.0.0.1:5432), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bot.db'}"
        return
    from sqlalchemy import create_engine, text

    name = f"bot_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            # FORCE (PostgreSQL 13+) ends the sessions and drops in one step: terminating first
            # left a window in which a pool that was still closing reconnected ("being accessed
            # by other users", seen once on CI).
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def recorded_database(kind: str, folder: Path, record: Callable[[Any], None]) -> Iterator[Any]:
    """An engine on :func:`temporary_database` after ``record(engine)`` wrote its rows (analytics tests)."""
    from bot.store.database import make_engine

    with temporary_database(kind, folder) as url:
        engine = make_engine(url)
        try:
            record(engine)
            yield engine
        finally:
            engine.dispose()


def recorded_engines(record: Callable[[Any], None]) -> Any:
    """An ``engine`` fixture: :func:`recorded_database` on SQLite, then on PostgreSQL (analytics tests)."""

    @pytest.fixture(params=["sqlite", "postgresql"])
    def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
        with recorded_database(request.param, tmp_path, record) as recorded:
            yield recorded

    return engine


@contextlib.contextmanager
def full_stack(model: Path, folder: Path, database_url: str, knowledge: Path | None = None,
               env: dict[str, str] | None = None) -> Iterator[Any]:
    """Rasa server, action server and bot server on ``database_url``, staffed all day, one agent.

    ``knowledge``: the knowledge folder the servers read (default: :func:`staffed_knowledge` of
    the project's, in ``folder``); answers are read at run time, so a copy with edited answers
    needs no retraining. ``env``: more settings for every server (``BOT_NOW``, limits …).
    """
    from bot.launcher import BotStack, free_port
    from bot.server.app import stores_for

    stores_for(database_url).agents.add("sato", "佐藤", AGENT_PASSWORD)
    knowledge = knowledge or staffed_knowledge(folder / "knowledge")
    env = {"DATABASE_URL": database_url, "BOT_KNOWLEDGE_DIR": str(knowledge),
           "BOT_OUTBOX": str(folder / "outbox.jsonl"), "BOT_SECRET_KEY_FILE": str(folder / "secret.key"),
           **(env or {})}
    with BotStack(model=model, rasa_port=free_port(), action_port=free_port(), server_port=free_port(),
                  log_dir=folder / "logs", env=env) as stack:
        yield stack
