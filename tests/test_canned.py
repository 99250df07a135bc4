"""Canned replies (knowledge/canned.yml): loading, `bot kb validate`, and the agent API that fills them in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest
from starlette.testclient import TestClient

from bot.cli import main
from bot.handoff.packet import HandoffPacket, Turn
from bot.knowledge.canned import check_canned, customer_label, read_canned, render
from bot.knowledge.facts import load_facts
from bot.knowledge.loader import load_knowledge
from bot.knowledge.validate import validate_knowledge
from bot.server.app import Services, create_app, stores_for
from bot.server.tokens import ConversationTokens
from bot.settings import PROJECT_ROOT, get_settings

KNOWLEDGE = PROJECT_ROOT / "knowledge"
SECRET = "canned-test-secret-" + "x" * 32
PASSWORD = "correct-horse-battery"


def knowledge_with(tmp_path: Path, canned: str) -> Path:
    """A copy of the project's knowledge/ whose canned.yml is ``canned``."""
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE, target)
    (target / "canned.yml").write_text(canned, encoding="utf-8")
    return target


def canned_errors(directory: Path) -> list[str]:
    return [p.format(directory) for p in validate_knowledge(directory, check_published=False)
            if p.severity == "error"]


def entry(shortcut: str, text: str, title: str = "テスト") -> str:
    body = "\n".join(f"      {line}" for line in text.splitlines())
    return f"  - shortcut: {shortcut}\n    title: {title}\n    text: |-\n{body}\n"


# ---- the project's file -------------------------------------------------------------------------


def test_the_projects_canned_replies_load_and_pass_validate() -> None:
    replies, findings = read_canned(KNOWLEDGE)
    assert findings == []
    assert len(replies) >= 5 and len({r.shortcut for r in replies}) == len(replies)
    kb, facts = load_knowledge(KNOWLEDGE), load_facts(KNOWLEDGE)
    assert check_canned(replies, KNOWLEDGE / "canned.yml", kb, facts, check_facts=True) == []
    assert not [p for p in validate_knowledge(KNOWLEDGE, check_published=False)
                if p.severity == "error" and p.path.name == "canned.yml"]
    # Every reply fills in completely.
    for reply in replies:
        text = render(reply.text, kb, facts, "山田 太郎", "佐藤")
        assert text is not None and "{" not in text, reply.shortcut


def test_placeholders_are_filled() -> None:
    kb, facts = load_knowledge(KNOWLEDGE), load_facts(KNOWLEDGE)
    text = "{customer_name}、担当の{agent_name}です。{phone}（{hours.staffed}）\n{faq:change-address}"
    filled = render(text, kb, facts, "山田 太郎", "佐藤")
    address = kb.get("change-address")
    assert filled is not None
    assert filled.startswith(f"山田 太郎さま、担当の佐藤です。{facts.get('phone')}（{facts.get('hours.staffed')}）\n")
    assert filled.endswith(f"{address.answer}\n▶ {address.links[0].title}はこちら: {address.links[0].url}")
    assert render("{customer_name}、こんにちは。", kb, facts, None, "佐藤") == "お客さま、こんにちは。"
    assert render("{customer_name}", kb, facts, "  ", "佐藤") == "お客さま"
    assert customer_label("<b>山田</b>") == "<b>山田</b>さま"  # nothing escaped: the console uses textContent
    assert render("{unknown}", kb, facts, None, None) is None
    assert render("{unknown}", kb, facts, None, None, strict=False) == "{unknown}"


# ---- every error fails validate, with file, line, entry and fix -----------------------------------


@pytest.mark.parametrize(("canned", "entry_name", "words"), [
    ("entries:\n" + entry("hello", "{faq:no-such-faq}"), "hello", ["FAQ「no-such-faq」はありません", "change-address"]),
    ("entries:\n" + entry("hello", "{customer_nam}さん、こんにちは。"), "hello",
     ["「{customer_nam}」は定型文で使えない差し込みです", "{customer_name}"]),
    ("entries:\n" + entry("hello", "{customer_name}様、こんにちは。"), "hello", ["敬称があります"]),
    ("entries:\n" + entry("same", "一つ目です。") + entry("same", "二つ目です。"), "same",
     ["shortcut「same」は canned.yml:2", "別の名前"]),
    ("entries:\n  - shortcut: empty\n    title: 空\n    text: \"\"\n", "empty", ["「text」（お客さまに送る文章）が空です"]),
    ("entries:\n  - shortcut: empty\n    title: 空\n", "empty", ["が空です"]),
    ("entries:\n" + entry("sorry", "お客様、申し訳ありません。"), "sorry",
     ["「お客様」は使わない言い方です", "「お客さま」に直して", "「申し訳ありません」は使わない言い方です"]),
    ("entries:\n" + entry("title", "こんにちは。", title="オペレーターのあいさつ"), "title", ["タイトルの「オペレーター」"]),
    ("entries:\n" + entry("Bad_Name", "こんにちは。"), "Bad_Name", ["半角英小文字・数字・ハイフン"]),
    ("entries:\n  - shortcut: notitle\n    text: こんにちは。\n", "notitle", ["「title」"]),
    ("entries:\n" + entry("price", "料金は月額 2,222円です。"), "price", ["金額「2,222円」"]),
    ("entries:\n  - shortcut: x\n    title: [x\n", None, ["ファイルを読めません"]),
    ("replies:\n" + entry("x", "こんにちは。"), None, ["「entries:」の行がありません"]),
])
def test_each_problem_is_an_error_naming_file_entry_and_fix(tmp_path: Path, canned: str, entry_name: str | None,
                                                           words: list[str]) -> None:
    directory = knowledge_with(tmp_path, canned)
    errors = canned_errors(directory)
    assert errors, canned
    text = "\n".join(errors)
    assert all(line.startswith("[エラー] canned.yml") and " 対処: " in line for line in errors), text
    if entry_name:
        assert f"（エントリ: {entry_name}）" in text
        assert "canned.yml:2" in text or "canned.yml:" in text
    for word in words:
        assert word in text, (word, text)


def test_the_line_is_the_entrys_line(tmp_path: Path) -> None:
    directory = knowledge_with(tmp_path, "# 説明\nentries:\n" + entry("ok", "こんにちは。")
                               + entry("bad", "{faq:nope}"))
    [problem] = [p for p in validate_knowledge(directory, check_published=False) if p.severity == "error"]
    lines = (directory / "canned.yml").read_text(encoding="utf-8").splitlines()
    assert problem.entry == "bad" and lines[problem.line - 1].strip() == "- shortcut: bad"


def test_bad_entries_do_not_hide_the_good_ones(tmp_path: Path) -> None:
    directory = knowledge_with(tmp_path, "entries:\n" + entry("ok", "こんにちは。") + "  - shortcut: Bad\n"
                               + entry("next", "はい。"))
    replies, findings = read_canned(directory)
    assert [r.shortcut for r in replies] == ["ok", "next"] and [f.entry for f in findings] == ["Bad"]


def test_without_canned_yml_there_is_nothing_to_report(tmp_path: Path) -> None:
    directory = knowledge_with(tmp_path, "")
    (directory / "canned.yml").unlink()
    assert read_canned(directory) == ([], [])
    assert canned_errors(directory) == []


def test_bot_kb_validate_exits_1_on_a_canned_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = knowledge_with(tmp_path, "entries:\n" + entry("hello", "{faq:no-such-faq}"))
    assert main(["kb", "validate", "--kb", str(directory)]) == 1
    captured = capsys.readouterr()
    assert "canned.yml:2（エントリ: hello）" in captured.err and "エラー 1 件" in captured.out


# ---- agent API ----------------------------------------------------------------------------------


@pytest.fixture()
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Services]]:
    directory = knowledge_with(tmp_path, "entries:\n"
                               + entry("greeting", "{customer_name}、担当の{agent_name}です。", title="最初のあいさつ")
                               + entry("address", "手順です。\n{faq:change-address}", title="住所変更の手順")
                               + entry("gone", "{faq:no-such-faq}", title="消えた FAQ")
                               + entry("greeting", "二つ目の greeting は使われません。"))
    monkeypatch.setenv("BOT_KNOWLEDGE_DIR", str(directory))
    get_settings.cache_clear()
    services = Services(stores_for(f"sqlite:///{tmp_path / 'bot.db'}"), None,  # type: ignore[arg-type]
                        ConversationTokens(SECRET))
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    yield TestClient(create_app(services, SECRET)), services  # no lifespan: no ticket watcher needed
    get_settings.cache_clear()


def ticket(services: Services, customer: dict[str, str]) -> int:
    filed, _ = services.stores.queue.enqueue(HandoffPacket(f"k-{len(customer)}", f"c-{len(customer)}",
                                                           ["human_request"], [Turn("customer", "人と話したい")],
                                                           customer=customer))
    return int(filed.id)


def test_api_needs_login(client: tuple[TestClient, Services]) -> None:
    http, services = client
    number = ticket(services, {"name": "山田 太郎"})
    response = http.get(f"/api/tickets/{number}/canned")
    assert response.status_code == 401 and response.json()["error"] == "ログインしてください。"


def test_api_fills_in_customer_agent_and_faq(client: tuple[TestClient, Services]) -> None:
    http, services = client
    named = ticket(services, {"name": "<b>山田</b> 太郎"})
    anonymous = ticket(services, {})
    assert http.post("/api/agent/login", json={"username": "sato", "password": PASSWORD}).status_code == 200
    data = http.get(f"/api/tickets/{named}/canned").json()
    replies = {r["shortcut"]: r for r in data["replies"]}
    assert list(replies) == ["greeting", "address"]  # the unknown FAQ and the second greeting are left out
    assert replies["greeting"] == {"shortcut": "greeting", "title": "最初のあいさつ",
                                   "text": "<b>山田</b> 太郎さま、担当の佐藤です。"}  # as written: never escaped here
    answer = next(f for f in data["faqs"] if f["id"] == "change-address")
    assert replies["address"]["text"] == "手順です。\n" + answer["text"]
    assert answer["title"] == "住所を変更したい" and "▶ マイページはこちら: https://" in answer["text"]
    assert len(data["faqs"]) == len(load_knowledge(KNOWLEDGE).entries)
    other = http.get(f"/api/tickets/{anonymous}/canned").json()
    assert other["replies"][0]["text"] == "お客さま、担当の佐藤です。"


def test_api_unknown_ticket_is_404_in_japanese(client: tuple[TestClient, Services]) -> None:
    http, _ = client
    http.post("/api/agent/login", json={"username": "sato", "password": PASSWORD})
    response = http.get("/api/tickets/999/canned")
    assert response.status_code == 404
    assert "999" in response.json()["error"] and "ありません" in response.json()["error"]
    assert http.get("/api/tickets/99999999999999999999/canned").status_code == 404


def test_api_is_in_the_openapi_description(client: tuple[TestClient, Services]) -> None:
    http, _ = client
    assert "/api/tickets/{ticket_id}/canned" in http.get("/openapi.json").json()["paths"]
