"""Every webhook event type at a real local receiver (#15 item 3), checked against docs/webhooks.md.

One bot server (SQLite, scripted Rasa) with an agent (suzuki), the admin (sato) and a
supervisor (kato) posts every event to a local HTTP receiver while three chats go through
every step: an anger chat nobody claims is escalated automatically and a supervisor joins
it from the queue (``ticket.claimed`` with the supervisor, sent with the join); a chat is
transferred, escalated by hand and joined; a complaint chat left without a reply is
escalated automatically while claimed, put back in the queue, claimed and forwarded to a
department; two customers rate their chat (``csat.received``). The deliveries are read
three ways: signed and in order per ticket with the masked transcript and never an
internal note; valid against the JSON Schema printed in docs/webhooks.md (extracted from
the page, so the page and the payloads cannot drift apart); and verified by the
JavaScript verifier printed there, run with ``node`` (a missing ``node`` skips locally and
fails on CI).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.server.gateway_escalation import wait_words
from bot.webhooks.config import EVENTS
from conftest import missing_service
from test_escalation_api import three_roles
from test_webhooks import FAST, KEY, Receiver, config_for, documented_block, documented_verifier, wait_until

TEXT = wording.ESCALATION_TEXT
AUTO_AFTER = 0.6  # seconds a complaint or anger chat may wait (the server's loop looks every second)
CARD_LINE = "カード 4111 1111 1111 1111 で二重に請求されています"
MASKED_CARD = "**** **** **** 1111"
# Internal texts: in the ticket's history, never in a payload (a forward's note only in ``forward``).
TRANSFER_NOTE = "料金の件は佐藤さんが詳しい（内部）"
ESCALATION_NOTE = "解約を強く求めています（内部）"
WHISPER = "まず謝罪を（ささやき）"
FORWARD_NOTE = "返金の確認をお願いします。カード 4111 1111 1111 1111"
DEPARTMENTS_YML = """\
departments:
  - id: delivery
    name: 配送センター
    webhook: crm
    promise: 配送センターの担当者から翌営業日までにお電話でご連絡します。
"""
EXPECTED = {
    "anger": ["ticket.created", "ticket.escalated", "ticket.claimed", "ticket.resolved", "csat.received"],
    "escalated": ["ticket.created", "ticket.claimed", "ticket.transferred", "ticket.escalated", "ticket.claimed",
                  "ticket.resolved", "csat.received"],
    "complaint": ["ticket.created", "ticket.claimed", "ticket.escalated", "ticket.transferred", "ticket.claimed",
                  "ticket.forwarded", "ticket.resolved"],
}


@dataclass
class Flow:
    """What the receiver got: each request (headers, body), and the three chats' ticket ids by name."""

    requests: list[tuple[dict[str, str], bytes]]
    tickets: dict[str, int]

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]

    def first_arrivals(self) -> dict[str, list[dict[str, Any]]]:
        """Each chat's events in the order they first arrived (repeats of an id left out)."""
        names = {ticket_id: name for name, ticket_id in self.tickets.items()}
        seen: set[str] = set()
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in self.tickets}
        for event in self.events():
            if event["id"] not in seen:
                seen.add(event["id"])
                found[names[event["ticket"]["id"]]].append(event)
        return found


def ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    """The three chats through every step, every event delivered (run once for this module's tests)."""
    folder = tmp_path_factory.mktemp("webhook-events")
    (folder / "departments.yml").write_text(DEPARTMENTS_YML, encoding="utf-8")
    receiver = Receiver()
    try:
        with three_roles(folder / "bot.db", escalate_after_seconds=AUTO_AFTER, webhook_settings=FAST,
                         webhook_poll_seconds=0.05, webhooks=config_for(receiver.url, list(EVENTS))) as roles:
            admin, agent, supervisor, services = roles
            services.gateway.departments_file = folder / "departments.yml"
            queue = services.stores.queue

            def chat(reasons: tuple[str, ...]) -> int:
                conversation = ok(agent.post("/api/chat/sessions", json={}))["conversation_id"]
                return queue.enqueue(HandoffPacket(f"{conversation}:1", conversation, list(reasons),
                                                   [Turn("customer", CARD_LINE)], category="登録情報の変更"))[0].id

            escalated = chat(("human_request",))  # never due for the automatic escalation
            ok(agent.post(f"/api/tickets/{escalated}/claim"))
            ok(agent.post(f"/api/tickets/{escalated}/transfer", json={"to_agent": "sato", "note": TRANSFER_NOTE}))
            ok(supervisor.post(f"/api/tickets/{escalated}/whisper", json={"text": WHISPER}))
            ok(admin.post(f"/api/tickets/{escalated}/escalate", json={"note": ESCALATION_NOTE}))
            ok(supervisor.post(f"/api/tickets/{escalated}/join"))
            ok(supervisor.post(f"/api/tickets/{escalated}/resolve"))
            complaint = chat(("complaint",))
            ok(agent.post(f"/api/tickets/{complaint}/claim"))  # and no reply
            anger = chat(("anger",))  # nobody claims it
            wait_until(lambda: all(queue.get(t, False).escalation == "requested" for t in (anger, complaint)))
            ok(supervisor.post(f"/api/tickets/{anger}/join"))
            ok(supervisor.post(f"/api/tickets/{anger}/resolve"))
            ok(agent.post(f"/api/tickets/{complaint}/transfer", json={"to_queue": True, "note": TRANSFER_NOTE}))
            ok(admin.post(f"/api/tickets/{complaint}/claim"))
            ok(admin.post(f"/api/tickets/{complaint}/forward", json={"department": "delivery", "note": FORWARD_NOTE}))
            for ticket_id, rating in ((anger, 2), (escalated, 5)):
                conversation = queue.get(ticket_id, False).conversation_id
                services.gateway.surveys.record(conversation, ticket_id, rating, f"{CARD_LINE}が解決しました")
            found = Flow(receiver.requests, {"anger": anger, "escalated": escalated, "complaint": complaint})

            def types() -> dict[str, list[str]]:
                return {name: [e["type"] for e in events] for name, events in found.first_arrivals().items()}

            try:
                wait_until(lambda: types() == EXPECTED)
            except AssertionError:
                assert types() == EXPECTED  # what did arrive
            yield found
    finally:
        receiver.close()


def test_every_event_type_arrives_signed_in_order_per_ticket_with_the_masked_transcript(flow: Flow) -> None:
    arrived = flow.first_arrivals()
    assert {e["type"] for events in arrived.values() for e in events} == set(EVENTS)
    # In order per ticket: no request ever went back to an earlier event of its ticket.
    for name, ticket_id in flow.tickets.items():
        order = [e["id"] for e in arrived[name]]
        sent = [order.index(e["id"]) for e in flow.events() if e["ticket"]["id"] == ticket_id]
        assert sent == sorted(sent), name
    verify = documented_verifier()
    for (headers, body), event in zip(flow.requests, flow.events()):
        assert verify(KEY, body, headers["x-webhook-timestamp"], headers["x-signature"])
        assert (headers["x-webhook-id"], headers["x-webhook-event"]) == (event["id"], event["type"])
        text = body.decode("utf-8")
        assert "4111 1111 1111 1111" not in text and MASKED_CARD in text
        assert all(internal not in text for internal in (TRANSFER_NOTE, ESCALATION_NOTE, WHISPER))
        if event["type"] != "ticket.forwarded":
            assert "返金の確認" not in text
        transcript = event["transcript"]
        assert transcript[0]["sender"] == "customer" and any(MASKED_CARD in e["text"] for e in transcript)
    for name, events in arrived.items():
        sizes = [len(e["transcript"]) for e in events]
        assert sizes == sorted(sizes), name  # each event's transcript as of that event

    def state(event: dict[str, Any]) -> tuple[Any, ...]:
        ticket = event["ticket"]
        return event["type"], ticket["status"], ticket["claimed_by"], ticket["resolved_by"], ticket["resolution"]

    assert [state(e) for e in arrived["anger"]] == [
        ("ticket.created", "waiting", None, None, None),
        ("ticket.escalated", "waiting", None, None, None),  # automatic, while nobody had claimed it
        ("ticket.claimed", "claimed", "kato", None, None),  # the supervisor joined it from the queue
        ("ticket.resolved", "resolved", "kato", "kato", "resolved"),
        ("csat.received", "resolved", "kato", "kato", "resolved")]
    assert [state(e) for e in arrived["escalated"]] == [
        ("ticket.created", "waiting", None, None, None),
        ("ticket.claimed", "claimed", "suzuki", None, None),
        ("ticket.transferred", "claimed", "sato", None, None),
        ("ticket.escalated", "claimed", "sato", None, None),  # the agent stays until a supervisor joins
        ("ticket.claimed", "claimed", "kato", None, None),
        ("ticket.resolved", "resolved", "kato", "kato", "resolved"),
        ("csat.received", "resolved", "kato", "kato", "resolved")]
    assert [state(e) for e in arrived["complaint"]] == [
        ("ticket.created", "waiting", None, None, None),
        ("ticket.claimed", "claimed", "suzuki", None, None),
        ("ticket.escalated", "claimed", "suzuki", None, None),  # automatic: claimed without a reply
        ("ticket.transferred", "waiting", None, None, None),
        ("ticket.claimed", "claimed", "sato", None, None),
        ("ticket.forwarded", "resolved", "sato", "sato", "forwarded"),
        ("ticket.resolved", "resolved", "sato", "sato", "forwarded")]
    # The system line of each step closes the transcript sent with it.
    last = {(name, e["type"]): e["transcript"][-1]["text"] for name, events in arrived.items() for e in events}
    auto = TEXT["record_auto_escalated"].format(wait=wait_words(AUTO_AFTER))
    assert last["anger", "ticket.escalated"] == last["complaint", "ticket.escalated"] == auto
    assert last["escalated", "ticket.escalated"] == TEXT["record_escalated"].format(name="佐藤")
    assert last["escalated", "ticket.transferred"] == TEXT["record_transferred"].format(old="鈴木", new="佐藤")
    assert last["anger", "ticket.claimed"] == TEXT["record_joined"].format(name="加藤")
    forwarded = next(e for e in arrived["complaint"] if e["type"] == "ticket.forwarded")["forward"]
    assert forwarded["department"] == {"id": "delivery", "name": "配送センター"} and forwarded["by"] == "sato"
    assert forwarded["note"] == f"返金の確認をお願いします。カード {MASKED_CARD}"
    ratings = {name: next(e for e in arrived[name] if e["type"] == "csat.received")["csat"]
               for name in ("anger", "escalated")}
    assert ratings == {name: {"rating": rating, "comment": f"カード {MASKED_CARD} で二重に請求されていますが解決しました",
                              "channel": "web"} for name, rating in (("anger", 2), ("escalated", 5))}


# ---- the JSON Schema of docs/webhooks.md ---------------------------------------------------------------


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others: a field the page
    does not document fails too (``customer`` keeps its own rule for its free keys)."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    found = {key: closed(value) for key, value in schema.items()}
    if "properties" in found and "additionalProperties" not in found:
        found["additionalProperties"] = False
    return found


RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (jsonschema checks it only with an extra package, not installed here)."""
    if not isinstance(value, str):
        return True
    if not RFC3339.match(value):
        return False
    dt.datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))  # raises for 2026-13-40
    return True


def documented_validator() -> Draft202012Validator:
    """A validator of the page's schema, closed, checking ``uuid`` and ``date-time``."""
    schema = json.loads(documented_block("schema:payload", "json"))
    Draft202012Validator.check_schema(schema)
    formats = FormatChecker(["uuid"])
    formats.checks("date-time", raises=ValueError)(date_time)
    return Draft202012Validator(closed(schema), format_checker=formats)


def test_every_payload_matches_the_json_schema_of_the_docs(flow: Flow) -> None:
    validator = documented_validator()
    documented_types = validator.schema["properties"]["type"]["enum"]
    assert sorted(documented_types) == sorted(EVENTS)  # the page names exactly the events the code sends
    events = flow.events()
    for event in events:
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(event)]
        assert problems == [], (event["type"], problems)
    assert {e["type"] for e in events} == set(EVENTS)
    # The validator is not a rubber stamp: each of these breaks of a real payload is caught.
    resolved = next(e for e in events if e["type"] == "ticket.resolved")
    breaks = {
        "id": {**resolved, "id": "not-a-uuid"},
        "occurred_at": {**resolved, "occurred_at": "2026-11-24 01:02"},
        "type": {**resolved, "type": "ticket.deleted"},
        "ticket": {**resolved, "ticket": {**resolved["ticket"], "status": "closed"}},
        "undocumented": {**resolved, "extra": 1},
        "ticket/undocumented": {**resolved, "ticket": {**resolved["ticket"], "agent_email": "x"}},
        "transcript": {**resolved, "transcript": [{"sender": "robot", "text": "x", "at": "x"}]},
        "csat": {**resolved, "csat": {"rating": 6}},
    }
    assert [what for what, payload in breaks.items() if validator.is_valid(payload)] == []


# ---- the JavaScript verifier of docs/webhooks.md -------------------------------------------------------

RUNNER = """\
const { verify } = require(process.argv[2]);
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const results = cases.map((c) => verify(c.secret, Buffer.from(c.body, "base64"), c.timestamp, c.signature,
                                        ...(c.now === null ? [] : [c.now])));
process.stdout.write(JSON.stringify(results));
"""


def node_binary() -> str:
    found = shutil.which("node") or ("/usr/bin/node" if Path("/usr/bin/node").exists() else None)
    if found is None:
        missing_service("node is not installed: the JavaScript verifier of docs/webhooks.md cannot be run")
    return str(found)


def test_the_javascript_verifier_of_the_docs_accepts_a_real_delivery_and_refuses_late_or_forged_ones(
        flow: Flow, tmp_path: Path) -> None:
    node = node_binary()
    (tmp_path / "verifier.js").write_text(documented_block("verifier:javascript", "javascript"), encoding="utf-8")
    (tmp_path / "runner.js").write_text(RUNNER, encoding="utf-8")
    headers, body = next((h, b) for h, b in flow.requests if h["x-webhook-event"] == "csat.received")
    stamp, signed = headers["x-webhook-timestamp"], headers["x-signature"]
    late = int(stamp) + 301
    cases = {  # name: (secret, body, timestamp, signature, now (None: the real clock), expected)
        "the real delivery, now": (KEY, body, stamp, signed, None, True),
        "at the edge of the tolerance": (KEY, body, stamp, signed, int(stamp) + 300, True),
        "replayed late": (KEY, body, stamp, signed, late, False),
        "from the future": (KEY, body, stamp, signed, int(stamp) - 301, False),
        "wrong key": ("wrong-" + KEY, body, stamp, signed, None, False),
        "body changed": (KEY, body + b" ", stamp, signed, None, False),
        "timestamp changed": (KEY, body, str(int(stamp) + 1), signed, int(stamp), False),
        "no signature": (KEY, body, stamp, "", None, False),
        "no timestamp": (KEY, body, "", signed, None, False),
    }
    given = [{"secret": s, "body": base64.b64encode(b).decode("ascii"), "timestamp": t, "signature": sig, "now": now}
             for s, b, t, sig, now, _ in cases.values()]
    run = subprocess.run([node, str(tmp_path / "runner.js"), str(tmp_path / "verifier.js")],
                         input=json.dumps(given), capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    results = dict(zip(cases, json.loads(run.stdout)))
    assert results == {name: case[-1] for name, case in cases.items()}
    # The Python verifier of the page agrees case by case.
    verify = documented_verifier()
    for name, (secret, raw, timestamp, signature, now, expected) in cases.items():
        assert verify(secret, raw, timestamp, signature, now=now) is expected, name
