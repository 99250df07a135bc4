"""The widget and the agent console in a real browser (Debian's Chromium, headless, via Playwright).

Everything real: Rasa server, action server, bot server on SQLite. Screenshots go to
results/screenshots/ (they show the XSS and paging fixtures; the README's screenshots of a realistic
conversation are taken by tests/test_accessibility.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from bot.handoff.reasons import REASON_LABELS
from bot.settings import PROJECT_ROOT
from conftest import (AGENT_PASSWORD, CHROMIUM, chromium, full_stack, missing_service, staffed_knowledge,
                      temporary_database)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

SHOTS = PROJECT_ROOT / "results" / "screenshots"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'

# A long FAQ answer (imported FAQ sheets have answers of up to 1,500 characters): the widget shows
# its first line (284 characters, the line break nearest 300) and folds the rest. Markup and a
# javascript: "URL" inside must stay text; the http(s) URLs must stay links, folded or not.
LONG_HEAD = ("AIチャット（このチャット）は24時間ご利用いただけます。"
             "有人チャットとお電話（0120-000-123）の受付時間は、平日 9:00〜18:00 です。"
             '<img src=x onerror="window.__xss=3">'
             "営業日のカレンダーは https://members.mirai-net.example/calendar でご確認いただけます。"
             "お昼休み（12:00〜13:00）の時間帯もお電話を受け付けておりますが、月曜日の午前中と月末は大変混み合います。"
             "お急ぎでない場合は、火曜日から木曜日の午後にお電話いただくと、比較的つながりやすくなっております。")
LONG_TAIL = ("土日祝日と年末年始（12月29日〜1月3日）、夏季休業日（8月13日〜8月15日）はお休みをいただいております。"
             "休業日の前後はお問い合わせが集中するため、お電話がつながりにくくなることがあります。\n"
             "メールおよびお問い合わせフォームは24時間受け付けており、2営業日以内にご返信いたします。"
             "受付時間外のお問い合わせは、フォームからお送りいただければ翌営業日から順次対応いたします。"
             "休業日をはさむ場合は、ご返信までにお時間をいただくことがあります。"
             '<img src=x onerror="window.__xss=4">'
             "javascript:window.__xss=5 のような文字列はリンクになりません。\n"
             "有人チャットは、平日 9:00〜18:00 の受付時間内であれば、このチャットで「担当者と話したい」と送っていただくとおつなぎします。"
             "受付時間外に「担当者と話したい」と送っていただいた場合は、ご連絡先を伺い、翌営業日に担当者よりご連絡いたします。"
             "担当者の対応状況によっては、順番にご案内するためお待ちいただくことがあります。"
             "お待ちいただいている間も、このチャットでの自動応答はご利用いただけます。\n"
             "ご契約内容の確認や変更のお手続きは、会員ページから24時間いつでも行っていただけます。"
             "会員ページのご利用方法でご不明な点がありましたら、受付時間内にお電話またはチャットでお問い合わせください。"
             "以上が営業時間のご案内です。")
LONG_ANSWER = LONG_HEAD + "\n" + LONG_TAIL
# The hours entry's link, appended by the bot as a last line.
LONG_MESSAGE = LONG_ANSWER + "\n▶ お問い合わせフォームはこちら: https://members.mirai-net.example/contact"
assert 240 < len(LONG_HEAD) < 330 and "\n" not in LONG_HEAD and 850 < len(LONG_ANSWER) < 1000

if not CHROMIUM.exists():
    missing_service("!!! BROWSER TESTS SKIPPED: /usr/bin/chromium is missing. Run `make browser` "
                    "(as root with apt-get) to install Debian's Chromium. !!!", module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("browser")
    with temporary_database("sqlite", folder) as url, full_stack(trained_model, folder, url) as running:
        yield running


def long_answer_knowledge(target: Path) -> Path:
    """A staffed copy of knowledge/ whose ``hours`` answer is :data:`LONG_ANSWER`."""
    staffed_knowledge(target)
    path = target / "faq" / "service.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    [hours] = [entry for entry in data["entries"] if entry["id"] == "hours"]
    hours["answer"] = LONG_ANSWER
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000), encoding="utf-8")
    return target


@pytest.fixture()
def long_answer_stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Its own stack (the shared one keeps the real answers), on :func:`long_answer_knowledge`."""
    folder = tmp_path_factory.mktemp("browser-long")
    knowledge = long_answer_knowledge(folder / "knowledge")
    with temporary_database("sqlite", folder) as url, full_stack(trained_model, folder, url, knowledge) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def open_widget(browser: Browser, stack: Any, width: int = 1280) -> Page:
    page = browser.new_context(viewport={"width": width, "height": 800}, locale="ja-JP").new_page()
    page.goto(stack.server_url + "/")
    page.click("#supportchat-launcher")
    expect(page.locator("#supportchat-panel")).to_be_visible()
    return page


def send(page: Page, text: str) -> None:
    page.fill("#supportchat-input", text)
    page.press("#supportchat-input", "Enter")


def bot_messages(page: Page) -> Any:
    return page.locator("#supportchat-messages .sc-msg-bot")


def test_faq_answer_feedback_clarify_and_history_after_reload(browser: Browser, stack: Any) -> None:
    page = open_widget(browser, stack)
    send(page, "住所を変更したいです")
    expect(bot_messages(page).last).to_contain_text("住所変更", timeout=30_000)
    expect(page.locator(".sc-feedback-yes").last).to_be_visible()
    expect(bot_messages(page).last.locator("a[href^='https://']").first).to_be_visible()  # links: http(s) only
    page.locator(".sc-feedback-yes").last.click()
    expect(page.locator("#supportchat-messages")).to_contain_text("ご回答ありがとうございます", timeout=10_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "widget.png"))

    send(page, "・・・")  # no words: the bot asks back with FAQ buttons
    expect(page.locator(".sc-quick-reply").first).to_be_visible(timeout=30_000)
    title = page.locator(".sc-quick-reply").first.inner_text()
    before = bot_messages(page).count()
    page.locator(".sc-quick-reply").first.click()
    expect(page.locator("#supportchat-messages .sc-msg-customer").last).to_contain_text(title)
    expect(bot_messages(page)).to_have_count(before + 1, timeout=30_000)

    customer_before = page.locator("#supportchat-messages .sc-msg-customer").count()
    page.reload()
    page.click("#supportchat-launcher") if not page.locator("#supportchat-panel").is_visible() else None
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(customer_before, timeout=15_000)
    expect(page.locator("#supportchat-messages")).to_contain_text("住所を変更したいです")


def test_enter_while_ime_is_composing_never_sends(browser: Browser, stack: Any) -> None:
    page = open_widget(browser, stack)
    page.fill("#supportchat-input", "じゅうしょ")
    # The widget handles keydown synchronously: had an Enter sent the text, it would be on screen
    # (waiting to be sent) and the event's default prevented as soon as dispatchEvent returns.
    composing = page.evaluate("""() => {
        const input = document.querySelector('#supportchat-input');
        input.dispatchEvent(new CompositionEvent('compositionstart', {data: ''}));
        const prevented = [229, 13].map((keyCode) => {
            const enter = new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', keyCode, isComposing: true,
                                                        bubbles: true, cancelable: true});
            input.dispatchEvent(enter);
            return enter.defaultPrevented;
        });
        return {prevented, shown: document.querySelectorAll('#supportchat-messages .sc-msg-customer').length};
    }""")
    assert composing == {"prevented": [False, False], "shown": 0}
    assert page.input_value("#supportchat-input") == "じゅうしょ"
    # Safari sends the confirming Enter just after compositionend (not composing any more): no send either.
    safari = page.evaluate("""() => {
        const input = document.querySelector('#supportchat-input');
        input.dispatchEvent(new CompositionEvent('compositionend', {data: '住所'}));
        const enter = new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', keyCode: 13, bubbles: true,
                                                    cancelable: true});
        input.dispatchEvent(enter);
        return {prevented: enter.defaultPrevented, ended: Date.now(),
                shown: document.querySelectorAll('#supportchat-messages .sc-msg-customer').length};
    }""")
    assert (safari["prevented"], safari["shown"]) == (False, 0)
    # A later Enter is the customer's own: wait until the page's clock is past that moment.
    page.wait_for_function("ended => Date.now() - ended > 50", arg=safari["ended"], timeout=5_000)
    page.press("#supportchat-input", "Shift+Enter")
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(0)
    assert page.input_value("#supportchat-input") == "じゅうしょ\n"
    page.press("#supportchat-input", "Enter")
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(1, timeout=10_000)


def test_html_in_messages_is_shown_as_text_and_never_runs(browser: Browser, stack: Any) -> None:
    page = open_widget(browser, stack, width=360)  # phone width
    send(page, XSS)
    expect(page.locator("#supportchat-messages .sc-msg-customer").last).to_contain_text("<script>", timeout=10_000)
    expect(bot_messages(page).last).to_be_visible(timeout=30_000)
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("#supportchat-messages img").count() == 0
    box = page.locator("#supportchat-panel").bounding_box()
    assert box is not None and box["width"] <= 360


def test_handoff_agent_reply_and_back_to_the_bot(browser: Browser, stack: Any) -> None:
    customer = open_widget(browser, stack)
    send(customer, "何度も問い合わせてるのに返事がない、ふざけるな " + XSS)
    banner = customer.locator("#supportchat-banner")
    expect(banner).to_contain_text("担当者におつなぎしています", timeout=30_000)
    expect(customer.locator("#supportchat-cancel")).to_be_visible()

    console = browser.new_context(viewport={"width": 1280, "height": 1280}, locale="ja-JP").new_page()
    console.goto(stack.server_url + "/console/")
    console.fill("#login-username", "sato")
    console.fill("#login-password", AGENT_PASSWORD)
    console.click("#login-submit")
    item = console.locator("#ticket-list [data-ticket-id]").first
    expect(item).to_be_visible(timeout=10_000)
    expect(item).to_contain_text("高")
    item.click()
    expect(console.locator("#transcript")).to_contain_text("<script>", timeout=10_000)  # shown as text
    console.click("#claim")
    expect(banner).to_contain_text("佐藤", timeout=10_000)

    send(customer, "まだですか")
    expect(console.locator("#transcript")).to_contain_text("まだですか", timeout=10_000)
    console.fill("#reply-text", "お待たせしました。担当の佐藤です。")
    console.click("#reply-send")
    agent_bubble = customer.locator("#supportchat-messages .sc-msg-agent").last
    expect(agent_bubble).to_contain_text("お待たせしました", timeout=10_000)
    expect(agent_bubble).to_contain_text("佐藤")
    SHOTS.mkdir(parents=True, exist_ok=True)
    console.evaluate("() => window.scrollTo(0, 0)")  # the queue column is sticky
    console.screenshot(path=str(SHOTS / "console.png"))
    customer.screenshot(path=str(SHOTS / "widget-agent.png"))
    assert console.evaluate("() => window.__xss") is None and customer.evaluate("() => window.__xss") is None

    console.click("#resolve")
    expect(banner).to_be_hidden(timeout=10_000)
    expect(customer.locator("#supportchat-messages")).to_contain_text("AIチャット", timeout=10_000)
    answers = bot_messages(customer).count()
    send(customer, "営業時間を教えてください")
    expect(bot_messages(customer)).to_have_count(answers + 1, timeout=30_000)
    expect(bot_messages(customer).last).to_contain_text("平日")

    # The editors' analytics page (same login) counts this handoff and escapes customer text.
    console.goto(stack.server_url + "/console/analytics.html")
    # 「ふざけるな」: the editors' angry words make the reason anger (bot/triage/routing.py).
    expect(console.locator("#reasons-table")).to_contain_text(REASON_LABELS["anger"], timeout=15_000)
    expect(console.locator("#summary")).to_be_visible()
    assert console.evaluate("() => window.__xss") is None


def test_double_send_and_a_message_written_while_the_server_is_down(browser: Browser, stack: Any) -> None:
    from bot.launcher import _wait_http

    page = open_widget(browser, stack)
    customers = page.locator("#supportchat-messages .sc-msg-customer")
    page.fill("#supportchat-input", "料金を知りたい")
    page.dblclick("#supportchat-send")
    expect(bot_messages(page)).to_have_count(1, timeout=30_000)
    expect(customers).to_have_count(1)

    stack.stop_server()  # the bot server crashes
    expect(page.locator("#supportchat-status")).to_contain_text("接続", timeout=20_000)
    send(page, "解約したいです")
    expect(customers).to_have_count(2)  # shown at once as waiting to be sent, not lost
    server, log = stack.start_server()
    _wait_http(f"{stack.server_url}/healthz", server, 60, log)
    expect(bot_messages(page)).to_have_count(2, timeout=40_000)  # delivered after the reconnect
    page.reload()
    page.click("#supportchat-launcher") if not page.locator("#supportchat-panel").is_visible() else None
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(2, timeout=15_000)
    expect(page.locator("#supportchat-messages .sc-msg-customer", has_text="解約したいです")).to_have_count(1)


def test_keyboard_only_and_labelled_controls(browser: Browser, stack: Any) -> None:
    page = browser.new_context(viewport={"width": 360, "height": 740}, locale="ja-JP").new_page()
    page.goto(stack.server_url + "/")
    page.focus("#supportchat-launcher")
    page.keyboard.press("Enter")
    expect(page.locator("#supportchat-panel")).to_be_visible()
    page.locator("#supportchat-input").focus()
    page.keyboard.type("営業時間を知りたい")
    page.keyboard.press("Enter")
    expect(bot_messages(page).last).to_contain_text("平日", timeout=30_000)
    assert page.get_attribute("#supportchat-messages", "aria-live") == "polite"
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('#supportchat-root button, #supportchat-root textarea, #supportchat-root input')]
        .filter(el => el.offsetParent !== null)
        .filter(el => !(el.getAttribute('aria-label') || el.textContent.trim() || (el.id && document.querySelector(`label[for="${el.id}"]`))))
        .map(el => el.outerHTML)""")
    assert unlabelled == []
    outline = page.evaluate("""() => { const b = document.querySelector('#supportchat-send'); b.focus();
        const s = getComputedStyle(b); return s.outlineStyle + ' ' + s.outlineWidth + ' ' + s.boxShadow; }""")
    assert "none 0px none" not in outline  # a visible focus indicator


def visible_text(locator: Any) -> str:
    """What the customer sees (innerText leaves out hidden elements), without edge whitespace."""
    return str(locator.inner_text()).strip()


def test_long_answer_is_folded_read_more_expands_and_close_folds_it(browser: Browser,
                                                                    long_answer_stack: Any) -> None:
    page = open_widget(browser, long_answer_stack, width=360)  # phone width: the longest bubble
    send(page, "営業時間を教えてください")
    message = bot_messages(page).last
    toggle = message.locator("button.sc-fold-toggle")
    expect(toggle).to_be_visible(timeout=30_000)
    bubble = message.locator(".sc-bubble")

    # Folded: the first line (the line break nearest 300 characters), 「…」 and 「続きを読む」.
    expect(toggle).to_have_text("続きを読む")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    assert visible_text(bubble) == LONG_HEAD + "…"
    rest = page.locator("#" + str(toggle.get_attribute("aria-controls")))
    expect(rest).to_have_count(1)
    expect(rest).to_be_hidden()
    calendar = bubble.locator("a[href='https://members.mirai-net.example/calendar']")
    expect(calendar).to_be_visible()  # links in the visible part work as before
    assert calendar.get_attribute("target") == "_blank" and calendar.get_attribute("rel") == "noopener noreferrer"
    folded_height = bubble.bounding_box()["height"]  # type: ignore[index]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "widget-folded.png"))

    # 「続きを読む」 with the keyboard: the whole answer, link line included, and 「閉じる」.
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_have_text("閉じる")
    expect(toggle).to_be_focused()
    expect(rest).to_be_visible()
    assert visible_text(bubble) == LONG_MESSAGE
    assert bubble.bounding_box()["height"] > 2 * folded_height  # type: ignore[index]
    expect(bubble.locator("a[href='https://members.mirai-net.example/contact']")).to_be_visible()
    assert bubble.locator("a").count() == 2  # javascript: is never a link
    page.screenshot(path=str(SHOTS / "widget-expanded.png"))

    # Markup in the answer is text, folded or not, and never ran.
    assert bubble.text_content().count('<img src=x onerror="window.__xss=') == 2  # type: ignore[union-attr]
    assert page.locator("#supportchat-messages img").count() == 0
    assert page.evaluate("() => window.__xss") is None

    # 「閉じる」 folds it again.
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_have_text("続きを読む")
    expect(rest).to_be_hidden()
    assert visible_text(bubble) == LONG_HEAD + "…"
    expect(toggle).to_be_in_viewport()

    # After a reload the history shows the answer folded the same way.
    page.reload()
    page.click("#supportchat-launcher") if not page.locator("#supportchat-panel").is_visible() else None
    message = bot_messages(page).last
    toggle = message.locator("button.sc-fold-toggle")
    expect(toggle).to_have_attribute("aria-expanded", "false", timeout=15_000)
    assert visible_text(message.locator(".sc-bubble")) == LONG_HEAD + "…"
    toggle.click()
    assert visible_text(message.locator(".sc-bubble")) == LONG_MESSAGE
    assert page.locator("#supportchat-messages img").count() == 0
    assert page.evaluate("() => window.__xss") is None


def test_folding_rules_for_bot_agent_and_customer_messages(browser: Browser, stack: Any) -> None:
    """Where the widget folds, on a history frame from a stand-in WebSocket (no NLU involved)."""
    url = "https://example.jp/" + "a" * 40
    texts = {
        1: ("customer", "い" * 500),                                # customer text: never folded
        2: ("bot", "う" * 350),                                      # not worth folding
        3: ("bot", "え" * 250 + "。" + "え" * 45 + "。" + "え" * 200),  # the sentence end nearest 300
        4: ("agent", "お" * 290 + " " + url + " " + "お" * 100),     # never cut inside a link
        5: ("bot", "か" * 400),                                      # no break near 300: cut at 300
    }
    history = {"type": "history", "state": {"mode": "bot"}, "messages": [
        {"id": i, "sender": sender, "text": text, "at": "2026-01-05T01:00:00+00:00",
         **({"agent_name": "佐藤"} if sender == "agent" else {})}
        for i, (sender, text) in texts.items()]}

    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP").new_page()
    page.route_web_socket(re.compile(r".*/ws/chat.*"), lambda ws: ws.send(json.dumps(history)))
    page.goto(stack.server_url + "/")
    page.click("#supportchat-launcher")
    messages = page.locator("#supportchat-messages [data-message-id]")
    expect(messages).to_have_count(len(texts), timeout=15_000)

    def shown(i: int) -> str:
        return visible_text(page.locator(f"[data-message-id='{i}'] .sc-bubble"))

    def toggle(i: int) -> Any:
        return page.locator(f"[data-message-id='{i}'] .sc-fold-toggle")

    for i in (1, 2):
        assert shown(i) == texts[i][1] and toggle(i).count() == 0
    assert shown(3) == "え" * 250 + "。" + "え" * 45 + "。…"
    assert shown(4) == "お" * 290 + "…"
    assert shown(5) == "か" * 300 + "…"
    for i in (3, 4, 5):
        expect(toggle(i)).to_have_attribute("aria-expanded", "false")
    link = page.locator("[data-message-id='4'] a")
    expect(link).to_be_hidden()
    toggle(4).click()
    expect(link).to_be_visible()
    assert link.get_attribute("href") == url and link.inner_text() == url
    assert shown(4) == texts[4][1]
    assert toggle(3).get_attribute("aria-expanded") == "false"  # each message on its own
    ids = [toggle(i).get_attribute("aria-controls") for i in (3, 4, 5)]
    assert len(set(ids)) == 3 and all(page.locator(f"#{x}").count() == 1 for x in ids)


def history_status(stack: Any, token: str) -> int:
    """Status of ``GET /api/chat/history`` with ``token`` (401 once the server refuses it)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(stack.server_url + "/api/chat/history",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_end_conversation_forgets_it_here_and_on_the_server(browser: Browser, stack: Any) -> None:
    """Security review #11: 「会話を終了」 on a shared PC; no token in URLs; page URL without its query."""
    import time

    from bot.server.app import stores_for

    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP").new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(stack.server_url + "/?email=hanako@example.jp#order-123")
    page.click("#supportchat-launcher")
    send(page, "住所を変更したいです")
    expect(bot_messages(page).last).to_contain_text("住所変更", timeout=30_000)
    session = page.evaluate("() => JSON.parse(localStorage.getItem('supportchat.session'))")
    token = session["token"]
    assert sockets and all("token" not in url and token not in url for url in sockets), sockets
    customer = stores_for(stack.env["DATABASE_URL"]).chat_log.customer_of(session["conversation_id"])
    assert customer["page_url"] == stack.server_url + "/"  # no query string, no fragment

    page.click("#supportchat-end")
    expect(page.locator("#supportchat-end-confirm")).to_be_visible()
    page.click("#supportchat-end-yes")
    expect(page.locator("#supportchat-messages")).to_contain_text("会話を終了しました")
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(0)
    expect(page.locator("#supportchat-end")).to_be_hidden()
    assert page.evaluate("() => localStorage.getItem('supportchat.session')") is None
    deadline = time.monotonic() + 10
    while history_status(stack, token) != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert history_status(stack, token) == 401  # the next person at this PC cannot read it

    page.reload()
    page.click("#supportchat-launcher") if not page.locator("#supportchat-panel").is_visible() else None
    # Opening the chat starts a new conversation: wait until its (empty) history has arrived.
    page.wait_for_function("""token => {
        const session = JSON.parse(localStorage.getItem('supportchat.session') || 'null');
        return session && session.token !== token
            && document.querySelector('#supportchat-status').textContent === '';
    }""", arg=token, timeout=15_000)
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(0)
    send(page, "営業時間を教えてください")  # a new conversation starts when needed
    expect(bot_messages(page).last).to_contain_text("平日", timeout=30_000)
    assert page.evaluate("() => JSON.parse(localStorage.getItem('supportchat.session')).token") != token


def test_console_pages_long_lists_and_transcripts_and_takes_over(browser: Browser, stack: Any) -> None:
    """Security review #11: paged list and transcript; a claimed ticket is taken over before it is resolved."""
    from bot.server.app import stores_for
    from bot.handoff.packet import HandoffPacket, Turn

    stores = stores_for(stack.env["DATABASE_URL"])
    stores.agents.add("suzuki", "鈴木", AGENT_PASSWORD)
    queue = stores.queue
    long, _ = queue.enqueue(HandoffPacket("paging-long:1", "paging-long", ["anger"],
                                          [Turn("customer", f"発言 {i:03d}") for i in range(130)],
                                          customer={"channel": "LINE", "name": "山田 花子"}))
    for i in range(55):
        queue.enqueue(HandoffPacket(f"paging-{i}:1", f"paging-{i}", ["human_request"], [Turn("customer", "質問")]))
    queue.claim(long.id, "sato")
    try:
        console = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP").new_page()
        console.goto(stack.server_url + "/console/")
        console.fill("#login-username", "suzuki")
        console.fill("#login-password", AGENT_PASSWORD)
        console.click("#login-submit")
        items = console.locator("#ticket-list [data-ticket-id]")
        expect(items).to_have_count(50, timeout=10_000)  # one page
        console.click("#list-more")
        expect(console.locator("#list-more")).to_be_hidden(timeout=10_000)
        assert items.count() >= 56

        # The channel next to the customer: 「LINE」 for LINE conversations, 「Web」 for the widget's.
        expect(console.locator(f"#ticket-list [data-ticket-id='{long.id}'] .badge-channel")).to_have_text("LINE")
        assert set(console.locator("#ticket-list .badge-channel").all_text_contents()) == {"LINE", "Web"}
        console.click(f"#ticket-list [data-ticket-id='{long.id}']")
        expect(console.locator("#customer-channel")).to_have_text("LINE")
        expect(console.locator("#customer-name")).to_have_text("山田 花子")
        entries = console.locator("#transcript li")
        expect(entries).to_have_count(100, timeout=10_000)  # the latest page
        expect(entries.last).to_contain_text("発言 129")
        console.click("#transcript-earlier")
        expect(entries).to_have_count(130, timeout=10_000)
        expect(entries.first).to_contain_text("発言 000")
        expect(console.locator("#transcript-earlier")).to_be_hidden()

        expect(console.locator("#claimed-note")).to_contain_text("佐藤 さんが対応中")
        expect(console.locator("#resolve")).to_be_hidden()  # not suzuki's ticket
        console.click("#takeover")
        expect(console.locator("#resolve")).to_be_visible(timeout=10_000)
        expect(entries.last).to_contain_text("鈴木さんが佐藤さんから対応を引き継ぎました。")
        console.click("#resolve")
        expect(console.locator("#detail-status")).to_have_text("解決済み", timeout=10_000)
        assert queue.get(long.id, with_entries=False).resolved_by == "suzuki"
    finally:
        for ticket in queue.tickets("open", limit=500):
            if ticket.conversation_id.startswith("paging-"):
                queue.resolve(ticket.id)
