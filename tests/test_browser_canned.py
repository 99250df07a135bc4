"""The console's canned-reply picker in a real browser (Debian's Chromium via Playwright).

Only the bot server runs (uvicorn in a thread, SQLite, a Rasa stand-in that is never asked):
the ticket is filed straight into the queue, the agent logs in, claims it and types 「/」 in the
reply box. Keyboard only: ↑↓ Enter Esc; a Japanese IME composition (Chrome DevTools Protocol
``Input.imeSetComposition``) never moves, picks or sends; axe-core finds no WCAG 2.1 AA
violation with the list open.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Iterator

import pytest

from bot.settings import PROJECT_ROOT
from conftest import CHROMIUM, chromium, missing_service

pytestmark = [pytest.mark.browser]

AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SECRET = "canned-browser-secret-" + "x" * 32
PASSWORD = "correct-horse-battery"
XSS_NAME = '<img src=x onerror="window.__xss=1">山田'

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402


class SilentRasa:
    """Rasa stand-in: the customer never writes in these tests."""

    async def send(self, conversation_id: str, text: str, metadata: dict[str, Any]) -> list[Any]:
        return []

    async def resume(self, conversation_id: str) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    import uvicorn

    from bot.server.app import Services, create_app, stores_for
    from bot.server.tokens import ConversationTokens

    folder = tmp_path_factory.mktemp("canned-browser")
    services = Services(stores_for(f"sqlite:///{folder / 'bot.db'}"), SilentRasa(),  # type: ignore[arg-type]
                        ConversationTokens(SECRET))
    services.stores.agents.add("sato", "佐藤", PASSWORD)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(create_app(services, SECRET, watch_interval=0.05), host="127.0.0.1",
                                       port=port, ws="wsproto", log_level="critical"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", services
    finally:
        uv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def claimed_ticket(browser: Browser, server: tuple[str, Any], customer: dict[str, str]) -> Page:
    """A new ticket of ``customer``, opened and claimed in the console; the reply box has the focus."""
    from bot.handoff.packet import HandoffPacket, Turn

    url, services = server
    ticket, _ = services.stores.queue.enqueue(HandoffPacket(
        f"canned-{time.monotonic_ns()}", f"conv-{time.monotonic_ns()}", ["human_request"],
        [Turn("customer", "住所を変えたいので担当の方と話したいです")], customer=customer))
    # axe-core is injected as an inline script: the test context bypasses the page's CSP.
    page = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP", bypass_csp=True).new_page()
    page.goto(url + "/console/")
    page.fill("#login-username", "sato")
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    item = page.locator(f'#ticket-list [data-ticket-id="{ticket.id}"]')
    expect(item).to_be_visible(timeout=10_000)
    item.click()
    page.click("#claim")
    expect(page.locator("#reply-form")).to_be_visible(timeout=10_000)
    page.focus("#reply-text")
    return page


def options(page: Page) -> Any:
    return page.locator("#canned-list [role=option]")


def selected_title(page: Page) -> str:
    return str(page.locator("#canned-list [aria-selected=true] .canned-title").inner_text())


def test_keyboard_picker_inserts_a_canned_reply_and_an_faq_answer(browser: Browser,
                                                                 server: tuple[str, Any]) -> None:
    from bot.knowledge.loader import load_knowledge

    page = claimed_ticket(browser, server, {"name": "山田 太郎"})
    expect(page.locator("#reply-hint")).to_contain_text("「/」に続けて入力すると")
    page.keyboard.type("/")
    expect(options(page).first).to_be_visible(timeout=10_000)
    expect(options(page)).to_have_count(6)  # every canned reply of knowledge/canned.yml, no FAQ yet
    assert selected_title(page) == "最初のあいさつ"
    assert page.get_attribute("#reply-text", "aria-activedescendant") == "canned-option-0"
    page.keyboard.press("ArrowDown")
    assert selected_title(page) == "確認のためお待ちいただく"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")  # wraps to the last
    assert selected_title(page) == "終わりのあいさつ"

    page.keyboard.type("gre")  # the shortcut narrows the list
    expect(options(page)).to_have_count(1)
    page.keyboard.press("Enter")
    expect(page.locator("#canned-list")).to_be_hidden()
    assert page.input_value("#reply-text") == ("山田 太郎さま、お待たせいたしました。担当の佐藤です。\n"
                                               "お問い合わせの内容を確認いたしますので、少々お待ちください。")
    expect(page.locator("#canned-status")).to_contain_text("「最初のあいさつ」を返信欄に入れました")
    assert page.locator("#transcript .entry-agent").count() == 0  # Enter picked; it did not send

    # Words of a title find canned replies and FAQ answers; Esc closes without changing the text.
    page.keyboard.press("Shift+Enter")  # a new line (Enter alone would send)
    page.keyboard.type("/esc")
    expect(page.locator("#canned-status")).to_contain_text("当てはまる定型文・FAQ はありません")
    expect(page.locator("#canned-status")).to_be_visible()
    page.keyboard.press("Enter")  # no match: 「/esc」 is not sent by mistake
    page.wait_for_timeout(500)  # a reply would be back by now (the server is local)
    assert page.locator("#transcript .entry-agent").count() == 0 and page.input_value("#reply-text").endswith("/esc")
    page.keyboard.press("Escape")
    expect(page.locator("#canned-list")).to_be_hidden()
    assert page.input_value("#reply-text").endswith("\n/esc")
    page.fill("#reply-text", "")
    page.keyboard.type("/")
    page.keyboard.insert_text("住所")  # text without key events, as an IME commits it
    expect(options(page).first).to_be_visible()
    titles = options(page).locator(".canned-title").all_inner_texts()
    assert titles[:2] == ["住所変更の手順", "住所を変更したい"]
    assert options(page).locator(".canned-kind").all_inner_texts()[:2] == ["定型文", "FAQ"]
    page.keyboard.insert_text("変更")  # 「/住所変更」: the title's characters in order find 「住所を変更したい」 too
    expect(options(page).locator(".canned-title")).to_have_text(["住所変更の手順", "住所を変更したい"])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    answer = load_knowledge(PROJECT_ROOT / "knowledge").get("change-address")
    value = page.input_value("#reply-text")
    assert value.startswith(answer.answer) and value.endswith("▶ マイページはこちら: https://members.mirai-net.example/mypage")

    # The reply goes out as written, and the transcript shows it as text.
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .entry-agent")).to_have_count(1, timeout=10_000)
    assert page.input_value("#reply-text") == ""


def test_ime_composition_never_moves_picks_or_sends(browser: Browser, server: tuple[str, Any]) -> None:
    page = claimed_ticket(browser, server, {})
    page.keyboard.type("/")
    expect(options(page)).to_have_count(6, timeout=10_000)
    cdp = page.context.new_cdp_session(page)
    # The agent converts 「じゅうしょ」 with a Japanese IME: composition events, keys with isComposing.
    cdp.send("Input.imeSetComposition", {"text": "じゅうしょ", "selectionStart": 5, "selectionEnd": 5})
    assert page.evaluate("() => document.getElementById('reply-text').value") == "/じゅうしょ"
    for key in ("ArrowDown", "Enter", "Escape", "Enter"):
        prevented = page.evaluate("""(key) => {
            const event = new KeyboardEvent('keydown', {key, bubbles: true, cancelable: true, isComposing: true});
            document.getElementById('reply-text').dispatchEvent(event);
            return event.defaultPrevented;
        }""", key)
        assert prevented is False, key  # the IME has the key: neither the picker nor the send button acts
    assert selected_title(page) == "最初のあいさつ"  # not moved
    expect(options(page)).to_have_count(6)  # not filtered while converting
    assert page.locator("#transcript .entry-agent").count() == 0
    # Even an Enter without the flag is left to the IME while the composition is open: not picked, not sent.
    page.evaluate("""() => document.getElementById('reply-text').dispatchEvent(
        new KeyboardEvent('keydown', {key: 'Enter', bubbles: true, cancelable: true}))""")
    page.wait_for_timeout(500)  # a reply would be back by now (the server is local)
    assert page.input_value("#reply-text") == "/じゅうしょ"
    assert page.locator("#transcript .entry-agent").count() == 0
    cdp.send("Input.insertText", {"text": "住所"})  # the conversion is confirmed
    expect(options(page).locator(".canned-title").first).to_have_text("住所変更の手順")
    page.keyboard.press("Enter")
    value = page.input_value("#reply-text")
    assert value.startswith("ご登録の住所の変更手順をご案内いたします。\nご登録の住所（お届け先）は")
    assert page.locator("#transcript .entry-agent").count() == 0


def test_texts_stay_text_and_the_open_list_passes_axe(browser: Browser, server: tuple[str, Any]) -> None:
    if not AXE.exists():
        missing_service("!!! ACCESSIBILITY CHECK SKIPPED: node_modules/axe-core is missing. Run `make setup`. !!!")
    from test_accessibility import axe_violations

    page = claimed_ticket(browser, server, {"name": XSS_NAME})
    page.keyboard.type("/cl")
    expect(options(page)).to_have_count(1, timeout=10_000)
    violations = axe_violations(page)
    assert violations == [], violations
    shots = PROJECT_ROOT / "results" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.locator("#reply-form").screenshot(path=str(shots / "console-canned.png"))
    page.keyboard.press("Enter")
    assert page.input_value("#reply-text").startswith(XSS_NAME + "さま、本日は")  # the name as written
    page.keyboard.press("Enter")
    expect(page.locator("#transcript .entry-agent .entry-text")).to_contain_text(XSS_NAME, timeout=10_000)
    assert page.evaluate("() => window.__xss") is None
    script = (PROJECT_ROOT / "bot" / "server" / "static" / "console" / "canned.js").read_text(encoding="utf-8")
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
