"""Settings from the environment."""

import pytest

from bot.settings import PROJECT_ROOT, get_settings


@pytest.fixture(autouse=True)
def fresh_settings():  # type: ignore[no-untyped-def]
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults_need_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_KNOWLEDGE_DIR", "BOT_MODELS_DIR", "BOT_RASA_PORT", "BOT_ACTION_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = get_settings()
    assert settings.knowledge_dir == PROJECT_ROOT / "knowledge"
    assert (settings.rasa_port, settings.action_port) == (5005, 5055)


def test_bad_port_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_RASA_PORT", "abc")
    with pytest.raises(ValueError, match="BOT_RASA_PORT"):
        get_settings()
