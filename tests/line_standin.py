"""A local stand-in for the LINE Messaging API (no test reaches the internet).

A small Starlette app with LINE's rules that matter to the channel:

- a reply token is valid once, and only ``token_seconds`` after it was issued
  (400 ``Invalid reply token`` otherwise);
- 1 to 5 messages per reply or push; text up to 5,000 characters (UTF-16 units); quick replies up to
  13 items, labels up to 20 characters (400 otherwise);
- a push's ``X-Line-Retry-Key`` is accepted once (409 on a repeat);
- more than ``rate_per_second`` calls within one second get 429 (``fail_next`` forces
  the next answers of one kind of call, e.g. ``fail_next["reply"] = [429, 500]``);
- every call is recorded (:attr:`LineStandIn.calls`), refused ones included.

Also reply-token issuing and signed webhook bodies (:meth:`LineStandIn.webhook`),
:func:`serve` to run it on a free local port in a thread, and, for a stand-in in its own
process (``python tests/line_standin.py PORT``, used by benchmarks/line_load.py),
control routes under ``/_standin/``: ``POST tokens`` (issue), ``POST profiles``,
``GET calls`` (the record; ``at`` is the system's monotonic clock, comparable across
processes).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.channels.line.signature import sign

ACCESS_TOKEN = "standin-access-token"
CHANNEL_SECRET = "standin-channel-secret"


@dataclass
class Call:
    """One request the stand-in received."""

    path: str
    body: Any
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def kind(self) -> str:
        """``reply``, ``push``, ``loading``, ``profile``, ``markAsRead``."""
        if self.path.startswith("/v2/bot/profile/"):
            return "profile"
        return {"/v2/bot/message/reply": "reply", "/v2/bot/message/push": "push",
                "/v2/bot/chat/loading/start": "loading", "/v2/bot/chat/markAsRead": "markAsRead"}.get(self.path, "?")


class LineStandIn:
    """The stand-in's state: issued tokens, profiles, rules and the record of calls."""

    def __init__(self, token_seconds: float = 30.0, rate_per_second: int = 0) -> None:
        """``token_seconds``: reply token lifetime; ``rate_per_second``: 429 above it (0: no limit)."""
        self.token_seconds = token_seconds
        self.rate_per_second = rate_per_second
        self.calls: list[Call] = []
        self.fail_next: dict[str, list[int]] = {}  # call kind -> statuses to answer next
        self.profiles: dict[str, str] = {}
        self._tokens: dict[str, float] = {}  # token -> issued at; removed when used
        self._retry_keys: set[str] = set()
        self._recent: list[float] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/v2/bot/message/reply", self._reply, methods=["POST"]),
            Route("/v2/bot/message/push", self._push, methods=["POST"]),
            Route("/v2/bot/chat/loading/start", self._loading, methods=["POST"]),
            Route("/v2/bot/chat/markAsRead", self._mark_as_read, methods=["POST"]),
            Route("/v2/bot/profile/{user_id}", self._profile, methods=["GET"]),
            Route("/_standin/tokens", self._issue_tokens, methods=["POST"]),
            Route("/_standin/profiles", self._set_profiles, methods=["POST"]),
            Route("/_standin/calls", self._calls, methods=["GET"]),
        ])

    # ---- what tests use --------------------------------------------------------------------

    def issue_token(self, issued_at: float | None = None) -> str:
        """A new reply token, as LINE puts in a webhook event."""
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = time.monotonic() if issued_at is None else issued_at
        return token

    def expire_all(self) -> None:
        """Every issued token expires now (as if the customer waited too long)."""
        with self._lock:
            self._tokens = {t: -1e9 for t in self._tokens}

    def of_kind(self, kind: str, accepted: bool = True) -> list[Call]:
        """Recorded calls of one kind (only the accepted ones, 2xx, unless ``accepted`` is False)."""
        with self._lock:
            return [c for c in self.calls if c.kind == kind and (c.status < 300 or not accepted)]

    def texts(self, call: Call) -> list[str]:
        """The texts of a reply or push call's messages."""
        return [m.get("text", "") for m in call.body.get("messages", [])]

    def event(self, kind: str, user_id: str, **fields: Any) -> dict[str, Any]:
        """A webhook event of ``kind`` (``text`` takes ``text=``), with a fresh reply token and id."""
        event: dict[str, Any] = {"type": kind, "mode": "active", "timestamp": int(time.time() * 1000),
                                 "source": {"type": "user", "userId": user_id},
                                 "webhookEventId": fields.pop("event_id", uuid.uuid4().hex.upper()),
                                 "deliveryContext": {"isRedelivery": fields.pop("redelivery", False)}}
        if kind not in ("unfollow",):
            event["replyToken"] = self.issue_token()
        if kind == "text":
            event.update(type="message", message={"type": "text", "id": uuid.uuid4().hex[:12],
                                                  "text": fields.pop("text"),
                                                  "markAsReadToken": "read-" + uuid.uuid4().hex[:8]})
        elif kind in ("image", "sticker", "audio", "location", "file", "video"):
            event.update(type="message", message={"type": kind, "id": uuid.uuid4().hex[:12]})
        elif kind == "postback":
            event["postback"] = {"data": fields.pop("data")}
        event.update(fields)
        return event

    def webhook(self, events: list[dict[str, Any]], secret: str = CHANNEL_SECRET) -> tuple[bytes, dict[str, str]]:
        """A webhook body and its headers (signed with ``secret``)."""
        body = json.dumps({"destination": "Ubot", "events": events}, ensure_ascii=False).encode("utf-8")
        return body, {"X-Line-Signature": sign(secret, body), "Content-Type": "application/json"}

    # ---- control (stand-in in another process) ----------------------------------------------

    async def _issue_tokens(self, request: Request) -> JSONResponse:
        count = int((await request.json()).get("count", 1))
        return JSONResponse({"tokens": [self.issue_token() for _ in range(count)]})

    async def _set_profiles(self, request: Request) -> JSONResponse:
        self.profiles.update(await request.json())
        return JSONResponse({})

    async def _calls(self, request: Request) -> JSONResponse:
        with self._lock:
            calls = [{"path": c.path, "body": c.body, "status": c.status, "at": c.at} for c in self.calls]
        return JSONResponse({"calls": calls})

    # ---- the API ---------------------------------------------------------------------------

    async def _begin(self, request: Request) -> tuple[Any, JSONResponse | None]:
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        refusal: JSONResponse | None = None
        with self._lock:
            now = time.monotonic()
            self._recent = [t for t in self._recent if now - t < 1.0]
            if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                refusal = JSONResponse({"message": "Authentication failed"}, status_code=401)
            elif self.fail_next.get(Call(request.url.path, None, 0).kind):
                status = self.fail_next[Call(request.url.path, None, 0).kind].pop(0)
                refusal = JSONResponse({"message": "forced"}, status_code=status,
                                       headers={"Retry-After": "0"} if status == 429 else None)
            elif self.rate_per_second and len(self._recent) >= self.rate_per_second:
                refusal = JSONResponse({"message": "The API rate limit has been exceeded."}, status_code=429)
            else:
                self._recent.append(now)
            if refusal is not None:
                self.calls.append(Call(request.url.path, body, refusal.status_code))
        return body, refusal

    def _record(self, request: Request, body: Any, status: int, payload: dict[str, Any] | None = None) -> JSONResponse:
        with self._lock:
            self.calls.append(Call(request.url.path, body, status))
        return JSONResponse(payload or {}, status_code=status)

    @staticmethod
    def _bad_messages(messages: Any) -> str | None:
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return "Size must be between 1 and 5"
        for message in messages:
            if not isinstance(message, dict) or message.get("type") != "text":
                return "Only text messages are expected"
            text = message.get("text")
            if not isinstance(text, str) or not 0 < len(text.encode("utf-16-le")) // 2 <= 5000:
                return "Length must be between 1 and 5000"
            items = (message.get("quickReply") or {}).get("items", [])
            if len(items) > 13:
                return "Quick reply: at most 13 items"
            if any(len(i["action"].get("label", "")) > 20 or len(i["action"].get("data", "")) > 300 for i in items):
                return "Quick reply: label up to 20 characters, data up to 300"
            if len((message.get("sender") or {}).get("name", "")) > 20:
                return "Sender name up to 20 characters"
        return None

    async def _reply(self, request: Request) -> JSONResponse:
        body, refusal = await self._begin(request)
        if refusal is not None:
            return refusal
        problem = self._bad_messages((body or {}).get("messages"))
        if problem:
            return self._record(request, body, 400, {"message": problem})
        with self._lock:
            issued = self._tokens.pop(str((body or {}).get("replyToken")), None)
        if issued is None or time.monotonic() - issued > self.token_seconds:
            return self._record(request, body, 400, {"message": "Invalid reply token"})
        return self._record(request, body, 200)

    async def _push(self, request: Request) -> JSONResponse:
        body, refusal = await self._begin(request)
        if refusal is not None:
            return refusal
        problem = self._bad_messages((body or {}).get("messages"))
        if problem or not str((body or {}).get("to", ""))[:1] in ("U", "C", "R"):
            problem = problem or "The property, 'to', in the request body is invalid"
            return self._record(request, body, 400, {"message": problem})
        key = request.headers.get("x-line-retry-key")
        with self._lock:
            repeated = key in self._retry_keys if key else False
            if key:
                self._retry_keys.add(key)
        if repeated:
            return self._record(request, body, 409, {"message": "The retry key is already accepted"})
        return self._record(request, body, 200, {"sentMessages": [{"id": "1"}]})

    async def _loading(self, request: Request) -> JSONResponse:
        body, refusal = await self._begin(request)
        if refusal is not None:
            return refusal
        seconds = (body or {}).get("loadingSeconds")
        ok = isinstance(seconds, int) and 5 <= seconds <= 60 and seconds % 5 == 0
        return self._record(request, body, 202 if ok else 400)

    async def _mark_as_read(self, request: Request) -> JSONResponse:
        body, refusal = await self._begin(request)
        if refusal is not None:
            return refusal
        return self._record(request, body, 200 if (body or {}).get("markAsReadToken") else 400)

    async def _profile(self, request: Request) -> JSONResponse:
        body, refusal = await self._begin(request)
        if refusal is not None:
            return refusal
        user_id = request.path_params["user_id"]
        if user_id not in self.profiles:
            return self._record(request, None, 404, {"message": "Not found"})
        return self._record(request, None, 200, {"userId": user_id, "displayName": self.profiles[user_id]})


def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """``predicate()``'s first truthy value, polled until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(target: Any, lifespan: str = "off") -> Iterator[str]:
    """Run ``target`` (a :class:`LineStandIn`, or any ASGI app) on 127.0.0.1 in a thread; yields its base URL."""
    port = free_port()
    app = target.app if isinstance(target, LineStandIn) else target
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           ws="none", lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


if __name__ == "__main__":  # a stand-in in its own process: python tests/line_standin.py PORT
    import sys

    uvicorn.run(LineStandIn(token_seconds=60.0).app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                ws="none", lifespan="off")
