"""The console's 個人情報の削除 API (#14 item 5): `bot data delete` for admins, on SQLite and PostgreSQL.

One bot server per database (tests/test_desk_api.py's admin sato and agent suzuki) over the
customers of tests/test_erasure.py: Taro (two conversations, one reached only through his
ticket's address) and Hanako, seeded through the real stores and Rasa's own tracker store.
Rows are counted with plain SQL (tests/test_erasure.py's ``holdings``), not with the
erasure's own conditions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from bot import wording
from bot.handoff.packet import HandoffPacket, Turn
from bot.server.app import Services
from bot.store.erasure import KINDS
from test_desk import database, engine  # noqa: F401 - fixtures: SQLite and PostgreSQL
from test_desk_api import admin_and_agent
from test_erasure import HANAKO, TARO, customers, deletions, everything, holdings, rasa  # noqa: F401

PREVIEW, ERASE = "/api/admin/erasure/preview", "/api/admin/erasure"
Server = tuple[TestClient, TestClient, Services]


@pytest.fixture()
def server(customers: Engine, database: str, tmp_path: Path) -> Iterator[Server]:  # noqa: F811
    """The admin's and the agent's clients on the database that holds Taro and Hanako."""
    with admin_and_agent(tmp_path / "unused.db", database_url=database) as clients:
        yield clients


def counts(answer: dict[str, Any]) -> dict[str, int]:
    return {row["kind"]: row["count"] for row in answer["counts"]}


def test_dry_run_counts_exactly_what_would_go_and_changes_nothing(server: Server, customers: Engine) -> None:  # noqa: F811
    admin, _, _ = server
    taro, before = holdings(customers, TARO), everything(customers)

    response = admin.post(PREVIEW, json={"by": "email", "value": " Taro@Example.JP "})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["dry_run"] is True and answer["conversation_count"] == 2
    assert answer["summary"] == "メールアドレス「taro@example.jp」: 会話 2 件"
    assert [row["label"] for row in answer["counts"]] == list(KINDS.values())  # the CLI's kinds, in its order
    assert counts(answer) == {
        "transcript_entries": taro["transcript_entries"], "ticket_events": taro["ticket_events"], "csat_ratings": 2,
        "transcript_mails": 4, "webhook_deliveries": taro["webhook_deliveries"], "tickets": 4, "chat_messages": 4,
        "pending_handoffs": 2, "undelivered_handoffs": 4, "conversations": 1, "rasa_events": 6}
    assert answer["total"] == sum(counts(answer).values())
    assert [(c["conversation_id"], c["name"], c["tickets"]) for c in answer["conversations"]] == \
        [(TARO[0], "山田太郎", 2), (TARO[1], "山田太郎", 2)]  # the LINE one is named by its tickets
    assert all(c["started_at"] for c in answer["conversations"])
    assert everything(customers) == before and deletions(customers) == []


def test_deletion_removes_that_customer_only_and_is_audited_without_content(server: Server,
                                                                            customers: Engine) -> None:  # noqa: F811
    admin, _, _ = server
    taro, hanako = holdings(customers, TARO), holdings(customers, (HANAKO,))
    assert all(hanako[kind] for kind in ("conversations", "chat_messages", "tickets", "rasa_events"))
    dry = admin.post(PREVIEW, json={"by": "conversation", "value": HANAKO}).json()

    response = admin.post(ERASE, json={"by": "conversation", "value": HANAKO, "confirm": f" {HANAKO} "})

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["dry_run"] is False and counts(answer) == counts(dry) and answer["total"] == dry["total"]
    assert "conversations" not in answer  # nothing left to describe
    assert not any(holdings(customers, (HANAKO,)).values())
    assert holdings(customers, TARO) == taro
    [line] = deletions(customers)
    assert (line.actor, line.address, line.detail["by"], line.detail["conversations"]) == \
        ("sato", "testclient", "conversation", 1)
    assert line.detail["counts"] == {kind: n for kind, n in counts(answer).items() if n}
    written = json.dumps([line.target, line.detail], ensure_ascii=False)
    for content in (HANAKO, "hanako", "佐藤花子", "住所", "内部メモ", "助かりました", "@"):
        assert content not in written
    listed = admin.get("/api/admin/audit", params={"action": "data.deleted"}).json()["entries"]
    assert [(e["actor"], e["action_label"]) for e in listed] == [("sato", "お客さまのデータの削除（依頼による）")]
    again = admin.post(PREVIEW, json={"by": "conversation", "value": HANAKO})
    assert again.status_code == 404  # erased: nothing left to find


def test_refusals_change_nothing(server: Server, customers: Engine) -> None:  # noqa: F811
    admin, agent, services = server
    before = everything(customers)
    taro = {"by": "email", "value": "taro@example.jp"}

    for path, body in ((PREVIEW, taro), (ERASE, {**taro, "confirm": taro["value"]})):
        refused = agent.post(path, json=body)
        assert refused.status_code == 403 and refused.json()["error"] == wording.DESK_TEXT["admin_only"]
        no_csrf = admin.post(path, json=body, headers={"X-CSRF-Token": ""})
        assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
        with TestClient(admin.app) as anonymous:
            assert anonymous.post(path, json=body).status_code == 401
        for raw in (b'{"by": "email", "value": ', b"[1, 2]"):
            malformed = admin.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert malformed.status_code == 400 and malformed.json()["error"].startswith("JSON")
        assert admin.get(path).status_code == 405

    unknown = admin.post(ERASE, json={"by": "email", "value": "nobody@example.jp", "confirm": "nobody@example.jp"})
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("メールアドレス「nobody@example.jp」のお客さまのデータは見つかりません。")
    unknown = admin.post(PREVIEW, json={"by": "conversation", "value": "c-nobody"})
    assert unknown.status_code == 404 and "会話 ID「c-nobody」" in unknown.json()["error"]

    mismatch = admin.post(ERASE, json={**taro, "confirm": "taro@example.com"})
    assert mismatch.status_code == 422
    assert mismatch.json()["error"].startswith("確認の入力が削除するお客さまのメールアドレスと一致しません。")
    for body in ({**taro}, {**taro, "confirm": 1}, {"by": "conversation", "value": HANAKO, "confirm": TARO[0]}):
        assert admin.post(ERASE, json=body).status_code == 422, body
    for body in ({"by": "name", "value": "山田"}, {"by": "email"}, {"by": "email", "value": ["taro@example.jp"]}):
        assert admin.post(PREVIEW, json=body).status_code == 422, body
    not_address = admin.post(ERASE, json={"by": "email", "value": "taro.example.jp", "confirm": "taro.example.jp"})
    assert not_address.status_code == 422 and "@ がありません" in not_address.json()["error"]
    assert everything(customers) == before and deletions(customers) == []

    ticket, _ = services.stores.queue.enqueue(HandoffPacket(
        idempotency_key=f"{HANAKO}:9", conversation_id=HANAKO, reasons=["human_request"],
        transcript=[Turn("customer", "まだですか")]))
    services.stores.queue.claim(ticket.id, "suzuki")
    grown = holdings(customers, (HANAKO,))
    for path in (PREVIEW, ERASE):
        busy = admin.post(path, json={"by": "conversation", "value": HANAKO, "confirm": HANAKO})
        assert busy.status_code == 409 and f"#{ticket.id}" in busy.json()["error"]
        assert "解決してから" in busy.json()["error"]
    after = holdings(customers, (HANAKO,))  # the server may still announce the ticket (a chat message more)
    assert all(after[kind] >= grown[kind] for kind in grown) and deletions(customers) == []
