"""The satisfaction survey after a resolved chat, in the widget in Chromium, by keyboard only.

The bot server of tests/test_browser_canned.py (uvicorn, SQLite, no Rasa): the customer opens
the widget on the demo page, a ticket of that conversation is filed straight into the queue,
and an agent claims and resolves it through the agent API. The widget then asks the one
question of knowledge/csat.yml; the customer answers with Tab / Space / Enter: no rating is
refused, a comment over 1,000 characters is refused without losing a character, HTML in the
comment stays text, and the rating is stored once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.handoff.packet import HandoffPacket, Turn
from bot.knowledge.csat import csat_texts
from bot.store.csat import Surveys
from test_browser_canned import AXE, PASSWORD, browser, server  # noqa: F401 - fixtures

from playwright.sync_api import Browser, expect  # noqa: E402 (after the skip of test_browser_canned)

pytestmark = [pytest.mark.browser]

XSS = '<img src=x onerror="window.__xss=1">とても丁寧でした'


def resolve_through_the_agent_api(browser: Browser, url: str, ticket_id: int) -> None:
    request = browser.new_context().request
    login = request.post(url + "/api/agent/login", data={"username": "sato", "password": PASSWORD})
    assert login.ok, login.text()
    headers = {"X-CSRF-Token": login.json()["csrf_token"]}
    assert request.post(f"{url}/api/tickets/{ticket_id}/claim", headers=headers).ok
    assert request.post(f"{url}/api/tickets/{ticket_id}/resolve", headers=headers).ok


def test_the_rating_widget_by_keyboard(browser: Browser, server: tuple[str, Any]) -> None:  # noqa: F811
    url, services = server
    texts = csat_texts()
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP", bypass_csp=True).new_page()
    page.goto(url + "/")
    page.click("#supportchat-launcher")
    expect(page.locator("#supportchat-input")).to_be_visible(timeout=10_000)
    page.wait_for_function("() => !!localStorage.getItem('supportchat.session')", timeout=10_000)
    conversation = page.evaluate("() => JSON.parse(localStorage.getItem('supportchat.session')).conversation_id")
    ticket, _ = services.stores.queue.enqueue(HandoffPacket(f"csat-{time.monotonic_ns()}", conversation,
                                                            ["human_request"], [Turn("customer", "担当者と話したい")]))
    after = page.locator("#supportchat-after")
    expect(after).to_be_hidden()
    resolve_through_the_agent_api(browser, url, ticket.id)

    expect(after).to_be_visible(timeout=10_000)
    expect(page.locator("#supportchat-survey-q")).to_have_text(texts.question)
    ratings = page.locator(".sc-survey-rating")
    expect(ratings).to_have_count(5)
    expect(ratings.nth(4)).to_have_attribute("aria-label", f"5（{texts.labels[4]}）")
    expect(page.locator("#supportchat-mail")).to_be_hidden()  # no mail server configured: no e-mail button

    page.focus("#supportchat-survey-submit")
    page.keyboard.press("Enter")  # nothing picked yet
    expect(page.locator("#supportchat-survey-error")).to_have_text("評価を 1〜5 から選んでください。")
    expect(ratings.nth(0)).to_be_focused()
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(ratings.nth(3)).to_be_focused()
    page.keyboard.press("Space")
    expect(ratings.nth(3)).to_have_attribute("aria-pressed", "true")
    expect(ratings.nth(0)).to_have_attribute("aria-pressed", "false")

    comment = page.locator("#supportchat-survey-comment")
    long_text = XSS + "あ" * 1_200
    comment.fill(long_text)
    page.focus("#supportchat-survey-submit")
    page.keyboard.press("Enter")
    expect(page.locator("#supportchat-survey-error")).to_contain_text("1000文字以内")
    expect(comment).to_be_focused()
    assert comment.input_value() == long_text  # nothing the customer wrote is lost
    assert Surveys(services.stores.engine).for_ticket(ticket.id) is None

    comment.fill(XSS)
    page.keyboard.press("Tab")
    expect(page.locator("#supportchat-survey-submit")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#supportchat-survey-done")).to_have_text(texts.thanks, timeout=10_000)
    expect(page.locator("#supportchat-survey")).to_be_hidden()
    stored = Surveys(services.stores.engine).for_ticket(ticket.id)
    assert (stored.rating, stored.comment, stored.agent) == (4, XSS, "sato")
    assert page.evaluate("() => window.__xss") is None  # the comment never became markup

    if AXE.exists():
        from test_accessibility import axe_violations

        assert axe_violations(page) == []

    page.reload()  # rated: the state no longer offers the survey, in this tab or any other
    expect(page.locator("#supportchat-input")).to_be_visible(timeout=10_000)  # the panel stays open
    expect(page.locator("#supportchat-messages .sc-msg-system")).to_have_count(2, timeout=10_000)  # joined, resolved
    expect(after).to_be_hidden()
