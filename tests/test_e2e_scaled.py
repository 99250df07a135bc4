"""Scale-out with real parts: nginx, 2 bot servers, 2 Rasa servers, 2 action servers.

Started by ``deploy/run_scaled.py`` exactly as ``make run-scaled`` starts them (each process
from its systemd unit's command line), on a fresh PostgreSQL database (the shared tracker
store) and the machine's Redis (events and Rasa's lock store). Everyone goes through nginx:
the agent's console lands on one bot server, the customer's WebSocket on the other. After
an FAQ turn the Rasa server that answered this conversation is killed (SIGKILL): the next
turn, an angry message, is answered by the other Rasa server with the conversation's
context, and its action server files exactly one ticket. The agent on the other bot server
sees it, claims it and replies; the customer gets the reply; resolving gives the
conversation back to the bot, which answers the next FAQ on the surviving Rasa server. Then
the customer's bot server is killed: the widget's reconnect goes through nginx to the other
one, which shows the whole history and answers. The killed Rasa server, restarted meanwhile,
sees the conversation with every turn it missed.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import websockets

from bot.launcher import StartupError, free_port
from bot.server.rasa_client import RasaClient
from bot.server.tokens import ConversationTokens, load_secret_key
from conftest import AGENT_PASSWORD, missing_service, staffed_knowledge, temporary_database
from deploy.run_scaled import Replica, ScaledStack, nginx_binary
from test_e2e_handoff import ANGRY, Customer, from_sender, read_sse
from test_events import REDIS_URL, needs_redis

pytestmark = [pytest.mark.e2e, pytest.mark.slow, needs_redis]


@pytest.fixture(scope="module")
def scaled(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledStack]:
    from bot.server.app import stores_for

    try:
        nginx_binary()
    except StartupError as exc:
        missing_service(str(exc))
    folder = tmp_path_factory.mktemp("scaled")
    with temporary_database("postgresql", folder) as url:
        stores = stores_for(url)
        stores.agents.add("sato", "佐藤", AGENT_PASSWORD)
        stores.engine.dispose()
        replicas = [Replica(i, free_port(), free_port(), free_port()) for i in (1, 2)]
        stack = ScaledStack(model=trained_model, replicas=replicas, nginx_port=free_port(), folder=folder / "run",
                            env={"DATABASE_URL": url, "BOT_EVENTS_URL": REDIS_URL,
                                 "BOT_KNOWLEDGE_DIR": str(staffed_knowledge(folder / "knowledge"))})
        with stack:
            yield stack


def server_of(headers: Any, stack: ScaledStack) -> int:
    """Which replica's bot server answered (local.conf's X-Bot-Upstream: every server nginx tried)."""
    upstream = headers["X-Bot-Upstream"].split(",")[-1].strip()
    return next(r.index for r in stack.replicas if upstream == f"127.0.0.1:{r.server_port}")


async def customer_on_other_server(stack: ScaledStack, agent_server: int) -> tuple[Any, str, str, int]:
    """A customer whose socket nginx puts on the other bot server (it hashes the token)."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as public:
        for _ in range(30):
            token = (await public.post("/api/chat/sessions", json={})).json()["token"]
            ws_url = stack.url.replace("http://", "ws://") + f"/ws/chat?token={urllib.parse.quote(token)}"
            ws = await websockets.connect(ws_url)
            server = server_of(ws.response_headers, stack)
            if server != agent_server:
                return ws, ws_url, token, server
            await ws.close()
    raise AssertionError("nginx put 30 customers on the agent's bot server")


async def scenario(stack: ScaledStack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=60) as agent:
        login = await agent.post("/api/agent/login", json={"username": "sato", "password": AGENT_PASSWORD})
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        sse_events: list[tuple[float, dict[str, Any]]] = []
        async with agent.stream("GET", "/api/events") as sse:
            agent_server = server_of(sse.headers, stack)
            reader = asyncio.create_task(read_sse(sse, sse_events))
            ws, ws_url, token, customer_server = await customer_on_other_server(stack, agent_server)
            conversation_id = ConversationTokens(load_secret_key(stack.folder / "secret.key")).conversation_of(token)
            rasa_order = RasaClient([r.rasa_url for r in stack.replicas]).servers_for(conversation_id)
            first_rasa = next(r for r in stack.replicas if r.rasa_url == rasa_order[0])
            survivor = next(r for r in stack.replicas if r is not first_rasa)
            try:
                customer = Customer(ws)
                await customer.until(lambda f: f["type"] == "history")
                await customer.send("住所を変更したいです")
                faq = await customer.until(from_sender("bot"))

                stack.kill(f"rasa-{first_rasa.index}")  # this conversation's Rasa server crashes
                await customer.send(ANGRY)
                waiting = await customer.until(lambda f: f["type"] == "state")
                ticket_id = waiting["state"]["ticket_id"]
                # systemd would restart it (Restart=always): it loads while the conversation goes on.
                await asyncio.to_thread(stack.start_process, "rasa", first_rasa)
                for _ in range(200):  # the console (other bot server) hears of it over Redis
                    if any(e["change"] == "created" for _, e in sse_events):
                        break
                    await asyncio.sleep(0.05)
                created = [e for _, e in sse_events if e["change"] == "created"]
                claim = await agent.post(f"/api/tickets/{ticket_id}/claim", headers=headers)
                joined = await customer.until(lambda f: f["type"] == "state" and f["state"]["mode"] == "agent")
                reply = await agent.post(f"/api/tickets/{ticket_id}/reply", headers=headers,
                                         json={"text": "お待たせしました。確認いたします。"})
                agent_message = await customer.until(from_sender("agent"))
                resolved = await agent.post(f"/api/tickets/{ticket_id}/resolve", headers=headers)
                back = await customer.until(lambda f: f["type"] == "state" and f["state"]["mode"] == "bot")
                await customer.send("営業時間を教えて")
                after = await customer.until(from_sender("bot"))
            finally:
                await ws.close()

            # The customer's bot server crashes: the widget reconnects through nginx, which
            # skips the dead server; the other one has the history and answers.
            stack.kill(f"bot-{customer_server}")
            ws = await websockets.connect(ws_url)
            failover_server = server_of(ws.response_headers, stack)
            try:
                customer = Customer(ws)
                history = await customer.until(lambda f: f["type"] == "history")
                await customer.send("パスワードを忘れました")
                after_failover = await customer.until(from_sender("bot"))
            finally:
                await ws.close()
            reader.cancel()
        ticket = (await agent.get(f"/api/tickets/{ticket_id}")).json()["ticket"]
        all_tickets = (await agent.get("/api/tickets?status=all")).json()["tickets"]
    await asyncio.to_thread(stack.wait, "rasa", first_rasa)
    token_param = {"token": (stack.folder / "rasa.token").read_text().strip()}
    async with httpx.AsyncClient(timeout=30) as rasa:
        tracker = (await rasa.get(f"{survivor.rasa_url}/conversations/{conversation_id}/tracker",
                                  params=token_param)).json()
        restarted_tracker = (await rasa.get(f"{first_rasa.rasa_url}/conversations/{conversation_id}/tracker",
                                            params=token_param)).json()
    return locals()


def test_customer_and_agent_on_two_bot_servers_survive_a_rasa_server_killed(scaled: ScaledStack) -> None:
    started = time.monotonic()
    run = asyncio.run(scenario(scaled))
    assert run["customer_server"] != run["agent_server"]
    assert run["faq"]["message"]["faq_id"] == "change-address"
    # The surviving Rasa server took the turn and handed off: one ticket, from its action server.
    assert run["waiting"]["state"]["mode"] == "waiting"
    mine = [t for t in run["all_tickets"] if t["conversation_id"] == run["conversation_id"]]
    assert len(mine) == 1 and mine[0]["id"] == run["ticket_id"]
    assert [e["ticket"]["id"] for e in run["created"]] == [run["ticket_id"]]
    assert run["claim"].status_code == run["reply"].status_code == run["resolved"].status_code == 200
    assert run["joined"]["state"]["agent_name"] == "佐藤"
    assert run["agent_message"]["message"]["text"] == "お待たせしました。確認いたします。"
    assert run["after"]["message"]["faq_id"] == "hours"
    # The conversation's context is one tracker shared by both Rasa servers: the turn the
    # killed server answered is in the tracker of the one that survived.
    said = [e.get("text") for e in run["tracker"]["events"] if e["event"] == "user"]
    assert said[:2] == ["住所を変更したいです", ANGRY] and said[-1] == "パスワードを忘れました"
    # Restarted, the killed Rasa server sees the conversation as it is now, turns it missed included.
    assert [e.get("text") for e in run["restarted_tracker"]["events"] if e["event"] == "user"] == said
    entries = [(e["sender"], e["text"]) for e in run["ticket"]["entries"]]
    assert entries[0] == ("customer", "住所を変更したいです") and ("customer", ANGRY) in entries
    # Its bot server killed, the customer is back through nginx on the other with the whole history.
    assert run["failover_server"] == run["agent_server"]
    texts = [m["text"] for m in run["history"]["messages"]]
    assert "住所を変更したいです" in texts and "お待たせしました。確認いたします。" in texts
    assert run["after_failover"]["message"]["faq_id"] == "reset-password"
    assert time.monotonic() - started < 150
    # Every process but the killed bot server is up (the Rasa server was restarted).
    assert all(p.poll() is None for p in scaled._procs.values())  # noqa: SLF001
    print(json.dumps({"scenario_seconds": round(time.monotonic() - started, 1)}))
