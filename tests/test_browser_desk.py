"""The desk in the console, in a real browser (Debian's Chromium via Playwright; #14 item 1).

One bot server (uvicorn in a thread, SQLite, a Rasa stand-in never asked): sato (the first
agent, an admin) sets 対応可能, gets a ticket offered with its countdown, lets it go and accepts
the next; changes suzuki's cap and skills on the admin page (a cap of 0 refused in Japanese);
suzuki (an agent) is refused the admin page, sees sato's chat flagged when the reply is late and
takes it over (the customer reads one polite line). Names with HTML stay text; axe-core finds no
WCAG 2.1 AA violation on the desk panels and on the admin page.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from bot.settings import PROJECT_ROOT
from conftest import CHROMIUM, chromium, missing_service

pytestmark = [pytest.mark.browser]

AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
XSS_NAME = '<img src=x onerror="window.__xss=1">山田'

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402

from test_browser_canned import SilentRasa  # noqa: E402
from test_fuzz_inputs import uvicorn_server  # noqa: E402
from test_server import PASSWORD, SECRET  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from bot.server.app import Services, stores_for
    from bot.server.tokens import ConversationTokens

    folder: Path = tmp_path_factory.mktemp("desk-browser")
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), SilentRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET))
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    services.stores.agents.add("suzuki", XSS_NAME, PASSWORD)
    with uvicorn_server(services) as port:
        yield f"http://127.0.0.1:{port}", services


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def console(browser: Browser, url: str, username: str) -> Page:
    # axe-core is injected as an inline script: the test context bypasses the page's CSP.
    page = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP", bypass_csp=True).new_page()
    page.goto(url + "/console/")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#desk-bar")).to_be_visible(timeout=10_000)
    return page


def file_ticket(services: Any, key: str) -> int:
    from bot.handoff.packet import HandoffPacket, Turn

    packet = HandoffPacket(f"{key}:1", key, ["anger"], [Turn("customer", "担当者と話したい")],
                           category="登録情報の変更", customer={"name": XSS_NAME})
    return int(services.stores.queue.enqueue(packet)[0].id)


def assert_accessible(page: Page) -> None:
    if not AXE.exists():
        missing_service("!!! ACCESSIBILITY CHECK SKIPPED: node_modules/axe-core is missing. Run `make setup`. !!!")
    from test_accessibility import axe_violations

    violations = axe_violations(page)
    assert violations == [], violations


def test_offers_caps_admin_page_and_a_take_over(browser: Browser, server: tuple[str, Any]) -> None:
    url, services = server
    sato = console(browser, url, "sato")
    expect(sato.locator("#desk-status")).to_have_value("offline")
    expect(sato.locator("#desk-load")).to_have_text("対応中 0 / 3")
    expect(sato.locator("#desk-admin-link")).to_be_visible()
    first = file_ticket(services, "c-first")
    sato.select_option("#desk-status", "available")
    expect(sato.locator("#desk-note")).to_have_text("状態を「対応可能」にしました。")
    offer = sato.locator(f'#desk-offer-list [data-ticket-id="{first}"]')
    expect(offer).to_be_visible(timeout=10_000)
    expect(offer.locator(".desk-remaining")).to_contain_text("残り")
    expect(sato.locator("#desk-load")).to_contain_text("割り当て中 1 件")
    expect(sato.locator(f'#ticket-list [data-ticket-id="{first}"] .badge-offer')).to_have_text("割り当て: 佐藤")
    assert_accessible(sato)
    offer.locator(".desk-decline").click()
    expect(sato.locator("#desk-offers")).to_be_hidden(timeout=10_000)
    assert services.stores.queue.get(first, False).offered_to is None  # nobody else is available

    second = file_ticket(services, "c-second")
    offer = sato.locator(f'#desk-offer-list [data-ticket-id="{second}"]')
    expect(offer).to_be_visible(timeout=10_000)
    offer.locator(".desk-accept").click()
    expect(sato.locator("#detail-title")).to_contain_text(str(second), timeout=10_000)
    expect(sato.locator("#reply-form")).to_be_visible()
    expect(sato.locator("#desk-load")).to_have_text("対応中 1 / 3")

    # The admin page: a cap of 0 is refused with what is allowed; a cap and skills are saved.
    sato.click("#desk-admin-link")
    card = sato.locator('form[data-username="suzuki"]')
    expect(card).to_be_visible(timeout=10_000)
    expect(card.locator("legend").first).to_have_text(f"{XSS_NAME}（suzuki）")
    assert_accessible(sato)
    card.locator('input[type="number"]').fill("0")
    card.locator("button[type=submit]").click()
    expect(sato.locator("#alert")).to_contain_text("同時対応数は 1 から 20 までの整数", timeout=10_000)
    card.locator('input[type="number"]').fill("2")
    card.get_by_label("登録情報の変更").check()
    card.locator("button[type=submit]").click()
    expect(sato.locator("#agents-status")).to_contain_text("設定を保存しました", timeout=10_000)
    suzuki_desk = services.stores.desk.agent("suzuki")
    assert (suzuki_desk.max_chats, suzuki_desk.skills) == (2, ("登録情報の変更",))
    assert sato.evaluate("() => window.__xss") is None

    # An agent: no admin page; a late reply of sato's is flagged, and suzuki takes it over.
    suzuki = console(browser, url, "suzuki")
    expect(suzuki.locator("#desk-admin-link")).to_be_hidden()
    suzuki.goto(url + "/console/agents.html")
    expect(suzuki.locator("#alert")).to_have_text("この操作は管理者だけが行えます。管理者に依頼してください。",
                                                  timeout=10_000)
    suzuki.goto(url + "/console/")
    services.stores.desk.clock = lambda: time.time() + 5 * 60 + 1
    try:
        late = suzuki.locator(f'#desk-overdue-list [data-ticket-id="{second}"]')
        expect(late).to_be_visible(timeout=15_000)
        expect(late).to_contain_text("担当: 佐藤")
        assert_accessible(suzuki)
        late.locator(".desk-open").click()
        suzuki.click("#takeover")
        expect(suzuki.locator("#reply-form")).to_be_visible(timeout=10_000)
    finally:
        services.stores.desk.clock = time.time
    conversation = services.stores.queue.get(second, False).conversation_id
    lines = [m.text for m in services.stores.chat_log.history(conversation) if m.sender == "system"]
    assert lines[-1] == f"担当者が交代します。ここからは{XSS_NAME}が担当いたします。"
    assert suzuki.evaluate("() => window.__xss") is None
