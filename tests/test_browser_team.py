"""A small team in real browsers: two agents and four customers (Debian's Chromium via Playwright; #14 Proof).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked). sato (admin, cap 2,
every category) and suzuki (agent, cap 1, only 登録情報の変更) work in two consoles; four
customers each have the widget open, and their handoffs are filed straight into the queue, as
the action server files them. In one run:

1. sato sets the offer timeout to 3 s on 対応の設定 (keyboard) and the caps and skills by the
   admin API.
2. The offer times out to the next agent: customer 1's ticket is offered to suzuki, who lets it
   run out; it goes to sato, who takes it.
3. Caps and skills: customer 2 (anger, サービスについて: high priority) goes to sato's last slot,
   customer 3 (登録情報の変更) to suzuki; customer 4 (サービスについて) is offered to nobody while
   both are full (suzuki lacks the skill), and to sato as soon as a slot frees.
4. A canned reply by keyboard and an IME commit (「/」 + 「あいさつ」, Enter) reaches customer 2's
   widget with the customer's and agent's names filled in.
5. CSAT: suzuki resolves customer 3's chat; the customer rates it by keyboard; stored for suzuki.
6. A take-over: sato has not replied to customer 1 for 5 minutes (the desk's clock moved); suzuki
   takes the chat over, and customer 1's widget says who answers now.
7. The audit log (監査ログ) lists every step: the setting, claims, the reply, the take-over, the
   resolve. A customer name with HTML stays text everywhere. axe-core finds no WCAG 2.1 AA
   violation on the consoles.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import CHROMIUM, missing_service

pytestmark = [pytest.mark.browser]

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

from test_browser_canned import SilentRasa  # noqa: E402
from test_browser_desk import XSS_NAME, assert_accessible, browser, console  # noqa: E402,F401
from test_fuzz_inputs import uvicorn_server  # noqa: E402
from test_server import PASSWORD, SECRET  # noqa: E402

REGISTRATION, SERVICE = "登録情報の変更", "サービスについて"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from bot.server.app import Services, stores_for
    from bot.server.tokens import ConversationTokens
    from bot.settings import Limits

    folder: Path = tmp_path_factory.mktemp("team-browser")
    # The four customers share 127.0.0.1: no per-address limits (one address, one customer, normally).
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), SilentRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET), escalate_after_seconds=0,
                        limits=Limits(sessions_per_address_per_hour=0, open_tickets_per_customer=0))
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    services.stores.agents.add("suzuki", "鈴木", PASSWORD)
    with uvicorn_server(services) as port:
        yield f"http://127.0.0.1:{port}", services


def widget(browser: Browser, url: str) -> tuple[Page, str]:
    """A customer with the widget open on the demo page; their conversation id."""
    page = browser.new_context(viewport={"width": 1000, "height": 900}, locale="ja-JP").new_page()
    page.goto(url + "/")
    page.click("#supportchat-launcher")
    expect(page.locator("#supportchat-input")).to_be_visible(timeout=10_000)
    page.wait_for_function("() => !!localStorage.getItem('supportchat.session')", timeout=10_000)
    return page, str(page.evaluate("() => JSON.parse(localStorage.getItem('supportchat.session')).conversation_id"))


def hand_off(services: Any, conversation: str, name: str, category: str, reasons: list[str]) -> int:
    """The customer's handoff, filed as the action server files it."""
    from bot.handoff.packet import HandoffPacket, Turn

    packet = HandoffPacket(f"{conversation}:1", conversation, reasons, [Turn("customer", "担当者と話したい")],
                           category=category, customer={"name": name})
    return int(services.stores.queue.enqueue(packet)[0].id)


def offer(page: Page, ticket: int) -> Any:
    return page.locator(f'#desk-offer-list [data-ticket-id="{ticket}"]')


def within_caps(services: Any) -> None:
    """No agent holds more chats and offers than their cap (read from the database)."""
    for name in ("sato", "suzuki"):
        agent = services.stores.desk.agent(name)
        assert agent.chats + agent.offers <= agent.max_chats, agent


def test_two_agents_four_customers(browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    sato = console(browser, url, "sato")
    suzuki = console(browser, url, "suzuki")

    # 1. The admin's settings: a 3 s offer timeout (keyboard), caps and skills.
    sato.click("#desk-settings-link")
    field = sato.get_by_label("割り当ての応答待ち（秒）")
    field.fill("3")
    field.press("Enter")
    expect(sato.locator("#settings-status")).to_have_text("「割り当ての応答待ち」を 3秒 にしました。")
    csrf = sato.request.get(url + "/api/agent/me").json()["csrf_token"]
    for name, body in (("sato", {"max_chats": 2, "skills": []}), ("suzuki", {"max_chats": 1, "skills": [REGISTRATION]})):
        answer = sato.request.post(f"{url}/api/admin/agents/{name}", data=body, headers={"X-CSRF-Token": csrf})
        assert answer.ok, answer.text()
    sato.goto(url + "/console/")
    expect(sato.locator("#desk-bar")).to_be_visible(timeout=10_000)

    customers = [widget(browser, url) for _ in range(4)]
    conversations = [c for _, c in customers]

    # 2. Only suzuki is available: customer 1's ticket is offered to suzuki, who lets it run out.
    suzuki.select_option("#desk-status", "available")
    first = hand_off(services, conversations[0], "田中 一郎", REGISTRATION, ["human_request"])
    expect(offer(suzuki, first)).to_be_visible(timeout=10_000)
    sato.select_option("#desk-status", "available")
    expect(offer(sato, first)).to_be_visible(timeout=15_000)  # the next agent, after 3 s
    expect(offer(suzuki, first)).to_be_hidden()
    offer(sato, first).locator(".desk-accept").click()
    expect(sato.locator("#detail-title")).to_contain_text(str(first), timeout=10_000)
    expect(customers[0][0].locator("#supportchat-messages .sc-msg-system").last).to_contain_text("佐藤", timeout=10_000)

    # 3. Caps and skills.
    second = hand_off(services, conversations[1], XSS_NAME, SERVICE, ["anger"])
    third = hand_off(services, conversations[2], "山本 花子", REGISTRATION, ["human_request"])
    fourth = hand_off(services, conversations[3], "小林 次郎", SERVICE, ["human_request"])
    expect(offer(sato, second)).to_be_visible(timeout=10_000)
    expect(offer(suzuki, third)).to_be_visible(timeout=10_000)
    offer(sato, second).locator(".desk-accept").click()
    expect(sato.locator("#detail-title")).to_contain_text(str(second), timeout=10_000)
    offer(suzuki, third).locator(".desk-accept").click()
    expect(suzuki.locator("#detail-title")).to_contain_text(str(third), timeout=10_000)
    for _ in range(3):  # both full: customer 4 waits, offered to nobody (suzuki lacks the skill)
        time.sleep(1.0)
        waiting = services.stores.queue.get(fourth, False)
        assert (waiting.status, waiting.offered_to) == ("waiting", None)
        within_caps(services)
    expect(sato.locator("#desk-load")).to_have_text("対応中 2 / 2")
    expect(suzuki.locator("#desk-load")).to_have_text("対応中 1 / 1")
    assert sato.evaluate("() => window.__xss") is None
    assert_accessible(sato)

    # 4. A canned reply by keyboard with an IME commit, into customer 2's widget.
    sato.focus("#reply-text")
    sato.keyboard.type("/")
    sato.keyboard.insert_text("あいさつ")  # text without key events, as an IME commits it
    expect(sato.locator("#canned-list [role=option]").first).to_contain_text("最初のあいさつ", timeout=10_000)
    sato.keyboard.press("Enter")
    expect(sato.locator("#reply-text")).to_have_value(
        f"{XSS_NAME}さま、お待たせいたしました。担当の佐藤です。\nお問い合わせの内容を確認いたしますので、少々お待ちください。")
    sato.keyboard.press("Enter")
    expect(customers[1][0].locator("#supportchat-messages .sc-msg-agent").last).to_contain_text(
        "担当の佐藤です", timeout=10_000)

    # 5. CSAT: suzuki resolves customer 3's chat; the customer rates it 5 by keyboard.
    suzuki.click("#resolve")
    rate = customers[2][0]
    expect(rate.locator("#supportchat-after")).to_be_visible(timeout=10_000)
    ratings = rate.locator(".sc-survey-rating")
    ratings.nth(4).focus()
    rate.keyboard.press("Space")
    rate.focus("#supportchat-survey-submit")
    rate.keyboard.press("Enter")
    expect(rate.locator("#supportchat-survey-done")).to_be_visible(timeout=10_000)
    from bot.store.csat import Surveys

    stored = Surveys(services.stores.engine).for_ticket(third)
    assert (stored.rating, stored.agent) == (5, "suzuki")

    # 6. A take-over: sato has not answered customer 1 for 5 minutes; suzuki (a free slot now) takes over.
    services.stores.desk.clock = lambda: time.time() + 5 * 60 + 1
    try:
        late = suzuki.locator(f'#desk-overdue-list [data-ticket-id="{first}"]')
        expect(late).to_be_visible(timeout=15_000)
        late.locator(".desk-open").click()
        suzuki.click("#takeover")
        expect(suzuki.locator("#reply-form")).to_be_visible(timeout=10_000)
    finally:
        services.stores.desk.clock = time.time
    expect(customers[0][0].locator("#supportchat-messages .sc-msg-system").last).to_contain_text(
        "担当者が交代します。ここからは鈴木が担当いたします。", timeout=10_000)
    assert_accessible(suzuki)

    # sato's slot is free again: customer 4 is offered to sato at last.
    expect(offer(sato, fourth)).to_be_visible(timeout=10_000)
    within_caps(services)

    # 7. The audit log lists every step.
    sato.goto(url + "/console/audit.html")
    expect(sato.locator("#audit-rows tr").first).to_be_visible(timeout=10_000)
    text = sato.locator("#audit-rows").inner_text()
    for label in ("対応の設定の変更（コンソール）", "担当者の設定変更", "対応開始", "お客さまへの返信",
                  "引き継ぎ（交代）", "解決"):
        assert label in text, label
    assert sato.evaluate("() => window.__xss") is None
