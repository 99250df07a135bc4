"""Conversations survive a Rasa restart (real Rasa + action servers, SQLite and PostgreSQL).

Rasa keeps conversations in its tracker store, on the queue's database (bot/store/rasa_endpoints.py).
Without it, a restart forgot every conversation: the next turn after a clarify lost its
context and the "second unsure turn in a row goes to a person" rule never fired.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import full_stack, temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp(f"durable-{request.param}")
    with temporary_database(request.param, folder) as url, full_stack(trained_model, folder, url) as running:
        running.database_url = url
        yield running


def say(stack: Any, text: str, sender: str) -> list[dict[str, Any]]:
    body = json.dumps({"sender": sender, "message": text}).encode("utf-8")
    request = urllib.request.Request(f"{stack.rasa_url}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def user_texts(stack: Any, sender: str) -> list[str]:
    url = f"{stack.rasa_url}/conversations/{sender}/tracker?token={stack.rasa_token}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return [e.get("text") for e in json.loads(response.read())["events"] if e["event"] == "user"]


def test_a_rasa_restart_keeps_the_conversation(stack: Any) -> None:
    sender = uuid.uuid4().hex
    first = say(stack, "", sender)
    assert [m["custom"]["route"] for m in first if "custom" in m] == ["clarify"]

    stack.restart_rasa()  # SIGKILL, as a crash would

    assert user_texts(stack, sender) == [""]  # the history is still there
    # The context counts: a second not-understood turn in a row goes to a person.
    second = say(stack, "😀", sender)
    (custom,) = [m["custom"] for m in second if "custom" in m]
    assert (custom["route"], custom["handoff_reason"]) == ("handoff", "unresolved")


def test_a_clarify_button_still_answers_after_a_restart(stack: Any) -> None:
    sender = uuid.uuid4().hex
    first = say(stack, "", sender)
    button = next(m["buttons"] for m in first if "buttons" in m)[0]
    faq_id = json.loads(button["payload"].removeprefix("/faq"))["faq_id"]
    stack.restart_rasa()
    answer = say(stack, button["payload"], sender)
    (custom,) = [m["custom"] for m in answer if "custom" in m]
    assert (custom["route"], custom["faq_id"]) == ("answer", faq_id)
    assert user_texts(stack, sender)[0] == ""
