"""Shared fixtures: a model trained once per test session, trackers for action tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.settings import PROJECT_ROOT

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests use the project's own knowledge/ and models, whatever the developer's shell says.
for _name in ("BOT_KNOWLEDGE_DIR", "BOT_MODELS_DIR", "BOT_RASA_PORT", "BOT_ACTION_PORT"):
    os.environ.pop(_name, None)


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
