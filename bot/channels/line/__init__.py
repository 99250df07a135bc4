"""The LINE Messaging API channel (docs/line.md).

LINE conversations go through the same gateway as the widget (bot → waiting → agent →
bot, tickets, transcript, masking, staffed hours). One module per concern:

- ``signature.py``: ``X-Line-Signature`` check of the raw body, before anything is parsed;
- ``events.py``: webhook body → typed events (unknown kinds kept as ``other``);
- ``messages.py``: our chat messages → LINE message objects (split, ≤ 5 per call, quick replies);
- ``reply_tokens.py``: which reply token is still usable;
- ``client.py``: the Messaging API over aiohttp (429 / 5xx retried with back-off);
- ``push_count.py``: push messages per month (they are billed);
- ``channel.py``: events → gateway, the gateway's frames → one reply per turn, or push;
- ``webhook.py``: ``POST /line/webhook``, the channel's set-up, ``bot run``'s status line;
- ``texts.py``: what LINE customers read that the widget does not show (Japanese).
"""
