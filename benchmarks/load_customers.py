"""Customers and agents of the conversation load (#12): the widget's protocol, the console's API.

A customer (:class:`WidgetCustomer`) speaks the widget's protocol (``bot/server/static/widget/
widget.js``): a session, a socket whose URL names the conversation (nginx hashes it), the token
in the first frame, then ``message``, ``button`` (a clarify button's payload and title) and
``feedback`` frames (役に立ちましたか？ はい / いいえ). When the socket closes it reconnects as
widget.js does (back-off 1, 2, 4 … s up to 15 s, through the same URL), reads the history and
resends what the history does not show yet with the same ``client_id``, at most 3 tries.

An agent (:class:`AgentDesk`) logs in through ``/api/agent/login`` like the console, polls the
open tickets, claims a waiting one of this run, replies and resolves it.

A script (:func:`script`) is 4–6 steps: an FAQ question, a vague question that is asked back
and a click on one of the offered FAQ buttons, はい/いいえ on an answer, small talk; about one
customer in ten (:func:`hands_off`) asks for a person, waits for the agent's reply and, once
the ticket is resolved, thanks the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from bot.server.gateway_base import TEXT

FAQS = ["住所を変更したいです", "営業時間を教えて", "支払い方法は？", "パスワードを忘れました", "解約したい", "料金"]
# Asked back with FAQ buttons by the current model (checked against models/current.tar.gz).
VAGUE = ["手続きについて", "変更したい"]
HUMAN = "担当者と話したいです"
GREETING, THANKS = "こんにちは", "ありがとうございました"
AGENT_REPLY = "担当の{name}です。お問い合わせの件、確認いたしました。ほかにご不明な点はございますか。"
HANDOFF_EVERY = 10  # one customer in ten asks for a person
MAX_BACKOFF = 15.0  # widget.js MAX_BACKOFF_MS
MAX_TRIES = 3  # widget.js MAX_AUTO_TRIES
# The gateway's lines that say the bot did not answer (bot/wording.py GATEWAY_TEXT).
NOTICES = frozenset({TEXT["bot_down"], TEXT["bot_slow"]})
# A notice instead of an answer (bot_down, bot_slow: "数分たってから、もう一度"): a person reads it
# and writes again once, a little later.
NOTICE_RETRY_PAUSE = 10.0


@dataclass(frozen=True)
class Step:
    """One step of a script.

    Attributes:
        kind: ``text`` (a message), ``vague`` (a message asked back), ``button`` (click one
            of the FAQ buttons of the last bot message), ``feedback`` (はい/いいえ on the
            last FAQ answer), ``human`` (ask for a person; wait for the agent), ``after_agent``
            (a message once the ticket is resolved).
        text: The message (text, vague, human, after_agent).
        helpful: The feedback (feedback).
    """

    kind: str
    text: str = ""
    helpful: bool = True


def hands_off(customer: int) -> bool:
    """Whether this customer asks for a person (one in :data:`HANDOFF_EVERY`)."""
    return customer % HANDOFF_EVERY == HANDOFF_EVERY // 2


def script(customer: int) -> list[Step]:
    """The 4–6 steps of one customer (a different mix per customer).

    Feedback comes after the clicked answer, never right before a vague question: a 「いいえ」
    is answered with a clarifying reply, and two unsure turns in a row hand the conversation
    to a person (tests/test_e2e.py), which only the handing-off customers should do.
    """
    faq = Step("text", FAQS[customer % len(FAQS)])
    vague = Step("vague", VAGUE[customer % len(VAGUE)])
    if hands_off(customer):
        return [faq, vague, Step("button"), Step("feedback", helpful=True), Step("human", HUMAN),
                Step("after_agent", THANKS)]
    feedback = Step("feedback", helpful=customer % 2 == 0)
    later = Step("text", FAQS[(customer + 3) % len(FAQS)])
    count = 4 + customer % 3
    if count == 4:
        return [vague, Step("button"), feedback, later]
    if count == 5:
        return [faq, vague, Step("button"), feedback, Step("text", THANKS)]
    return [Step("text", GREETING), faq, vague, Step("button"), feedback, Step("text", THANKS)]


@dataclass
class TurnResult:
    """What one step got.

    Attributes:
        kind: The step's kind.
        outcome: ``bot``, ``agent``, ``saved`` (feedback recorded), ``notice`` (only a system
            notice such as bot_down), ``timeout``, ``skipped`` (no button was offered).
        seconds: From sending to the answer (for ``human``: to the bot's handoff reply).
        agent_seconds: ``human``: from sending to the agent's reply.
        via_history: The answer was only seen in the history after a reconnect.
        notice: The system notice, if one came.
        retried: A notice was answered by writing again (faults mode).
    """

    kind: str
    outcome: str
    seconds: float | None = None
    agent_seconds: float | None = None
    via_history: bool = False
    notice: str | None = None
    retried: bool = False


@dataclass
class CustomerLog:
    """One customer's conversation: what was sent, what came back, which server served it."""

    index: int
    conversation_id: str = ""
    sent_client_ids: list[str] = field(default_factory=list)  # every message / button frame
    rasa_texts: list[str] = field(default_factory=list)  # what Rasa should have received
    turns: list[TurnResult] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)
    reconnects: int = 0
    resends: int = 0
    error: str | None = None
    seconds: float = 0.0  # the whole conversation, session to last answer

    @property
    def handed_off(self) -> bool:
        """Asked for a person."""
        return hands_off(self.index)


class Reconnected(Exception):
    """The socket was replaced; carries the history frame of the new one."""

    def __init__(self, history: dict[str, Any]) -> None:
        super().__init__("reconnected")
        self.history = history


class WidgetCustomer:
    """One customer on the widget's protocol (see the module docstring)."""

    def __init__(self, base: str, index: int, timeout: float, agent_timeout: float = 180.0,
                 think: tuple[float, float] = (0.0, 0.0), retry_notice: bool = False,
                 started: asyncio.Event | None = None) -> None:
        """A customer of ``base`` (nginx or one bot server).

        Args:
            base: ``http://host:port`` of nginx or a bot server.
            index: Which customer (chooses the script).
            timeout: Seconds to wait for one answer (and for a connection).
            agent_timeout: Seconds to wait for the agent's reply and the resolve.
            think: Pause between steps, uniform in this range (seconds).
            retry_notice: Write the message again once after a system notice (faults mode).
            started: Set when this customer asks for a person (faults: the action server kill).
        """
        self.base, self.timeout, self.agent_timeout = base, timeout, agent_timeout
        self.think, self.retry_notice, self.human_asked = think, retry_notice, started
        self.log = CustomerLog(index)
        self.ws: Any = None
        self.token = ""
        self.buttons: list[dict[str, Any]] = []
        self.last_answer_id: int | None = None  # the last bot message with an FAQ id
        self.rng = random.Random(index)

    # ---- connection ------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """The socket URL of widget.js: it names the conversation (nginx hashes it)."""
        return (self.base.replace("http://", "ws://") + "/ws/chat?conversation="
                + urllib.parse.quote(self.log.conversation_id, safe=""))

    async def open(self) -> dict[str, Any]:
        """Start a session and connect; the history frame."""
        import httpx

        async with httpx.AsyncClient(base_url=self.base, timeout=self.timeout, trust_env=False) as http:
            response = None
            for attempt in range(MAX_TRIES * 3):  # widget.js: a failed session is retried with back-off
                try:
                    response = await http.post("/api/chat/sessions", json={"customer": {}})
                    if response.status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(min(2 ** attempt, MAX_BACKOFF))
            if response is None:
                raise ConnectionError("no session")
            response.raise_for_status()
        body = response.json()
        self.log.conversation_id, self.token = body["conversation_id"], body["token"]
        return await self._connect()

    async def _connect(self) -> dict[str, Any]:
        """Open the socket, authenticate, return the history (raises on failure)."""
        import websockets

        ws = await websockets.connect(self.ws_url, open_timeout=min(10.0, self.timeout), max_size=2**22,
                                      ping_interval=None)
        try:
            await ws.send(json.dumps({"type": "auth", "token": self.token}))
            self.log.servers.append(str(ws.response_headers.get("X-Bot-Upstream")))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), self.timeout))
                if frame.get("type") == "history":
                    self.ws = ws
                    return frame
                if frame.get("type") == "error":  # the database is down: closed with 1013
                    raise ConnectionError(str(frame.get("message")))
        except BaseException:
            await ws.close()
            raise

    async def _reconnect(self, deadline: float) -> dict[str, Any]:
        """widget.js's scheduleReconnect: back off 1, 2, 4 … 15 s until a history comes."""
        self.ws = None
        attempt = 0
        while True:
            attempt += 1
            delay = min(2 ** (attempt - 1), MAX_BACKOFF)
            if time.monotonic() + delay > deadline:
                raise asyncio.TimeoutError("could not reconnect in time")
            await asyncio.sleep(delay)
            try:
                history = await self._connect()
            except (OSError, asyncio.TimeoutError, ConnectionError, Exception) as exc:  # noqa: BLE001
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.log.reconnects += 1
            return history

    async def frame(self, deadline: float) -> dict[str, Any]:
        """The next server frame; after a closed socket, reconnect and raise :class:`Reconnected`."""
        import websockets

        try:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
        except websockets.exceptions.ConnectionClosed:
            raise Reconnected(await self._reconnect(deadline)) from None
        return json.loads(raw)

    async def close(self) -> None:
        """Close the socket (if open)."""
        if self.ws is not None:
            await self.ws.close()

    # ---- steps -----------------------------------------------------------------------------

    async def run(self) -> CustomerLog:
        """Have the whole conversation; its log (a failure ends it and is noted)."""
        began = time.monotonic()
        try:
            await self.open()
            for number, step in enumerate(script(self.log.index)):
                if number and self.think[1]:
                    await asyncio.sleep(self.rng.uniform(*self.think))
                result = await self.step(step)
                if result.outcome == "notice" and self.retry_notice and step.kind != "feedback":
                    late = await self._late_answer(step.kind)
                    if late is not None:  # "受け付けられた場合は、この画面でお知らせします": it was
                        result = TurnResult(step.kind, late, None, None, False, result.notice)
                    else:
                        again = await self.step(step)
                        result = TurnResult(step.kind, again.outcome, again.seconds, again.agent_seconds,
                                            again.via_history, result.notice, retried=True)
                self.log.turns.append(result)
        except Exception as exc:  # noqa: BLE001 - reported per customer, the crowd goes on
            self.log.error = repr(exc)[:300]
        finally:
            self.log.seconds = round(time.monotonic() - began, 2)
            with contextlib.suppress(Exception):
                await self.close()
        return self.log

    async def step(self, step: Step) -> TurnResult:
        """Carry out one step and wait for its answer."""
        if step.kind == "feedback":
            return await self._feedback(step.helpful)
        if step.kind == "button":
            button = next((b for b in self.buttons if str(b.get("payload", "")).startswith("/faq")), None)
            if button is None:
                return TurnResult("button", "skipped")
            frame = {"type": "button", "payload": button["payload"], "title": button.get("title") or ""}
            self.log.rasa_texts.append(button["payload"])
            return await self._send(step.kind, frame)
        self.log.rasa_texts.append(step.text)
        return await self._send(step.kind, {"type": "message", "text": step.text})

    async def _send(self, kind: str, frame: dict[str, Any]) -> TurnResult:
        """Send a message or button frame (resending after reconnects) and wait for the answer."""
        client_id = uuid.uuid4().hex
        frame = {**frame, "client_id": client_id}
        self.log.sent_client_ids.append(client_id)
        started = time.monotonic()
        deadline = started + self.timeout
        if kind == "human" and self.human_asked is not None:
            self.human_asked.set()
        tries, mine, bot_at, notice, via_history = 0, None, None, None, False
        pending_send = True
        while True:
            if pending_send:
                tries += 1
                if tries > MAX_TRIES:
                    return TurnResult(kind, "timeout", notice=notice)
                self.log.resends += tries > 1
                try:
                    await self.ws.send(json.dumps(frame, ensure_ascii=False))
                except Exception:  # noqa: BLE001 - closed: the next frame() reconnects
                    pass
                pending_send = False
            try:
                got = await self.frame(deadline if bot_at is None else started + self.agent_timeout)
            except Reconnected as again:
                messages = again.history.get("messages") or []
                stored = [m for m in messages if m.get("client_id") == client_id]
                if not stored:
                    pending_send = True
                    continue
                mine = stored[0]["id"]
                later = [m for m in messages if m.get("id", 0) > mine]
                answer = self._answer_in(later, kind, bot_at is not None)
                if answer is not None:
                    via_history = True
                    if kind != "human" or answer == "agent":
                        if kind == "human":
                            await self._until_back_to_bot(started, again.history)
                        return TurnResult(kind, answer, (bot_at or time.monotonic()) - started,
                                          time.monotonic() - started if kind == "human" else None, True, notice)
                    bot_at = bot_at or time.monotonic()
                continue
            except asyncio.TimeoutError:
                return TurnResult(kind, "timeout", None if bot_at is None else bot_at - started, notice=notice,
                                  via_history=via_history)
            if got.get("type") == "error" and got.get("client_id") == client_id:
                return TurnResult(kind, "notice", notice=str(got.get("message")))
            if got.get("type") != "message":
                continue
            message = got["message"]
            sender = message.get("sender")
            if sender == "customer" and message.get("client_id") == client_id:
                mine = message.get("id")
            elif sender == "bot":
                self._note_bot(message)
                if kind != "human":
                    return TurnResult(kind, "bot", time.monotonic() - started, notice=notice, via_history=via_history)
                bot_at = bot_at or time.monotonic()
            elif sender == "agent" and kind == "human":
                agent_at = time.monotonic()
                await self._until_back_to_bot(started)
                return TurnResult(kind, "agent", (bot_at or agent_at) - started, agent_at - started,
                                  via_history, notice)
            elif sender == "system" and mine is not None and bot_at is None and (
                    kind != "human" or message.get("text") in NOTICES):
                # A handoff request's system lines are the agent joining, the queue place … (an
                # agent may join before the bot's handoff reply arrives: the ticket is filed while
                # Rasa still runs the action); only bot_down / bot_slow say it was not taken.
                notice = str(message.get("text"))
                return TurnResult(kind, "notice", notice=notice)

    async def _late_answer(self, kind: str) -> str | None:
        """Read what comes during the pause after a notice, as a person reading the chat would:
        ``bot`` or ``agent`` if the turn got its answer after all (a handoff taken despite the
        notice: the agent's reply), else None (then the customer writes again)."""
        deadline = time.monotonic() + NOTICE_RETRY_PAUSE
        while True:
            try:
                got = await self.frame(deadline)
            except Reconnected:
                continue
            except asyncio.TimeoutError:
                return None
            message = got.get("message") or {} if got.get("type") == "message" else {}
            if message.get("sender") == "agent" and kind == "human":
                await self._until_back_to_bot(time.monotonic())
                return "agent"
            if message.get("sender") == "bot" and kind == "human":  # the handoff's reply: a person comes
                deadline = time.monotonic() + self.agent_timeout
            elif message.get("sender") == "bot":
                self._note_bot(message)
                return "bot"

    def _answer_in(self, messages: list[dict[str, Any]], kind: str, bot_seen: bool) -> str | None:
        """An answer among history messages after the customer's: ``agent``, ``bot`` or None."""
        for message in messages:
            if message.get("sender") == "bot":
                self._note_bot(message)
        senders = {m.get("sender") for m in messages}
        if "agent" in senders and kind == "human":
            return "agent"
        if "bot" in senders or bot_seen:
            return "bot"
        return None

    def _note_bot(self, message: dict[str, Any]) -> None:
        """Remember the buttons and FAQ answer of the latest bot message (for the next steps)."""
        self.buttons = [b for b in message.get("buttons") or [] if isinstance(b, dict)]
        if message.get("faq_id") and message.get("id") is not None:
            self.last_answer_id = int(message["id"])

    async def _until_back_to_bot(self, started: float, history: dict[str, Any] | None = None) -> None:
        """Wait for the agent's resolve (the state's mode back to ``bot``)."""
        if history is not None and (history.get("state") or {}).get("mode") == "bot":
            return
        deadline = started + self.agent_timeout
        while True:
            try:
                got = await self.frame(deadline)
            except Reconnected as again:
                if (again.history.get("state") or {}).get("mode") == "bot":
                    return
                continue
            if got.get("type") == "state" and (got.get("state") or {}).get("mode") == "bot":
                return

    async def _feedback(self, helpful: bool) -> TurnResult:
        """はい/いいえ on the last FAQ answer; いいえ waits for the bot's next reply too."""
        if self.last_answer_id is None:
            return TurnResult("feedback", "skipped")
        message_id = self.last_answer_id
        frame = {"type": "feedback", "message_id": message_id, "helpful": helpful}
        if not helpful:
            self.log.rasa_texts.append("/answer_not_helpful")
        started = time.monotonic()
        deadline = started + self.timeout
        saved, tries = False, 0
        resend = True
        while True:
            if resend:
                tries += 1
                if tries > MAX_TRIES:
                    return TurnResult("feedback", "timeout")
                try:
                    await self.ws.send(json.dumps(frame))
                except Exception:  # noqa: BLE001 - closed: the next frame() reconnects
                    pass
                resend = False
            try:
                got = await self.frame(deadline)
            except Reconnected as again:
                messages = again.history.get("messages") or []
                rated = next((m for m in messages if m.get("id") == message_id), {})
                if rated.get("feedback") is None:
                    resend = True
                    continue
                if helpful:
                    return TurnResult("feedback", "saved", time.monotonic() - started, via_history=True)
                later = [m for m in messages if m.get("id", 0) > message_id and m.get("sender") == "bot"]
                if len(later) >= 1:
                    self._note_bot(later[-1])
                    return TurnResult("feedback", "bot", time.monotonic() - started, via_history=True)
                continue
            except asyncio.TimeoutError:  # a 「いいえ」 saved but never answered is unanswered too
                return TurnResult("feedback", "saved" if saved and helpful else "timeout")
            if got.get("type") == "feedback_saved" and got.get("message_id") == message_id:
                saved = True
                if helpful:
                    return TurnResult("feedback", "saved", time.monotonic() - started)
            elif got.get("type") == "message" and got["message"].get("sender") == "bot" and saved:
                self._note_bot(got["message"])
                return TurnResult("feedback", "bot", time.monotonic() - started)
            elif got.get("type") == "message" and got["message"].get("sender") == "system" and saved:
                return TurnResult("feedback", "notice", notice=str(got["message"].get("text")))


@dataclass
class DeskStats:
    """What the agents did."""

    claimed: list[int] = field(default_factory=list)
    replied: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    conflicts: int = 0  # 409s: another agent was faster, or the cap
    errors: list[str] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)


class AgentDesk:
    """``agents`` console sessions that take this run's waiting tickets: claim, reply, resolve."""

    def __init__(self, base: str, agents: list[tuple[str, str, str]], conversations: set[str]) -> None:
        """Agents ``(username, display name, password)`` on ``base`` (nginx or a bot server);
        only tickets of ``conversations`` (this run's handing-off customers) are taken."""
        self.base, self.agents, self.conversations = base, agents, conversations
        self.stats = DeskStats()
        self._taken: set[int] = set()

    async def run(self, stop: asyncio.Event) -> DeskStats:
        """Work until ``stop`` is set."""
        await asyncio.gather(*(self._agent(agent, stop) for agent in self.agents))
        return self.stats

    async def _agent(self, agent: tuple[str, str, str], stop: asyncio.Event) -> None:
        import httpx

        username, name, password = agent
        async with httpx.AsyncClient(base_url=self.base, timeout=30, trust_env=False) as client:
            csrf = ""
            while not stop.is_set():
                try:
                    if not csrf:
                        login = await client.post("/api/agent/login", json={"username": username, "password": password})
                        login.raise_for_status()
                        csrf = login.json()["csrf_token"]
                        self.stats.servers.append(str(login.headers.get("X-Bot-Upstream")))
                    listing = await client.get("/api/tickets", params={"status": "open", "limit": 200})
                    if listing.status_code == 401:
                        csrf = ""
                        continue
                    listing.raise_for_status()
                    waiting = [t for t in listing.json().get("tickets", [])
                               if t.get("status") == "waiting" and t.get("conversation_id") in self.conversations
                               and t["id"] not in self._taken]
                    for ticket in waiting:
                        if await self._handle(client, {"X-CSRF-Token": csrf}, ticket["id"], name):
                            break
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    self.stats.errors.append(f"{username}: {exc!r}"[:200])
                    csrf = "" if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401 else csrf
                    await asyncio.sleep(1.0)
                    continue
                await asyncio.sleep(0.5)

    async def _handle(self, client: Any, headers: dict[str, str], ticket_id: int, name: str) -> bool:
        """Claim, reply, resolve one ticket; whether it was ours (a 409 on claim: not ours).

        Each call is retried on a 5xx or a lost connection (a bot server or the database
        restarting): the console's agent would press the button again.
        """
        claim = await self._post(client, f"/api/tickets/{ticket_id}/claim", headers)
        if claim is None or claim.status_code == 409:
            self.stats.conflicts += claim is not None
            return False
        claim.raise_for_status()
        self._taken.add(ticket_id)
        self.stats.claimed.append(ticket_id)
        reply = await self._post(client, f"/api/tickets/{ticket_id}/reply", headers,
                                 {"text": AGENT_REPLY.format(name=name)})
        if reply is not None and reply.status_code == 200:
            self.stats.replied.append(ticket_id)
        resolve = await self._post(client, f"/api/tickets/{ticket_id}/resolve", headers)
        if resolve is not None and resolve.status_code in (200, 409):
            self.stats.resolved.append(ticket_id)
        return True

    async def _post(self, client: Any, path: str, headers: dict[str, str],
                    body: dict[str, Any] | None = None) -> Any:
        """POST with up to 10 tries over ~20 s on a 5xx or a connection error; the last response."""
        import httpx

        response = None
        for _ in range(10):
            try:
                response = await client.post(path, headers=headers, json=body or {})
                if response.status_code < 500:
                    return response
            except httpx.HTTPError:
                response = None
            await asyncio.sleep(2.0)
        return response
