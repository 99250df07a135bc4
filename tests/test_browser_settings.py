"""対応の設定 in a real browser (Debian's Chromium via Playwright; #14: admins manage settings).

sato (an admin) opens the page from the desk link, sets the offer timeout by keyboard (type,
Enter), reads the confirmation and who changed it, is refused an out-of-range value with the
server's Japanese message (nothing changed), and puts the start value back. The desk of the
running server uses each value at once. suzuki (an agent) gets no link and is refused the
page. axe-core finds no WCAG 2.1 AA violation.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import CHROMIUM, missing_service

pytestmark = [pytest.mark.browser]

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, expect  # noqa: E402

from test_browser_desk import assert_accessible, browser, console, server  # noqa: E402,F401


def test_an_admin_sets_and_resets_the_offer_timeout(browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    start = services.stores.desk.start_offer_seconds
    sato = console(browser, url, "sato")
    sato.click("#desk-settings-link")
    offer = sato.locator('[data-setting="offer_seconds"]')
    expect(offer).to_be_visible(timeout=10_000)
    expect(offer.locator(".setting-facts")).to_contain_text(f"初期値: {start}秒（環境変数 BOT_DESK_OFFER_SECONDS）・初期値のまま")
    assert_accessible(sato)

    field = sato.get_by_label("割り当ての応答待ち（秒）")
    field.fill("45")
    field.press("Enter")
    expect(sato.locator("#settings-status")).to_have_text("「割り当ての応答待ち」を 45秒 にしました。")
    expect(sato.locator('[data-setting="offer_seconds"] .setting-facts')).to_contain_text("佐藤")
    assert services.stores.desk.offer_seconds == 45

    field = sato.get_by_label("割り当ての応答待ち（秒）")
    field.fill("5000")
    sato.locator('[data-setting="offer_seconds"] .setting-save').click()
    expect(sato.locator("#alert")).to_have_text(
        "「割り当ての応答待ち」には 0 から 3600 までの整数を秒で入力してください（入力: 5000）。")
    assert services.stores.desk.offer_seconds == 45

    sato.locator('[data-setting="offer_seconds"] .setting-reset').click()
    expect(sato.locator("#settings-status")).to_have_text(f"「割り当ての応答待ち」を初期値（{start}秒）に戻しました。")
    expect(sato.get_by_label("割り当ての応答待ち（秒）")).to_have_value(str(start))
    assert services.stores.desk.offer_seconds == start

    suzuki = console(browser, url, "suzuki")
    expect(suzuki.locator("#desk-settings-link")).to_be_hidden()
    suzuki.goto(url + "/console/settings.html")
    expect(suzuki.locator("#alert")).to_have_text("この操作は管理者だけが行えます。管理者に依頼してください。")
    expect(suzuki.locator("#settings-view")).to_be_hidden()
