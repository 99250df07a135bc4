"""The widget's options and moves, and the console's new-handoff alerts and notes, in a real browser.

Real servers (Rasa, action server, bot server on SQLite) unless a test says it stands in for the
WebSocket to reach a state the real server gives only slowly (a refused message). The shared
harness is tests/test_browser.py's; this module starts its own stacks: one staffed, whose server
lets the test shop's origin embed the widget, and one on a national holiday (nobody on duty).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from bot.server.app import stores_for
from bot.settings import PROJECT_ROOT
from bot.wording import widget_text
from conftest import AGENT_PASSWORD, OFFLINE_NOW, full_stack, temporary_database
from conftest import chromium
from test_browser import bot_messages, open_widget, send

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (test_browser skips without Chromium)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.browser]

SHOP = "http://shop.example.test"  # another site embedding the widget (served by the test itself)


@pytest.fixture(scope="module")
def stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("browser-widget")
    # Every customer here comes from 127.0.0.1: no per-address limits on sessions and open tickets.
    env = {"BOT_WIDGET_ORIGINS": SHOP, "BOT_LIMIT_SESSIONS_PER_HOUR": "0", "BOT_LIMIT_OPEN_TICKETS": "0"}
    with temporary_database("sqlite", folder) as url, full_stack(trained_model, folder, url, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def offline_stack(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The project's real hours.yml on a national holiday (BOT_NOW): a handoff files an offline ticket."""
    folder = tmp_path_factory.mktemp("browser-offline")
    knowledge = Path(shutil.copytree(PROJECT_ROOT / "knowledge", folder / "knowledge"))
    with temporary_database("sqlite", folder) as url, \
            full_stack(trained_model, folder, url, knowledge, env={"BOT_NOW": OFFLINE_NOW}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium as in test_browser.py, plus: the test shop (a page the test serves under a made-up
    public name) may load the widget from the bot server on 127.0.0.1. Chromium's local-network
    checks would block that here; a real shop and a real bot server are both public."""
    with chromium("--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests") as launched:
        yield launched


def stores(stack: Any) -> Any:
    return stores_for(stack.env["DATABASE_URL"])


def conversation_id(page: Page) -> str:
    return str(page.evaluate("() => JSON.parse(localStorage.getItem('supportchat.session')).conversation_id"))


def shop_page(browser: Browser, stack: Any, config: dict[str, Any], origin: str = SHOP) -> Page:
    """A page of another site (``origin``) with the widget script from the bot server and ``config``."""
    html = ("<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>テスト商店</title></head><body>"
            "<h1>テスト商店</h1>"
            f"<script>window.SupportChatConfig = {json.dumps(config)};</script>"
            f"<script src='{stack.server_url}/widget/widget.js' defer></script></body></html>")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP")
    context.route(re.compile(re.escape(origin) + r"/shop/item\.html.*"),
                  lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html))
    page = context.new_page()
    page.goto(f"{origin}/shop/item.html?ref=mail#top")
    return page


def console_page(browser: Browser, stack: Any, init_script: str = "") -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="ja-JP").new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(stack.server_url + "/console/")
    page.fill("#login-username", "sato")
    page.fill("#login-password", AGENT_PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "open", timeout=15_000)
    return page


def resolve_open_tickets(stack: Any, conversations: list[str]) -> None:
    """Leave no open ticket behind for the next test (the console lists every open one)."""
    queue = stores(stack).queue
    for conversation in conversations:
        ticket = queue.open_ticket_for(conversation)
        if ticket is not None:
            queue.resolve(ticket.id)


def ask_for_a_person(page: Page) -> None:
    send(page, "担当者と話したいです")


# ---------------------------------------------------------------------------------- configuration


def test_config_options_on_another_sites_page(browser: Browser, stack: Any) -> None:
    """serverUrl, title, primaryColor, greeting and customer, on a page of another origin."""
    config = {"serverUrl": stack.server_url, "title": "テスト商店 サポート", "primaryColor": "#c81e3c",
              "greeting": "いらっしゃいませ。ご案内は https://shop.example.test/help をご覧ください。",
              "customer": {"name": "山田 花子", "email": "hanako@example.jp"}}
    page = shop_page(browser, stack, config)
    launcher = page.locator("#supportchat-launcher")
    expect(launcher).to_be_visible(timeout=15_000)
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(200, 30, 60)"
    launcher.click()
    expect(page.locator("#supportchat-title")).to_have_text("テスト商店 サポート")
    greeting = page.locator("#supportchat-messages .sc-greeting .sc-bubble")
    expect(greeting).to_have_text(config["greeting"])
    assert greeting.locator("a").get_attribute("href") == "https://shop.example.test/help"

    # serverUrl: the chat runs against the bot server from the shop's origin.
    send(page, "住所を変更したいです")
    expect(bot_messages(page).last).to_contain_text("住所変更", timeout=30_000)
    conversation = conversation_id(page)
    # customer: the details the page knows go with the conversation, the page without query or fragment.
    assert stores(stack).chat_log.customer_of(conversation) == {
        "name": "山田 花子", "email": "hanako@example.jp", "page_url": f"{SHOP}/shop/item.html"}
    try:
        ask_for_a_person(page)
        expect(page.locator("#supportchat-banner")).to_be_visible(timeout=30_000)
        ticket = stores(stack).queue.open_ticket_for(conversation)
        assert ticket is not None and ticket.customer["name"] == "山田 花子"
        console = console_page(browser, stack)
        console.click(f"#ticket-list [data-ticket-id='{ticket.id}']")
        expect(console.locator("#customer-name")).to_have_text("山田 花子", timeout=10_000)
        expect(console.locator("#customer-email")).to_have_text("hanako@example.jp")
        expect(console.locator("#customer-page")).to_have_text(f"{SHOP}/shop/item.html")
    finally:
        resolve_open_tickets(stack, [conversation])


def test_defaults_when_options_are_missing_or_wrong(browser: Browser, stack: Any) -> None:
    """A color the browser does not know, a javascript: serverUrl and a silly maxLength are ignored."""
    page = shop_page(browser, stack, {"primaryColor": "url(javascript:alert(1))", "serverUrl": "javascript:alert(1)",
                                      "maxLength": -5, "title": "  "}, origin=stack.server_url)
    page.click("#supportchat-launcher")
    assert page.locator("#supportchat-launcher").evaluate("b => getComputedStyle(b).backgroundColor") \
        == "rgb(11, 92, 173)"  # the stylesheet's #0b5cad
    expect(page.locator("#supportchat-counter")).to_have_text("0 / 10000")
    assert page.locator("#supportchat-title").inner_text().strip() != ""
    assert page.locator("#supportchat-messages .sc-greeting").count() == 0
    send(page, "営業時間を教えてください")  # same origin: serverUrl fell back to it
    expect(bot_messages(page).last).to_contain_text("平日", timeout=30_000)


def test_length_counter_and_the_limit(browser: Browser, stack: Any) -> None:
    page = shop_page(browser, stack, {"maxLength": 30}, origin=stack.server_url)
    page.click("#supportchat-launcher")
    counter, box = page.locator("#supportchat-counter"), page.locator("#supportchat-input")
    expect(counter).to_have_text("0 / 30")
    assert box.get_attribute("maxlength") == "30"
    box.press_sequentially("住所を変えたい")
    expect(counter).to_have_text("7 / 30")
    assert "sc-counter-limit" not in (counter.get_attribute("class") or "")
    box.press_sequentially("あ" * 40)  # typing stops at the limit
    assert box.input_value() == "住所を変えたい" + "あ" * 23
    expect(counter).to_have_text("30 / 30")
    expect(counter).to_have_class(re.compile(r"\bsc-counter-limit\b"))
    # A longer text that got in anyway (a script, an old browser) is refused with a notice, not sent.
    box.evaluate("(b, text) => { b.value = text; b.dispatchEvent(new Event('input')); }", "あ" * 31)
    expect(counter).to_have_text("31 / 30")
    box.press("Enter")
    expect(page.locator("#supportchat-messages .sc-notice").last).to_contain_text("30")
    expect(page.locator("#supportchat-messages .sc-msg-customer")).to_have_count(0)
    assert box.input_value() == "あ" * 31  # kept, to be shortened
    box.fill("住所を変えたい")
    expect(counter).to_have_text("7 / 30")
    box.press("Enter")
    expect(counter).to_have_text("0 / 30")
    expect(bot_messages(page).last).to_contain_text("住所変更", timeout=30_000)


# ---------------------------------------------------------------------------------- tabs, cancel


def test_two_tabs_show_one_conversation_and_end_together(browser: Browser, stack: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP")
    first = context.new_page()
    first.goto(stack.server_url + "/")
    first.click("#supportchat-launcher")
    send(first, "住所を変更したいです")
    expect(bot_messages(first).last).to_contain_text("住所変更", timeout=30_000)

    second = context.new_page()  # same browser: same conversation (localStorage), panel already open
    second.goto(stack.server_url + "/")
    expect(second.locator("#supportchat-panel")).to_be_visible()
    expect(second.locator("#supportchat-messages .sc-msg-customer .sc-bubble")).to_have_text(
        ["住所を変更したいです"], timeout=15_000)
    assert conversation_id(second) == conversation_id(first)
    send(second, "営業時間を教えてください")  # written in the second tab, shown live in the first
    for page in (first, second):
        expect(page.locator("#supportchat-messages .sc-msg-customer .sc-bubble")).to_have_text(
            ["住所を変更したいです", "営業時間を教えてください"], timeout=30_000)
        expect(bot_messages(page)).to_have_count(2, timeout=30_000)
        expect(bot_messages(page).last).to_contain_text("平日")

    first.click("#supportchat-end")
    first.click("#supportchat-end-yes")
    expect(second.locator("#supportchat-messages .sc-msg-customer")).to_have_count(0, timeout=10_000)
    expect(second.locator("#supportchat-end")).to_be_hidden()
    assert second.evaluate("() => localStorage.getItem('supportchat.session')") is None


def test_cancel_while_waiting_goes_back_to_the_bot(browser: Browser, stack: Any) -> None:
    page = open_widget(browser, stack)
    ask_for_a_person(page)
    banner, cancel = page.locator("#supportchat-banner"), page.locator("#supportchat-cancel")
    expect(cancel).to_be_visible(timeout=30_000)
    conversation = conversation_id(page)
    ticket = stores(stack).queue.open_ticket_for(conversation)
    assert ticket is not None and ticket.status == "waiting"
    try:
        cancel.click()
        expect(banner).to_be_hidden(timeout=10_000)
        expect(cancel).to_be_hidden()
        assert stores(stack).queue.get(ticket.id, with_entries=False).resolution == "cancelled"
        answers = bot_messages(page).count()
        send(page, "営業時間を教えてください")  # the bot answers again
        expect(bot_messages(page)).to_have_count(answers + 1, timeout=30_000)
        expect(bot_messages(page).last).to_contain_text("平日")
        assert stores(stack).queue.open_ticket_for(conversation) is None
    finally:
        resolve_open_tickets(stack, [conversation])


# ---------------------------------------------------------------------------------- offline


def test_offline_contact_form_checks_the_fields_and_reaches_the_ticket(browser: Browser,
                                                                       offline_stack: Any) -> None:
    page = open_widget(browser, offline_stack)
    ask_for_a_person(page)
    form = page.locator("#supportchat-contact-form")
    expect(form).to_be_visible(timeout=30_000)
    expect(page.locator("#supportchat-banner")).to_be_hidden()  # nobody is on duty: no waiting banner
    conversation = conversation_id(page)
    queue = stores(offline_stack).queue
    ticket = queue.latest_for(conversation)
    assert ticket is not None and ticket.offline and ticket.status == "waiting"
    error, email, phone = (page.locator("#supportchat-contact-error"), page.locator("#supportchat-contact-email"),
                           page.locator("#supportchat-contact-phone"))

    form.locator("button[type=submit]").click()  # neither e-mail nor phone
    expect(error).not_to_be_empty()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(phone).to_have_attribute("aria-invalid", "true")
    email.fill("taro@example")  # no domain
    form.locator("button[type=submit]").click()
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(phone).not_to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    assert "email" not in (queue.get(ticket.id, with_entries=False).customer or {})

    # Full-width input, as a Japanese IME types it, is accepted and normalised.
    page.fill("#supportchat-contact-name", "山田 太郎")
    email.fill("taro＠example.jp")
    phone.fill("０９０－１２３４－５６７８")
    page.fill("#supportchat-contact-note", "請求の件で折り返しお願いします")
    form.locator("button[type=submit]").click()
    expect(page.locator("#supportchat-contact-body")).to_be_hidden(timeout=10_000)
    # The confirmation stays in the chat after the form goes away (the details are known now).
    expect(page.locator("#supportchat-messages .sc-notice .sc-bubble").last).to_have_text(
        widget_text()["contactSaved"])
    saved = queue.get(ticket.id, with_entries=False)
    assert (saved.customer["email"], saved.customer["phone"], saved.customer["name"]) == (
        "taro@example.jp", "09012345678", "山田 太郎")
    assert saved.offline and saved.status == "waiting"  # for the next shift
    # Once the details are in, the form is not asked for again, even after a reload.
    page.reload()
    page.click("#supportchat-launcher") if not page.locator("#supportchat-panel").is_visible() else None
    expect(page.locator("#supportchat-messages .sc-msg-customer").first).to_be_visible(timeout=15_000)
    expect(form).to_be_hidden()


# ---------------------------------------------------------------------------------- stand-in server


class StandInServer:
    """The chat WebSocket answered by the test: history on connect, then what ``on_message`` says."""

    def __init__(self, page: Page, on_message: Callable[["StandInServer", dict[str, Any]], None],
                 history: list[dict[str, Any]] | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.socket: Any = None
        self.next_id = 100
        self.on_message = on_message
        self.history = history or []
        page.route_web_socket(re.compile(r".*/ws/chat.*"), self._connect)

    def _connect(self, ws: Any) -> None:
        self.socket = ws
        ws.send(json.dumps({"type": "history", "state": {"mode": "bot"}, "messages": self.history}))

        def received(message: str | bytes) -> None:
            frame = json.loads(message)
            self.frames.append(frame)
            if frame.get("type") == "message":
                self.on_message(self, frame)

        ws.on_message(received)

    def say(self, sender: str, text: str, client_id: str | None = None) -> None:
        self.next_id += 1
        self.socket.send(json.dumps({"type": "message", "message": {
            "id": self.next_id, "sender": sender, "text": text, "client_id": client_id,
            "at": "2026-11-24T01:00:00+00:00"}}))

    def sent(self, text: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "message" and f.get("text") == text]


def test_a_refused_message_can_be_sent_again_or_dropped(browser: Browser, stack: Any) -> None:
    refused_once: set[str] = set()

    def answer(server: StandInServer, frame: dict[str, Any]) -> None:
        if frame["client_id"] not in refused_once:  # the first try of every message is refused
            refused_once.add(frame["client_id"])
            server.socket.send(json.dumps({"type": "error", "message": "少し時間をおいてお試しください。",
                                           "client_id": frame["client_id"]}))
            return
        server.say("customer", frame["text"], frame["client_id"])
        server.say("bot", f"「{frame['text']}」を受け付けました。")

    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP").new_page()
    server = StandInServer(page, answer)
    page.goto(stack.server_url + "/")
    page.click("#supportchat-launcher")
    send(page, "一通目")
    pending = page.locator("#supportchat-messages .sc-pending")
    expect(pending).to_have_class(re.compile(r"\bsc-failed\b"), timeout=10_000)
    expect(page.locator("#supportchat-messages .sc-notice .sc-bubble").last).to_have_text("少し時間をおいてお試しください。")
    retry, discard = pending.locator(".sc-retry"), pending.locator(".sc-discard")
    expect(retry).to_be_visible()
    expect(discard).to_be_visible()

    retry.click()  # the same message (same client id) again; the server takes it this time
    expect(pending).to_have_count(0, timeout=10_000)
    expect(page.locator("#supportchat-messages .sc-msg-customer .sc-bubble")).to_have_text(["一通目"])
    expect(bot_messages(page).locator(".sc-bubble")).to_have_text(["「一通目」を受け付けました。"])
    first, again = server.sent("一通目")
    assert first["client_id"] == again["client_id"]

    send(page, "二通目")
    expect(pending.locator(".sc-discard")).to_be_visible(timeout=10_000)
    pending.locator(".sc-discard").click()
    expect(pending).to_have_count(0)
    page.reload()  # not in the outbox either: never sent again
    page.click("#supportchat-launcher") if not page.locator("#supportchat-panel").is_visible() else None
    expect(page.locator("#supportchat-status")).to_have_text("", timeout=10_000)  # history received
    expect(pending).to_have_count(0)
    send(page, "三通目")  # frames arrive in order: a resent 二通目 would be in before this one
    expect(pending).to_have_class(re.compile(r"\bsc-failed\b"), timeout=10_000)
    assert len(server.sent("三通目")) == 1 and len(server.sent("二通目")) == 1


LINK_CASES = [
    # (text, the links the customer gets)
    ("javascript:alert(1)", []),
    ("JaVaScRiPt:window.__pwned=1", []),
    ('<a href="javascript:window.__pwned=2">ここ</a>', []),
    ("data:text/html,<script>window.__pwned=3</script>", []),
    ("vbscript:msgbox(1) と file:///etc/passwd と ftp://example.jp/x", []),
    ("xhttp://example.jp/ と javascript://example.jp/%0Aalert(1)", []),
    ("詳しくは https://example.jp/help?x=1。", ["https://example.jp/help?x=1"]),
    ("（http://example.jp/a）と「https://example.jp/b」", ["http://example.jp/a", "https://example.jp/b"]),
]


@pytest.mark.parametrize("sender", ["bot", "agent", "customer"])
def test_only_http_links_become_links(browser: Browser, stack: Any, sender: str) -> None:
    history = [{"id": i, "sender": sender, "text": text, "at": "2026-11-24T01:00:00+00:00",
                **({"agent_name": "佐藤"} if sender == "agent" else {})}
               for i, (text, _) in enumerate(LINK_CASES, start=1)]
    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP").new_page()
    StandInServer(page, lambda server, frame: None, history)
    page.goto(stack.server_url + "/")
    page.click("#supportchat-launcher")
    expect(page.locator("#supportchat-messages [data-message-id]")).to_have_count(len(LINK_CASES), timeout=15_000)
    for i, (text, links) in enumerate(LINK_CASES, start=1):
        bubble = page.locator(f"[data-message-id='{i}'] .sc-bubble")
        assert bubble.text_content() == text  # everything shown, as text
        assert [a.get_attribute("href") for a in bubble.locator("a").all()] == links, text
    for link in page.locator("#supportchat-messages a").all():
        link.click(modifiers=["Control"])  # even a click on every link runs nothing
    assert page.evaluate("() => window.__pwned") is None


# ---------------------------------------------------------------------------------- console

FAKE_AUDIO = """
window.__beeps = [];
window.AudioContext = class {
  constructor() { this.state = 'running'; this.currentTime = 0; this.destination = {}; }
  resume() { return Promise.resolve(); }
  createGain() { return {gain: {setValueAtTime() {}, exponentialRampToValueAtTime() {}}, connect: (n) => n}; }
  createOscillator() {
    const osc = {type: '', frequency: {value: 0}, connect: (n) => n, stop() {},
                 start() { window.__beeps.push(osc.frequency.value); }};
    return osc;
  }
};
"""


def test_console_alerts_a_new_handoff_with_title_badge_banner_and_sound(browser: Browser, stack: Any) -> None:
    console = console_page(browser, stack, FAKE_AUDIO)
    quiet_title = console.title()
    banner = console.locator("#new-ticket-banner")
    expect(banner).to_be_hidden()
    customers = [open_widget(browser, stack), open_widget(browser, stack)]
    conversations: list[str] = []
    try:
        for count, customer in enumerate(customers, start=1):
            ask_for_a_person(customer)
            expect(customer.locator("#supportchat-banner")).to_be_visible(timeout=30_000)
            conversations.append(conversation_id(customer))
            ticket = stores(stack).queue.open_ticket_for(conversations[-1])
            assert ticket is not None
            expect(banner).to_be_visible(timeout=10_000)
            expect(console.locator("#banner-text")).to_contain_text(re.compile(rf"(?<!\d){ticket.id}(?!\d)"))
            expect(console).to_have_title(f"({count}) {quiet_title}")  # the count of unseen handoffs
            assert console.evaluate("() => window.__beeps") == [880] * count  # one beep each
            expect(console.locator(f"#ticket-list [data-ticket-id='{ticket.id}']")).to_be_visible()
        console.click("#banner-show")  # opens the latest one and clears the alert
        expect(banner).to_be_hidden()
        expect(console).to_have_title(quiet_title)
        expect(console.locator("#detail-title")).to_contain_text(str(ticket.id))

        customers.append(open_widget(browser, stack))  # a third one, dismissed without opening it
        ask_for_a_person(customers[-1])
        expect(banner).to_be_visible(timeout=30_000)
        conversations.append(conversation_id(customers[-1]))
        expect(console).to_have_title(f"(1) {quiet_title}")
        console.click("#banner-dismiss")
        expect(banner).to_be_hidden()
        expect(console).to_have_title(quiet_title)
        expect(console.locator("#detail-title")).to_contain_text(str(ticket.id))  # still the one opened
        assert console.evaluate("() => window.__beeps") == [880] * 3
    finally:
        resolve_open_tickets(stack, conversations)


def test_console_note_is_kept_with_the_ticket_and_never_shown_to_the_customer(browser: Browser,
                                                                              stack: Any) -> None:
    customer = open_widget(browser, stack)
    ask_for_a_person(customer)
    expect(customer.locator("#supportchat-banner")).to_be_visible(timeout=30_000)
    conversation = conversation_id(customer)
    ticket = stores(stack).queue.open_ticket_for(conversation)
    assert ticket is not None
    try:
        console = console_page(browser, stack)
        console.click(f"#ticket-list [data-ticket-id='{ticket.id}']")
        expect(console.locator("#detail-title")).to_contain_text(str(ticket.id), timeout=10_000)
        console.fill("#note-text", "請求書の再発行を確認中。折り返し要")
        console.click("#note-send")
        note = console.locator("#transcript li.entry-note")
        expect(note).to_have_count(1, timeout=10_000)
        expect(note).to_contain_text("請求書の再発行を確認中。折り返し要")
        expect(note).to_contain_text("佐藤")  # who wrote it
        expect(console.locator("#note-text")).to_have_value("")
        entries = stores(stack).queue.get(ticket.id).entries
        assert [(e.sender, e.text) for e in entries if e.sender == "note"] == [("note", "請求書の再発行を確認中。折り返し要")]

        console.click("#claim")  # an agent reply after the note: it reaches the customer, the note does not
        console.fill("#reply-text", "担当の佐藤です。確認いたします。")
        console.click("#reply-send")
        expect(customer.locator("#supportchat-messages .sc-msg-agent").last).to_contain_text(
            "担当の佐藤です。", timeout=10_000)
        assert "請求書の再発行" not in customer.locator("#supportchat-messages").inner_text()
        customer.reload()
        customer.click("#supportchat-launcher") if not customer.locator("#supportchat-panel").is_visible() else None
        expect(customer.locator("#supportchat-messages .sc-msg-agent")).to_have_count(1, timeout=15_000)
        assert "請求書の再発行" not in customer.locator("#supportchat-messages").inner_text()
    finally:
        resolve_open_tickets(stack, [conversation])
