"""WCAG 2.1 AA checks with axe-core (npm, pinned in package-lock.json, installed by `make setup`).

axe-core is injected with Playwright into the widget on the demo page, the agent console (with a
ticket open) and the analytics page of a real stack; each must have 0 violations. A page with a
deliberately low-contrast text must fail, so the check cannot pass by checking nothing.
The same realistic conversation (an FAQ answer, a clarify, a handoff, the agent's reply) gives
the README's screenshots (docs/images/conversation-*.png, copied from results/screenshots/readme-*.png
with BOT_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from bot.settings import PROJECT_ROOT
from conftest import AGENT_PASSWORD, CHROMIUM, chromium, full_stack, missing_service, temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SHOTS = PROJECT_ROOT / "results" / "screenshots"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

if not CHROMIUM.exists():
    missing_service("!!! ACCESSIBILITY TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser`. !!!",
                    module_level=True)
if not AXE.exists():
    missing_service("!!! ACCESSIBILITY TESTS SKIPPED: node_modules/axe-core is missing. Run `make setup` "
                    "(needs npm). !!!", module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations of ``page`` as it is now (rule id, impact, elements)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate("""async (tags) => {
        const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                            nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}));
    }""", WCAG_21_AA)


def assert_accessible(page: Page) -> None:
    violations = axe_violations(page)
    assert violations == [], "\n".join(f"{v['id']} ({v['impact']}): {v['help']}\n  " + "\n  ".join(v["nodes"])
                                       for v in violations)


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("a11y")
    with temporary_database("sqlite", folder) as url, full_stack(trained_model, folder, url) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def new_page(browser: Browser, width: int = 1280, height: int = 900) -> Page:
    # The pages' CSP forbids inline scripts; axe-core is injected as one, so the test context bypasses it.
    return browser.new_context(viewport={"width": width, "height": height}, locale="ja-JP",
                               bypass_csp=True).new_page()


def send(page: Page, text: str) -> None:
    page.fill("#supportchat-input", text)
    page.press("#supportchat-input", "Enter")


@pytest.fixture(scope="module")
def conversation(browser: Browser, stack: Any) -> dict[str, Page]:
    """A customer is asked back, picks the FAQ on a button, asks for a person; an agent claims and replies."""
    customer = new_page(browser, 1280, 900)
    customer.goto(stack.server_url + "/")
    customer.click("#supportchat-launcher")
    bots = customer.locator("#supportchat-messages .sc-msg-bot")
    send(customer, "登録内容を変えたい")
    button = customer.locator(".sc-quick-reply", has_text="住所を変更したい")
    expect(button).to_be_visible(timeout=30_000)  # asked back: the likeliest FAQ titles as buttons
    SHOTS.mkdir(parents=True, exist_ok=True)
    panel = customer.locator("#supportchat-panel")
    panel.screenshot(path=str(SHOTS / "readme-1-clarify.png"))
    button.click()
    expect(bots.last).to_contain_text("マイページ", timeout=30_000)
    expect(customer.locator(".sc-feedback").last).to_be_visible(timeout=10_000)
    panel.screenshot(path=str(SHOTS / "readme-2-answer.png"))
    send(customer, "担当の方と話したいです")
    expect(customer.locator("#supportchat-banner")).to_contain_text("担当者におつなぎしています", timeout=30_000)

    console = new_page(browser, 1280, 1000)
    console.goto(stack.server_url + "/console/")
    console.fill("#login-username", "sato")
    console.fill("#login-password", AGENT_PASSWORD)
    console.click("#login-submit")
    item = console.locator("#ticket-list [data-ticket-id]").first
    expect(item).to_be_visible(timeout=10_000)
    item.click()
    expect(console.locator("#transcript")).to_contain_text("住所", timeout=10_000)
    console.click("#claim")
    console.fill("#reply-text", "お待たせいたしました。担当の佐藤です。ご住所の変更について、お手伝いいたします。")
    console.click("#reply-send")
    expect(customer.locator("#supportchat-messages .sc-msg-agent").last).to_contain_text("佐藤", timeout=10_000)
    expect(console.locator("#transcript")).to_contain_text("ボットの判定", timeout=10_000)
    panel.screenshot(path=str(SHOTS / "readme-3-handoff.png"))
    console.evaluate("() => window.scrollTo(0, 0)")
    console.screenshot(path=str(SHOTS / "readme-4-console.png"))
    return {"customer": customer, "console": console}


def test_widget_has_no_wcag_21_aa_violations(conversation: dict[str, Page]) -> None:
    assert_accessible(conversation["customer"])


def test_console_has_no_wcag_21_aa_violations(conversation: dict[str, Page]) -> None:
    assert_accessible(conversation["console"])


def test_analytics_page_has_no_wcag_21_aa_violations(conversation: dict[str, Page], stack: Any) -> None:
    page = conversation["console"].context.new_page()
    page.goto(stack.server_url + "/console/analytics.html")
    expect(page.locator("#reasons-table")).to_contain_text("担当者", timeout=15_000)
    assert_accessible(page)


def test_the_check_fails_on_an_injected_contrast_violation(conversation: dict[str, Page]) -> None:
    page = conversation["customer"]
    page.evaluate("""() => {
        const p = document.createElement('p');
        p.id = 'injected-low-contrast';
        p.textContent = '薄すぎて読めない文字';
        p.style.cssText = 'color: #c8c8c8; background: #ffffff; font-size: 14px;';
        document.querySelector('main').appendChild(p);
    }""")
    try:
        violations = axe_violations(page)
        assert [v["id"] for v in violations] == ["color-contrast"]
        assert any("#injected-low-contrast" in node for node in violations[0]["nodes"])
        with pytest.raises(AssertionError, match="color-contrast"):
            assert_accessible(page)
    finally:
        page.evaluate("() => document.getElementById('injected-low-contrast').remove()")


def test_readme_screenshots_of_a_realistic_conversation(conversation: dict[str, Page]) -> None:
    """Taken while the conversation ran (clarify, FAQ answer, handoff + agent reply, console)."""
    import os
    import shutil

    names = ("readme-1-clarify.png", "readme-2-answer.png", "readme-3-handoff.png", "readme-4-console.png")
    for name in names:
        assert (SHOTS / name).stat().st_size > 10_000
    if os.environ.get("BOT_UPDATE_SCREENSHOTS") == "1":  # refresh the README's copies
        for name in names:
            shutil.copy(SHOTS / name, PROJECT_ROOT / "docs" / "images" / name.replace("readme-", "conversation-"))
