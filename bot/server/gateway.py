"""Who answers each conversation: the bot, or a person (waiting → agent → back to the bot).

This is the one place that decides. The state lives in the database (an unresolved,
staffed ticket for the conversation means a person owns it), so it survives restarts
and every bot server reads the same answer. While a person owns a conversation:

- customer messages go to the ticket (and the agent's console), never to Rasa;
- Rasa is paused (``action_handoff`` returns ConversationPaused), a second guard;
- when the agent resolves or the customer cancels, Rasa is resumed first, then the
  customer is told the bot is back.

Between the handoff message and the ticket's arrival (the action server kept the
packet in its outbox while the database was unreachable) the conversation is
*pending*: messages are kept and copied into the ticket when it arrives. The pending
mark is in the database too (bot/store/pending.py), so a restart never lets a second
handoff happen meanwhile. The mark names its handoff (the packet's key): a handoff the
customer cancelled whose packet arrives only after they asked for a person again is
cancelled on arrival, and only the new one opens a ticket.

The customer side is bot/server/gateway_customer.py, the agent side
bot/server/gateway_agent.py, what both share bot/server/gateway_base.py; the survey and
the transcript mail after a resolved chat bot/server/gateway_after_chat.py; transfers,
escalations, supervisors' joins and whispers bot/server/gateway_escalation.py; forwards to
a department bot/server/gateway_forward.py; the ticket watcher that announces new tickets is bot/server/ticket_watcher.py.
"""

from __future__ import annotations

from bot.server.gateway_after_chat import AfterChatSide
from bot.server.gateway_agent import AgentSide
from bot.server.gateway_base import MAX_MESSAGE_CHARS, TEXT, CustomerError, RateLimited
from bot.server.gateway_customer import CustomerSide
from bot.server.gateway_escalation import EscalationSide
from bot.server.gateway_forward import ForwardSide

# Callers (chat_api, tests) import the customer-facing errors and limits from here.
__all__ = ["Gateway", "CustomerError", "RateLimited", "MAX_MESSAGE_CHARS", "TEXT"]


class Gateway(CustomerSide, AgentSide, EscalationSide, ForwardSide):
    """Routes customer messages to the bot or a person and agent actions to the customer."""
